/**
 * Shared pieces of the benchmarks: the row every benchmark reports, argument parsing, percentiles,
 * temp folders, and how a benchmark file hands its rows to the runner (`bench/run.ts`).
 *
 * A benchmark file is a script: run alone it prints its rows as a table; with `--rows` (the runner
 * passes it) it prints one JSON line `{"rows": [...]}` on stdout and its progress on stderr.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { tuneGc } from '../../src/runtime/gc-tuning.ts';

/** The benchmarks run with the V8 settings of Handoff's own processes (see gc-tuning.ts). */
export const V8_FLAGS = tuneGc();

/** One line of the benchmark table. */
export interface BenchRow {
  name: string;
  unit: string;
  /** Our figure; null when the benchmark was skipped. */
  value: number | null;
  /** The figure it is compared with, measured in the same run (or null). */
  reference: { name: string; value: number } | null;
  /** value / reference.value (null without a reference). */
  ratio: number | null;
  /** Whether a higher value is better (throughput) or a lower one (latency, memory). */
  better?: 'higher' | 'lower';
  /** The issue's target for this figure, in words. */
  target?: string;
  /** Why the benchmark was skipped. */
  skipped?: string;
  note?: string;
}

export const QUICK = process.argv.includes('--quick');

export function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return dflt;
  const n = Number(process.argv[i + 1]);
  if (!Number.isFinite(n)) throw new Error(`--${name} needs a number`);
  return n;
}

export const log = (s: string): void => {
  process.stderr.write(`${s}\n`);
};

/** Percentile `p` (0-100) of the samples (sorts them in place). */
export function pct(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  xs.sort((a, b) => a - b);
  return xs[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;
}

export const round = (x: number, digits = 0): number => {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
};

/** A compared figure: ratio = value / reference. */
export function row(
  name: string,
  unit: string,
  value: number,
  reference: { name: string; value: number } | null,
  extra: Partial<Pick<BenchRow, 'better' | 'target' | 'note'>> = {},
): BenchRow {
  const ratio = reference && reference.value !== 0 ? round(value / reference.value, 3) : null;
  return {
    name,
    unit,
    value,
    reference,
    ratio,
    better: extra.better ?? 'higher',
    ...(extra.target ? { target: extra.target } : {}),
    ...(extra.note ? { note: extra.note } : {}),
  };
}

export function skipped(name: string, unit: string, reason: string, target?: string): BenchRow {
  return { name, unit, value: null, reference: null, ratio: null, skipped: reason, ...(target ? { target } : {}) };
}

export async function withTempDir<T>(prefix: string, fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), `handoff-bench-${prefix}-`));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export const machine = () => ({
  date: new Date().toISOString().slice(0, 10),
  cpu: cpus()[0]?.model ?? 'unknown',
  cores: cpus().length,
  node: process.version,
  v8Flags: V8_FLAGS,
});

/**
 * Closed-loop load: `concurrency` workers each call `fn(i)` back to back for `ms` of wall time, after
 * `warmupMs` that is not counted. Returns completions per second over the measured window.
 *
 * Workers join one per completion (worker k starts after the k-th completion; all remaining ones at
 * the end of the warm-up), so cycles do not run in lock-step waves that would make a short window's
 * count jump by `concurrency` at a time. No timers are involved: time is read on every completion, and
 * starting a worker is a resolved promise, so a workload that never yields to the event loop (a
 * synchronous SQLite checkpointer) gets the same treatment as one that does.
 */
export async function closedLoop(
  opts: { concurrency: number; ms: number; warmupMs?: number },
  fn: (i: number) => Promise<unknown>,
): Promise<{ count: number; seconds: number; perSecond: number; latencies: number[]; workers: number }> {
  let next = 0;
  let count = 0;
  let completions = 0;
  let started = 1;
  const waiting: (() => void)[] = [];
  const latencies: number[] = [];
  const t0 = performance.now();
  const from = t0 + (opts.warmupMs ?? 0);
  const until = from + opts.ms;
  const release = (now: number) => {
    while (waiting.length > 0 && (started < 1 + completions || now >= from)) {
      started++;
      waiting.shift()!();
    }
  };
  const worker = async (k: number) => {
    if (k > 0) await new Promise<void>((r) => waiting.push(r));
    for (;;) {
      const start = performance.now();
      if (start >= until) break;
      await fn(next++);
      const end = performance.now();
      completions++;
      if (end >= from && end <= until) {
        count++;
        latencies.push(end - start);
      }
      release(end);
    }
    // Done: let any worker still waiting start (and stop at once), so none is left behind.
    release(Infinity);
  };
  await Promise.all(Array.from({ length: opts.concurrency }, (_, k) => worker(k)));
  const seconds = opts.ms / 1000;
  return { count, seconds, perSecond: count / seconds, latencies, workers: started };
}

/** Prints the rows: one JSON line with `--rows` (for the runner), else a small table. */
export function report(bench: string, rows: BenchRow[]): void {
  if (process.argv.includes('--rows')) {
    process.stdout.write(`${JSON.stringify({ bench, rows })}\n`);
    return;
  }
  const m = machine();
  process.stdout.write(
    `${bench} · ${m.date} · ${m.cpu} × ${m.cores} · node ${m.node}${m.v8Flags.length ? ` ${m.v8Flags.join(' ')}` : ''}\n`,
  );
  for (const r of rows) {
    if (r.value === null) process.stdout.write(`  ${r.name}: skipped (${r.skipped})\n`);
    else
      process.stdout.write(
        `  ${r.name}: ${r.value} ${r.unit}${r.reference ? ` · ${r.reference.name}: ${r.reference.value} · ratio ${r.ratio}` : ''}\n`,
      );
  }
}

/** Main wrapper of a benchmark script: reports its rows, or the error with exit code 2. */
export async function main(bench: string, fn: () => Promise<BenchRow[]>): Promise<void> {
  try {
    report(bench, await fn());
  } catch (err) {
    process.stderr.write(`${bench} failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 2;
  }
}
