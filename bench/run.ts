/**
 * Runs every benchmark, each in a child process of this one (one process tree), and prints one table:
 * our figure, the reference measured in the same run, and the ratio. `handoff bench` and
 * `npm run bench` both come here.
 *
 *   node --import tsx bench/run.ts [--quick] [--json] [--markdown] [--only episodes,hitl] [--verbose]
 */
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { machine, type BenchRow } from './lib/common.ts';

const ROOT = dirname(dirname(fileURLToPath(import.meta.url)));

/** The benchmarks, in the order they run. */
export const BENCHMARKS = [
  { name: 'episodes', file: 'bench/episodes.ts', what: 'durable episodes/s (auto path) vs raw XState and LevelDB' },
  {
    name: 'hitl',
    file: 'bench/hitl.ts',
    what: 'HITL pause/resume cycles/s vs LangGraph JS + SQLite and a minimal XState + LevelDB loop',
  },
  {
    name: 'open-cases',
    file: 'bench/open-cases.ts',
    what: 'open cases held with passivation: RSS, rehydrate + decide p99, recovery',
    flags: ['--expose-gc'],
  },
  { name: 'nats', file: 'bench/nats.ts', what: 'reviewer command latency over NATS vs raw request/reply' },
  {
    name: 'cluster',
    file: 'bench/cluster.ts',
    what: 'episodes/s with 1 and 2 node processes over one nats-server vs the embedded runtime on the same work',
  },
  { name: 'inspection', file: 'bench/inspection.ts', what: 'episodes/s with the inspector stream on vs off' },
  {
    name: 'ingest',
    file: 'bench/ingest.ts',
    what: 'signals accepted/s over HTTP into the embedded runtime vs an empty route of the same framework',
  },
] as const;

export interface BenchResult {
  machine: ReturnType<typeof machine>;
  quick: boolean;
  benchmarks: (BenchRow & { bench: string; error?: string })[];
  /** Benchmarks that errored (their rows are missing or carry `error`). */
  failed: string[];
  wallMs: number;
}

export interface RunOptions {
  quick?: boolean;
  only?: string[];
  /** Called with each line a benchmark writes to stderr (its progress). */
  onLog?: (bench: string, line: string) => void;
  /** Called when a benchmark starts and ends. */
  onBench?: (bench: string, phase: 'start' | 'end', ms?: number) => void;
}

function runOne(b: (typeof BENCHMARKS)[number], opts: RunOptions): Promise<{ rows: BenchRow[]; error?: string }> {
  const tsx = import.meta.resolve('tsx');
  const flags = 'flags' in b ? [...b.flags] : [];
  const args = [...flags, '--import', tsx, join(ROOT, b.file), '--rows', ...(opts.quick ? ['--quick'] : [])];
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, HANDOFF_LOG_LEVEL: process.env.HANDOFF_LOG_LEVEL ?? 'silent' },
    });
    let out = '';
    let err = '';
    let partial = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      err += d;
      partial += d;
      const lines = partial.split('\n');
      partial = lines.pop() ?? '';
      for (const l of lines) if (l.trim()) opts.onLog?.(b.name, l);
    });
    child.once('error', (e) => resolve({ rows: [], error: e.message }));
    child.once('close', (code, signal) => {
      const line = out
        .trim()
        .split('\n')
        .reverse()
        .find((l) => l.startsWith('{'));
      let rows: BenchRow[] = [];
      try {
        if (line) rows = (JSON.parse(line) as { rows: BenchRow[] }).rows;
      } catch {
        // reported below
      }
      if (code === 0 && line) resolve({ rows });
      else
        resolve({
          rows,
          error: `exited with ${signal ?? code}${err ? `: ${err.trim().split('\n').slice(-8).join('\n')}` : ''}`,
        });
    });
  });
}

export async function runBenchmarks(opts: RunOptions = {}): Promise<BenchResult> {
  const t0 = performance.now();
  const chosen = BENCHMARKS.filter((b) => !opts.only?.length || opts.only.includes(b.name));
  if (opts.only?.length) {
    const unknown = opts.only.filter((n) => !BENCHMARKS.some((b) => b.name === n));
    if (unknown.length)
      throw new Error(
        `unknown benchmark(s): ${unknown.join(', ')} (known: ${BENCHMARKS.map((b) => b.name).join(', ')})`,
      );
  }
  const benchmarks: BenchResult['benchmarks'] = [];
  const failed: string[] = [];
  for (const b of chosen) {
    opts.onBench?.(b.name, 'start');
    const s = performance.now();
    const r = await runOne(b, opts);
    opts.onBench?.(b.name, 'end', performance.now() - s);
    for (const row of r.rows) benchmarks.push({ bench: b.name, ...row });
    if (r.error) {
      failed.push(b.name);
      benchmarks.push({
        bench: b.name,
        name: `${b.name}: ${b.what}`,
        unit: '',
        value: null,
        reference: null,
        ratio: null,
        error: r.error,
      });
    }
  }
  return { machine: machine(), quick: !!opts.quick, benchmarks, failed, wallMs: Math.round(performance.now() - t0) };
}

const fmt = (x: number | null | undefined): string =>
  x === null || x === undefined ? '' : Math.abs(x) >= 100 ? Math.round(x).toLocaleString('en-US') : String(x);

/** The table as rows of cells: benchmark, unit, ours, reference, reference value, ratio, target. */
export function tableRows(r: BenchResult): string[][] {
  const rows: string[][] = [['benchmark', 'unit', 'ours', 'reference (same run)', 'reference', 'ratio', 'target']];
  for (const b of r.benchmarks) {
    if (b.error) rows.push([b.name, '', 'ERROR', b.error.split('\n')[0]!.slice(0, 80), '', '', '']);
    else if (b.value === null) rows.push([b.name, b.unit, 'skipped', b.skipped ?? '', '', '', b.target ?? '']);
    else
      rows.push([
        b.name,
        b.unit,
        fmt(b.value),
        b.reference?.name ?? '',
        fmt(b.reference?.value),
        b.ratio === null ? '' : String(b.ratio),
        b.target ?? '',
      ]);
  }
  return rows;
}

export function markdown(r: BenchResult): string {
  const rows = tableRows(r);
  const esc = (s: string) => s.replace(/\|/g, '\\|');
  const lines = [
    `| ${rows[0]!.join(' | ')} |`,
    `|${rows[0]!.map((_, i) => (i >= 2 && i !== 3 && i !== 6 ? '---:' : '---')).join('|')}|`,
  ];
  for (const row of rows.slice(1)) lines.push(`| ${row.map(esc).join(' | ')} |`);
  const notes = r.benchmarks.filter((b) => b.note).map((b) => `- ${b.name}: ${b.note}`);
  return `${lines.join('\n')}\n${notes.length ? `\nNotes:\n${notes.join('\n')}\n` : ''}`;
}

/** The `--json` shape: `{"benchmarks": [{name, unit, value, reference: {name, value}, ratio}], ...}`. */
export function toJson(r: BenchResult): unknown {
  return {
    machine: r.machine,
    quick: r.quick,
    wallMs: r.wallMs,
    failed: r.failed,
    benchmarks: r.benchmarks.map(({ bench, name, unit, value, reference, ratio, ...rest }) => ({
      name,
      unit,
      value,
      reference,
      ratio,
      bench,
      ...rest,
    })),
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const argv = process.argv.slice(2);
  const onlyAt = argv.indexOf('--only');
  const json = argv.includes('--json');
  const verbose = argv.includes('--verbose');
  const result = await runBenchmarks({
    quick: argv.includes('--quick'),
    ...(onlyAt >= 0 ? { only: argv[onlyAt + 1]!.split(',') } : {}),
    onLog: (b, l) => verbose && process.stderr.write(`[${b}] ${l}\n`),
    onBench: (b, phase, ms) =>
      process.stderr.write(
        phase === 'start' ? `bench ${b} ...\n` : `bench ${b} done in ${((ms ?? 0) / 1000).toFixed(1)} s\n`,
      ),
  });
  if (json) process.stdout.write(`${JSON.stringify(toJson(result), null, 2)}\n`);
  else if (argv.includes('--markdown')) process.stdout.write(markdown(result));
  else {
    const rows = tableRows(result);
    const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
    for (const r of rows)
      process.stdout.write(
        `${r.map((c, i) => (i >= 2 && i !== 3 && i !== 6 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ')}\n`,
      );
  }
  if (result.failed.length) process.exitCode = 2;
}
