/**
 * Helpers of the model-based acceptance tests: generating suites into temporary folders and running
 * them with vitest in a child process (optionally as several projects, e.g. one per mutant).
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AssertionError } from 'node:assert';
import { HandoffError } from '../../src/contracts/errors.ts';
import type { GeneratedPath, Scenario } from '../../src/testing/index.ts';

export const REPO = resolve(fileURLToPath(new URL('../..', import.meta.url)));

export async function tempDir(prefix: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `handoff-${prefix}-`));
}

export interface Project {
  name: string;
  /** Folder the globs are relative to. @default the run's root */
  root?: string;
  /** Globs relative to the run's root. */
  include: string[];
  env?: Record<string, string>;
  setupFiles?: string[];
}

export interface TestResult {
  file: string;
  name: string;
  status: 'passed' | 'failed' | 'skipped' | 'pending' | 'todo';
  /** The project (mutant) the test ran in, as tagged by the setup file. */
  project: string;
  durationMs: number;
  failure: string;
}

export interface VitestRun {
  exitCode: number;
  wallMs: number;
  results: TestResult[];
  stderr: string;
}

/** Runs `vitest run` in a child process on a folder outside the repo's own test config. */
export async function runVitest(
  root: string,
  projects: Project[],
  opts: { timeoutMs?: number; maxWorkers?: number } = {},
): Promise<VitestRun> {
  const config = join(root, 'vitest.mbt.config.mjs');
  const out = join(root, 'vitest-report.json');
  const test = (p: Project) => ({
    name: p.name,
    root: p.root ?? root,
    include: p.include,
    ...(p.setupFiles ? { setupFiles: p.setupFiles } : {}),
    env: p.env ?? {},
    testTimeout: 120_000,
    hookTimeout: 60_000,
  });
  await writeFile(
    config,
    `export default ${JSON.stringify({ test: { maxWorkers: opts.maxWorkers ?? 2, projects: projects.map((p) => ({ test: test(p) })) } }, null, 2)};\n`,
  );
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.startsWith('VITEST') && k !== 'TEST' && k !== 'NODE_ENV'),
  );
  const t0 = performance.now();
  const { code, stderr } = await new Promise<{ code: number; stderr: string }>((done, fail) => {
    const child = spawn(
      process.execPath,
      [
        join(REPO, 'node_modules/vitest/vitest.mjs'),
        'run',
        '--config',
        config,
        '--root',
        root,
        '--reporter=json',
        '--outputFile',
        out,
      ],
      {
        cwd: REPO,
        env: { ...env, NO_COLOR: '1' },
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    );
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 170_000);
    child.on('error', fail);
    child.on('exit', (c) => {
      clearTimeout(timer);
      done({ code: c ?? 1, stderr: err });
    });
  });
  const wallMs = Math.round(performance.now() - t0);
  let report: {
    testResults?: {
      name: string;
      assertionResults: {
        fullName: string;
        status: TestResult['status'];
        duration?: number;
        failureMessages: string[];
        meta?: { project?: string };
      }[];
    }[];
  };
  try {
    report = JSON.parse(await readFile(out, 'utf8')) as typeof report;
  } catch {
    throw new Error(`vitest wrote no report (exit ${code}):\n${stderr.slice(-4000)}`);
  }
  const results: TestResult[] = [];
  for (const f of report.testResults ?? [])
    for (const a of f.assertionResults)
      results.push({
        file: f.name,
        name: a.fullName,
        status: a.status,
        project: a.meta?.project ?? projects[0]?.name ?? '',
        durationMs: Math.round(a.duration ?? 0),
        failure: (a.failureMessages[0] ?? '').split('\n')[0]!.slice(0, 400),
      });
  return { exitCode: code, wallMs, results, stderr };
}

/** Refusals the runtime answers with; a path step that expects acceptance and meets one has found a behaviour change. */
const REFUSALS = new Set([
  'event.rejected',
  'auth.forbidden',
  'policy.denied',
  'contract.invalid',
  'command.replayed',
  'actor.not_found',
]);

/**
 * Plays a generated path on a scenario, strictly: a step the path expects to be accepted that the
 * runtime refuses is an AssertionError (a behaviour change, so a mutant is killed), not a crash.
 * The mutation tests use it for every path they run.
 */
export function strictPath(path: Pick<GeneratedPath, 'initial' | 'steps'>): (s: Scenario) => Promise<void> {
  return async (s) => {
    await s.start(path.initial);
    for (const st of path.steps) {
      try {
        await s.step(st.action, st.expect);
      } catch (err) {
        if (!st.expect.refused && err instanceof HandoffError && REFUSALS.has(err.code)) {
          throw new AssertionError({
            message: `a step the path expects to be accepted was refused (${err.code}): ${err.message}`,
          });
        }
        throw err;
      }
    }
    await s.end();
  };
}
