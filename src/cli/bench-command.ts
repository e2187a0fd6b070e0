import type { Command } from 'commander';
import { HandoffError } from '../contracts/errors.ts';
import { duration, paint, printJson, table } from './output.ts';

const list = (v: string) =>
  v
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);

/**
 * `handoff bench`: every benchmark in `bench/`, each in a child process, and one table of our figures,
 * the reference figures measured in the same run, and their ratios. Exit code 2 only when a benchmark
 * errors: figures are printed, not asserted (timings are noisy).
 */
export function registerBench(program: Command): void {
  program
    .command('bench')
    .description(
      'Run the benchmarks (ours vs LangGraph JS, raw XState, LevelDB, NATS and the HTTP framework, measured in the same run) and print one table.',
    )
    .option('--quick', 'short runs (under 3 minutes on 2 cores), for CI', false)
    .option('--json', 'print {"benchmarks": [{name, unit, value, reference: {name, value}, ratio}]} on stdout', false)
    .option('--markdown', 'print the table as Markdown (for BENCHMARKS.md)', false)
    .option('--only <names>', 'run only these, comma-separated (names as in BENCHMARKS.md)', list)
    .option('--verbose', "show each benchmark's progress lines on stderr", false)
    .action(async (o: { quick: boolean; json: boolean; markdown: boolean; only?: string[]; verbose: boolean }) => {
      // The benchmarks live in bench/ of a checkout (they compare with LangGraph, a development
      // dependency); the published package does not ship them.
      const { markdown, runBenchmarks, tableRows, toJson } = await import('../../bench/run.ts').catch(
        (err: unknown) => {
          throw new HandoffError(
            'bench.unavailable',
            'handoff bench runs in a checkout of the Handoff repository (npm install there, then npm run bench)',
            {},
            { cause: err },
          );
        },
      );
      const tty = process.stderr.isTTY;
      const result = await runBenchmarks({
        quick: o.quick,
        ...(o.only ? { only: o.only } : {}),
        onLog: (b, line) => {
          if (o.verbose) process.stderr.write(`${paint.dim(`[${b}]`)} ${line}\n`);
        },
        onBench: (b, phase, ms) => {
          if (!tty && !o.verbose) return;
          process.stderr.write(
            phase === 'start'
              ? `${paint.dim(`bench ${b} ...`)}\n`
              : `${paint.dim(`bench ${b} done in ${duration(Math.round(ms ?? 0))}`)}\n`,
          );
        },
      });
      if (o.json) printJson(toJson(result));
      else if (o.markdown) process.stdout.write(markdown(result));
      else {
        const m = result.machine;
        process.stdout.write(
          `\n${paint.bold(`Handoff benchmarks${result.quick ? ' (quick)' : ''} · ${m.date} · ${m.cpu} × ${m.cores} · node ${m.node}`)}\n\n`,
        );
        process.stdout.write(
          `${table(tableRows(result), { header: true, align: ['l', 'l', 'r', 'l', 'r', 'r', 'l'] })}\n`,
        );
        const skippedRows = result.benchmarks.filter((b) => b.value === null && b.skipped);
        for (const s of skippedRows) process.stdout.write(`${paint.yellow('skipped')} ${s.name}: ${s.skipped}\n`);
        for (const f of result.benchmarks.filter((b) => b.error))
          process.stdout.write(`${paint.red('error')} ${f.bench}: ${f.error}\n`);
        process.stdout.write(`${paint.dim(`${duration(result.wallMs)} in all`)}\n`);
      }
      if (result.failed.length) process.exitCode = 2;
    });
}
