import { dataKeyring } from './keys-command.ts';
import { Command, InvalidArgumentError, Option } from 'commander';
import { HandoffError, ModelError } from '../contracts/errors.ts';
import { probeModel } from '../actors/probe.ts';
import { loadModel } from '../models/loader.ts';
import { parseFaults, type FaultSpec } from '../base/faults.ts';
import { processTelemetry } from './telemetry-option.ts';
import {
  parseReviewers,
  refuseLiveHttp,
  runSimulation,
  type ReviewerSpec,
  type SimulationReport,
} from '../sim/simulate.ts';
import { duration, paint, printJson, progressBar, table, type ProgressMode } from './output.ts';

/** Turns a parse error into commander's usage error. */
const parsed =
  <T>(parse: (v: string) => T) =>
  (v: string): T => {
    try {
      return parse(v);
    } catch (err) {
      throw new InvalidArgumentError((err as Error).message);
    }
  };

const int =
  (name: string, min = 0) =>
  (v: string) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`${name} must be an integer ≥ ${min}`);
    return n;
  };

function printReport(r: SimulationReport): void {
  const out = process.stdout;
  const o = r.outcomes;
  const finished = r.episodes - r.unfinished;
  const pct = (n: number, d: number) => `${((n / Math.max(1, d)) * 100).toFixed(1)}%`;
  out.write(
    `\n${paint.bold(`Handoff simulation · model ${r.model} · ${r.episodes} episodes · ${r.reviewers.count} reviewers · seed ${r.seed}`)}\n\n`,
  );
  const service: (string | number)[][] = [
    ['service', ''],
    ['SLA attainment', `${(r.slaAttainment * 100).toFixed(1)}%`],
    ['MTTA (open → claim)', duration(r.mttaMs)],
    ['MTTR (open → decision)', duration(r.mttrMs)],
    ['cases opened', r.cases],
    ...Object.entries(r.escalations).map(([k, v]) => [`escalations from ${k}`, v]),
  ];
  out.write(`${table(service, { header: true })}\n\n`);
  const outcomes: (string | number)[][] = [
    ['outcome', 'episodes', 'share'],
    ...Object.entries(o).map(([k, v]) => [k, v, pct(v, finished)]),
  ];
  out.write(`${table(outcomes, { header: true })}\n\n`);
  const faults: (string | number)[][] = [
    ['faults injected', ''],
    ...Object.entries(r.injected).map(([k, v]) => [`${k} (p=${r.faults[k as keyof typeof r.faults] ?? 0})`, v]),
  ];
  out.write(`${table(faults, { header: true })}\n\n`);
  const v = r.invariants;
  const integrity: (string | number)[][] = [
    ['invariants', ''],
    ['episodes with one outcome', `${v.checked.episodes}`],
    ['effects in ledger', v.checked.effects],
    ['cases closed or live', v.checked.cases],
    ['audit entries (chain verified)', v.checked.auditEntries],
    ['violations', v.violations === 0 ? paint.green('0') : paint.red(String(v.violations))],
  ];
  out.write(`${table(integrity, { header: true })}\n`);
  for (const d of v.details) out.write(`  ${paint.red('✗')} ${d}\n`);
  for (const t of r.unstaffedTiers)
    out.write(`${paint.yellow('warning')} no reviewer can take tier '${t}': its cases escalate or expire\n`);
  out.write(
    `\n${paint.dim(`${duration(r.simulatedMs)} simulated in ${duration(r.wallMs)} · reviewers ${JSON.stringify(r.reviewers.byRole)}`)}\n`,
  );
}

/** `handoff simulate <model>`: synthetic workload with fault injection; SLA numbers and invariant checks. */
export function registerSimulate(program: Command): void {
  program
    .command('simulate')
    .description(
      'Run a synthetic workload of a model on a simulated clock with simulated reviewers and injected faults; print SLA attainment, MTTA/MTTR, escalations by tier and invariant violations (must be 0).',
    )
    .argument('<model>', 'model folder')
    .option('--cases <n>', 'episodes', int('--cases', 1), 500)
    .addOption(
      new Option(
        '--reviewers <spec>',
        "reviewers: a count (the model's own first), or role=count,... e.g. support-lead=4,refunds-manager=2",
      )
        .argParser(parsed(parseReviewers))
        .default(12 as ReviewerSpec, '12'),
    )
    .addOption(
      new Option(
        '--faults <spec>',
        'transient failure probability per step: RATE for every kind, or perceive=P,plan=P,execute=P,compensate=P,store=P',
      )
        .argParser(parsed(parseFaults))
        .default({} as FaultSpec, 'none'),
    )
    .option('--seed <n>', 'seed: same seed, same run', int('--seed'), 1)
    .option('--arrival-ms <ms>', 'mean simulated time between arriving episodes', int('--arrival-ms', 1), 90_000)
    .option('--data <dir>', 'keep the run in this data folder (default: a temporary folder, removed afterwards)')
    .addOption(
      new Option('--progress <mode>', 'progress display on stderr').choices(['auto', 'lines', 'off']).default('auto'),
    )
    .option(
      '--metrics <addr>',
      'serve Prometheus metrics at http://<addr>/metrics while the run lasts (host:port, :port or port); traces go over OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set',
    )
    .option(
      '--live-http',
      "let the model's HTTP actions call their services for real (without it, a model with HTTP actions " +
        'is refused, naming the actions and hosts; `handoff testgen` simulates them instead)',
      false,
    )
    .option('--json', 'print the report as JSON on stdout', false)
    .action(
      async (
        model: string,
        o: {
          cases: number;
          reviewers: ReviewerSpec;
          faults: FaultSpec;
          seed: number;
          arrivalMs: number;
          data?: string;
          progress: ProgressMode;
          json: boolean;
          metrics?: string;
          liveHttp: boolean;
        },
      ) => {
        const { reviewers, faults } = o;
        const fail = (err: HandoffError) => {
          if (o.json) printJson({ ok: false, error: { code: err.code, message: err.message, details: err.details } });
          process.stderr.write(`${paint.red('error')} ${err.message}\n`);
          process.exitCode = 1;
        };
        try {
          const loaded = await loadModel(model);
          // HTTP actions call real services: only with --live-http.
          refuseLiveHttp('handoff simulate', loaded, o.liveHttp);
          // A perceiver that always throws or plans that break their schema would only show up as failed episodes.
          const behaviour = await probeModel(loaded);
          if (behaviour.length > 0) return fail(new ModelError(model, behaviour));
        } catch (err) {
          if (err instanceof HandoffError) return fail(err);
          throw err;
        }
        const telemetry = await processTelemetry(o.metrics);
        const bar = progressBar(o.progress, 'episodes');
        const report = await runSimulation({
          model,
          ...(telemetry ? { telemetry } : {}),
          cases: o.cases,
          reviewers,
          faults,
          seed: o.seed,
          arrivalMs: o.arrivalMs,
          liveHttp: o.liveHttp,
          ...(o.data ? { data: o.data, keyring: dataKeyring() } : {}),
          onProgress: (p) =>
            bar.update(
              p.finished,
              p.total,
              `· ${new Date(p.simulatedAt).toISOString().slice(0, 16).replace('T', ' ')} simulated`,
            ),
        });
        bar.done();
        await telemetry?.shutdown();
        if (o.json) printJson(report);
        else printReport(report);
        if (report.invariants.violations > 0) process.exitCode = 1;
      },
    );
}
