/**
 * Crash anywhere (issue 22 item 4): a model's episodes run in a child process (`handoff demo` on a
 * data folder, simulated reviewers and clock), which is SIGKILLed in the middle of a step at a
 * failpoint drawn from a seed (src/base/failpoints.ts): before or after a store batch is written,
 * after an action's request is durable but before it runs, after it ran but before its result is
 * journaled. Each kill is followed by `demo --resume` on the same folder; the last run goes to the
 * end. Then the data folder must show exactly-once effects: every episode one outcome, nothing
 * unfinished, no effect applied twice or missing in the world's ledger, failed sagas under an
 * operator case, and an intact audit chain.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Rng } from '../base/rng.ts';

/** Places in the middle of a step where the child is killed, in the order a step meets them. */
export const CRASH_POINTS = ['before-commit', 'after-commit', 'before-effect', 'after-effect'] as const;
export type CrashPoint = (typeof CRASH_POINTS)[number];

export interface CrashOptions {
  /** Model folder, or the name of a shipped model. */
  model: string;
  /** Same seed, same kill points. @default 1 */
  seed?: number;
  /** Kills before the run may finish. @default 3 */
  crashes?: number;
  /** Episodes of the run. @default 30 */
  cases?: number;
  /** Points to draw from. @default all of {@link CRASH_POINTS} */
  points?: readonly CrashPoint[];
  /** Data folder to use (left in place). @default a temporary folder, removed unless the run failed */
  data?: string;
  /** Longest wall time of one child process, ms. @default 120000 */
  timeoutMs?: number;
  /** Variables added to the children's environment (e.g. the URL of a service the model's HTTP actions call). */
  env?: Record<string, string>;
  /**
   * Let the model's HTTP actions call their services (`handoff demo --live-http`): point `env` at a test
   * instance. Without it, a model with HTTP actions is refused by the demo. @default false
   */
  liveHttp?: boolean;
}

export interface CrashKill {
  point: CrashPoint;
  /** The child dies the `hit`-th time it reaches `point`. */
  hit: number;
  /** False when the run ended (or the point was not reached that often) before the kill. */
  killed: boolean;
  wallMs: number;
}

export interface CrashResult {
  ok: boolean;
  model: string;
  seed: number;
  cases: number;
  kills: CrashKill[];
  /** What the final run reported (the demo's summary of the whole data folder). */
  summary?: {
    episodes: number;
    outcomes: Record<string, number>;
    unfinished: number;
    effects: number;
    duplicateEffects: number;
    invariantViolations: Record<string, number>;
  };
  auditOk?: boolean;
  problems: string[];
  /** The data folder, kept when the run failed (or when it was given). */
  data?: string;
  /** Kill points, problems and how to run it again, in a few lines. */
  report: string;
  wallMs: number;
}

/** The CLI of this package: bin/handoff.js above this file (src/testing in a checkout, dist/src/testing installed). */
function cliPath(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const bin = join(dir, 'bin', 'handoff.js');
    if (existsSync(bin)) return bin;
    dir = dirname(dir);
  }
  throw new Error('bin/handoff.js not found above src/testing/crash.ts');
}

interface ChildRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  wallMs: number;
}

function runChild(
  args: string[],
  failpoints: string | undefined,
  timeoutMs: number,
  extra: Record<string, string> = {},
): Promise<ChildRun> {
  const t0 = performance.now();
  return new Promise((done, fail) => {
    const env: NodeJS.ProcessEnv = { ...process.env, ...extra, NO_COLOR: '1' };
    delete env.HANDOFF_FAILPOINTS;
    if (failpoints) env.HANDOFF_FAILPOINTS = failpoints;
    const child = spawn(process.execPath, [cliPath(), ...args], { stdio: ['ignore', 'pipe', 'pipe'], env });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', fail);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      done({ code, signal, stdout, stderr, timedOut, wallMs: Math.round(performance.now() - t0) });
    });
  });
}

/** The kill points of a seed: which failpoint, and at which of its hits. */
export function drawKills(
  seed: number,
  crashes: number,
  cases: number,
  points: readonly CrashPoint[] = CRASH_POINTS,
): { point: CrashPoint; hit: number }[] {
  const rng = new Rng(`crash-anywhere:${seed}`);
  // Effects: about one to three per episode; store batches: several per episode. Early enough that
  // most kills land before the run ends, spread enough to fall in different steps.
  // Each resumed run has less left to do: later kills are drawn from a shorter range.
  return Array.from({ length: crashes }, (_, i) => {
    const point = rng.pick(points);
    const range = (point.endsWith('effect') ? cases : cases * 3) * ((crashes - i) / crashes);
    return { point, hit: rng.int(1, Math.max(2, Math.ceil(range))) };
  });
}

/** Runs the model in a child process killed at `crashes` drawn points, then checks exactly-once effects. */
export async function runCrashAnywhere(opts: CrashOptions): Promise<CrashResult> {
  const t0 = performance.now();
  const seed = opts.seed ?? 1;
  const crashes = opts.crashes ?? 3;
  const cases = opts.cases ?? 30;
  const timeoutMs = opts.timeoutMs ?? 120_000;
  const model = existsSync(opts.model) ? resolve(opts.model) : opts.model;
  const data = opts.data ?? (await mkdtemp(join(tmpdir(), 'handoff-crash-')));
  const common = ['--data', data, '--json', '--progress', 'off', ...(opts.liveHttp ? ['--live-http'] : [])];
  const problems: string[] = [];
  const kills: CrashKill[] = [];
  const failed = (what: string, r: ChildRun) => {
    const how = r.timedOut ? `no end within ${timeoutMs} ms` : `exit ${r.code ?? r.signal}`;
    problems.push(`${what}: ${how}: ${r.stderr.trim().slice(-600)}`);
  };
  const start = ['demo', '--model', model, '--cases', String(cases), '--seed', String(seed), ...common];
  const resume = ['demo', '--resume', ...common];
  let first = true;
  for (const { point, hit } of drawKills(seed, crashes, cases, opts.points)) {
    const r = await runChild(first ? start : resume, `${point}:${hit}`, timeoutMs, opts.env);
    const killed = r.signal === 'SIGKILL' && !r.timedOut;
    kills.push({ point, hit, killed, wallMs: r.wallMs });
    if (!killed && r.code !== 0) failed(`run killed at ${point}:${hit}`, r);
    first = false;
    if (problems.length) break;
  }
  let summary: CrashResult['summary'];
  let auditOk: boolean | undefined;
  if (!problems.length) {
    const last = await runChild(first ? start : resume, undefined, timeoutMs, opts.env);
    try {
      summary = JSON.parse(last.stdout) as CrashResult['summary'];
    } catch {
      failed('the final run', last);
    }
    if (summary) {
      const s = summary;
      const ended = Object.values(s.outcomes).reduce((a, b) => a + b, 0);
      if (s.episodes !== cases) problems.push(`${s.episodes} episodes started, expected ${cases}`);
      if (ended !== cases) problems.push(`${ended} outcomes for ${cases} episodes`);
      if (s.unfinished) problems.push(`${s.unfinished} episodes unfinished`);
      if (s.duplicateEffects) problems.push(`${s.duplicateEffects} effects applied more than once`);
      for (const [k, n] of Object.entries(s.invariantViolations)) if (n) problems.push(`${k}: ${n}`);
    }
    const verify = await runChild(['audit', 'verify', '--data', data, '--json'], undefined, timeoutMs);
    try {
      auditOk = (JSON.parse(verify.stdout) as { ok: boolean }).ok;
    } catch {
      auditOk = false;
    }
    if (!auditOk) problems.push(`audit chain broken: ${verify.stdout.trim().slice(0, 400)}`);
  }
  const ok = problems.length === 0;
  const keep = !ok || opts.data !== undefined;
  if (!keep) await rm(data, { recursive: true, force: true });
  const name = opts.model;
  const again = crashes === 3 ? '' : ` --crashes ${crashes}`;
  const report = [
    `crash anywhere · ${name} · seed ${seed} · ${cases} episodes`,
    ...kills.map(
      (k, i) =>
        `  kill ${i + 1}: ${k.point}:${k.hit} ${k.killed ? 'SIGKILL' : 'not reached (ran on)'} after ${k.wallMs} ms`,
    ),
    ...(summary
      ? [`  final: ${JSON.stringify(summary.outcomes)}, effects ${summary.effects}, twice ${summary.duplicateEffects}`]
      : []),
    ...problems.map((p) => `  problem: ${p}`),
    ...(keep ? [`  data folder kept: ${data}`] : []),
    // testgen does not write a crash test for a model whose HTTP actions call out (its suites simulate them).
    opts.liveHttp
      ? `  again: runCrashAnywhere({ model, seed: ${seed}, crashes: ${crashes}, liveHttp: true, env }) ` +
        "with env pointing at the service's test instance"
      : `  again: handoff testgen ${name} --out <dir> --crash mid-step --seed ${seed}${again}`,
  ].join('\n');
  return {
    ok,
    model: name,
    seed,
    cases,
    kills,
    ...(summary ? { summary } : {}),
    ...(auditOk !== undefined ? { auditOk } : {}),
    problems,
    ...(keep ? { data } : {}),
    report,
    wallMs: Math.round(performance.now() - t0),
  };
}
