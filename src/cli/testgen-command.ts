import { Command, InvalidArgumentError, Option } from 'commander';
import { relative } from 'node:path';
import { HandoffError } from '../contracts/errors.ts';
import { loadModel, type LoadedModel } from '../models/loader.ts';
import { readRecording, replayRecording, writeRecording, type RecordedEpisode } from '../testing/replay.ts';
import { openDataStore } from './keys-command.ts';
import type { MachineCoverage } from '../testing/graph.ts';
import { runHint, writeSuite } from '../testing/generator.ts';
import { runCrashAnywhere } from '../testing/crash.ts';
import { runProperty } from '../testing/property.ts';
import { paint, printJson, table } from './output.ts';
import { registerSimulate } from './simulate-command.ts';

const positive = (name: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`${name} must be an integer ≥ 1`);
  return n;
};

function pct(covered: number, reachable: number): string {
  return reachable === 0 ? 'n/a' : `${((covered / reachable) * 100).toFixed(1)}%`;
}

function row(name: string, c: MachineCoverage): (string | number)[] {
  return [
    name,
    c.paths,
    c.steps,
    `${c.states.covered}/${c.states.reachable} (${pct(c.states.covered, c.states.reachable)})`,
    c.states.declared,
    `${c.transitions.covered}/${c.transitions.reachable} (${pct(c.transitions.covered, c.transitions.reachable)})`,
    c.transitions.declared,
    `${c.branches.covered}/${c.branches.reachable}`,
    c.refusals ? `${c.refusals.covered}/${c.refusals.reachable}` : '-',
  ];
}

interface TestgenOptions {
  out?: string;
  replay?: string;
  record?: string;
  paths: 'shortest' | 'simple';
  maxPaths: number;
  crashEachStep: boolean;
  crash?: 'mid-step';
  crashes: number;
  harness?: string;
  property: boolean;
  runs: number;
  seed: number;
  json: boolean;
}

/** `handoff testgen <model> --out DIR`: model-based vitest suites with coverage. */
export function registerTestgen(program: Command): void {
  program
    .command('testgen')
    .description(
      "Generate vitest suites that walk every reachable state and transition of a model's agent and " +
        'review-case machines on the real runtime; print and write coverage (coverage.json).',
    )
    .argument('<model>', 'model folder')
    .option(
      '--out <dir>',
      'folder for the suites (<model>.agent.test.ts, <model>.case.test.ts), their fixtures and coverage.json; ' +
        'required unless --replay',
    )
    .option(
      '--replay <data>',
      'replay recorded runs (a data folder, or a .jsonl file written by --record) against this model and the ' +
        'current machines; report every episode whose decisions would now differ (exit 1 if any)',
    )
    .option(
      '--record <file>',
      'with --replay: also write the recorded episodes as JSONL (one per line), to keep and replay later',
    )
    .addOption(
      new Option(
        '--paths <mode>',
        'shortest: a small covering set of paths; simple: that set plus simple paths to final states',
      )
        .choices(['shortest', 'simple'])
        .default('shortest'),
    )
    .option('--max-paths <n>', 'cap on paths per machine with --paths simple', positive('--max-paths'), 200)
    .option(
      '--crash-each-step',
      'generated tests restart the runtime from its store before every step and check the path still ' +
        'completes identically',
      false,
    )
    .option(
      '--harness <specifier>',
      'module the generated files import the harness from ' +
        "(default: relative path to this package's src/testing/index.ts; e.g. handoff/testing)",
    )
    .option(
      '--property',
      'also run random reviewer command sequences against a reference model of the review process ' +
        '(fast-check, shrunk to a minimal failing sequence)',
      false,
    )
    .option('--runs <n>', 'sequences for --property', positive('--runs'), 100)
    .addOption(
      new Option(
        '--crash <mode>',
        'mid-step: also write and run <model>.crash.test.ts: the model in a child process SIGKILLed in the middle ' +
          'of steps at points drawn from --seed, resumed, checked for exactly-once effects',
      ).choices(['mid-step']),
    )
    .option('--crashes <n>', 'kills for --crash mid-step', positive('--crashes'), 3)
    .option(
      '--seed <n>',
      'seed for --property and --crash (same seed, same sequences and kill points)',
      positive('--seed'),
      1,
    )
    .option('--json', 'print a summary object on stdout', false)
    .action(async (modelDir: string, o: TestgenOptions, cmd: Command) => {
      if (o.replay) return replayCommand(modelDir, o.replay, o);
      if (o.record) cmd.error('error: --record needs --replay <data> (the data folder whose episodes it records)');
      if (!o.out) cmd.error("error: required option '--out <dir>' not specified (or --replay <data>)");
      const outDir = o.out;
      const t0 = performance.now();
      let r: Awaited<ReturnType<typeof writeSuite>>;
      try {
        r = await writeSuite(modelDir, outDir, {
          paths: o.paths,
          maxPaths: o.maxPaths,
          crashEachStep: o.crashEachStep,
          ...(o.crash ? { crash: o.crash, seed: o.seed, crashes: o.crashes } : {}),
          ...(o.harness ? { harnessImport: o.harness } : {}),
        });
      } catch (err) {
        // An invalid model (its files, or its code on its own signals): every problem, exit 1. Also a
        // request the model cannot serve (--crash mid-step on a model with HTTP actions).
        if (!(err instanceof HandoffError)) throw err;
        if (o.json) printJson({ ok: false, error: { code: err.code, message: err.message, details: err.details } });
        process.stderr.write(`${paint.red('error')} ${err.message}\n`);
        process.exitCode = 1;
        return;
      }
      const cov = r.coverage;
      const property = o.property ? await runProperty(r.model, r.fixtures, { runs: o.runs, seed: o.seed }) : undefined;
      const crash = o.crash
        ? await runCrashAnywhere({ model: r.model.dir, seed: o.seed, crashes: o.crashes })
        : undefined;
      const complete = [cov.agent, cov.case].every(
        (c) => c.uncoveredStates.length === 0 && c.uncoveredTransitions.length === 0,
      );
      const summary = {
        ok: complete,
        model: r.model.name,
        version: r.model.config.version,
        out: outDir,
        run: runHint(outDir),
        files: r.files.map((f) => relative(process.cwd(), f)),
        paths: o.paths,
        crashEachStep: o.crashEachStep,
        tests: cov.agent.paths + cov.case.paths,
        coverage: Object.fromEntries(
          (['agent', 'case'] as const).map((k) => {
            const c = cov[k];
            return [
              k,
              {
                paths: c.paths,
                steps: c.steps,
                states: c.states,
                transitions: c.transitions,
                branches: { reachable: c.branches.reachable, covered: c.branches.covered },
                ...(c.refusals ? { refusals: c.refusals } : {}),
                unreachableStates: c.unreachableStates,
                unreachableTransitions: c.unreachableTransitions,
                uncoveredStates: c.uncoveredStates,
                uncoveredTransitions: c.uncoveredTransitions,
              },
            ];
          }),
        ),
        warnings: cov.warnings,
        ...(property ? { property } : {}),
        ...(crash ? { crash } : {}),
        wallMs: Math.round(performance.now() - t0),
      };
      if (o.json) printJson(summary);
      else {
        const out = process.stdout;
        const title = `handoff testgen · model ${r.model.name}@${r.model.config.version} · ${o.paths} paths`;
        out.write(`\n${paint.bold(`${title}${o.crashEachStep ? ' · restart before every step' : ''}`)}\n\n`);
        const head = ['machine', 'paths', 'steps', 'states covered/reachable', 'declared'];
        head.push('transitions covered/reachable', 'declared', 'branches', 'refusals');
        const rows = [head, row('agent episode', cov.agent), row('review case', cov.case)];
        out.write(`${table(rows, { header: true })}\n\n`);
        for (const w of cov.warnings) out.write(`${paint.yellow('warning')} ${w}\n`);
        for (const k of ['agent', 'case'] as const) {
          for (const s of cov[k].uncoveredStates) out.write(`${paint.red('uncovered')} ${k} state ${s}\n`);
          for (const t of cov[k].uncoveredTransitions) out.write(`${paint.red('uncovered')} ${k} transition ${t}\n`);
        }
        if (cov.warnings.length) out.write('\n');
        out.write(`wrote ${summary.files.join(', ')}\n`);
        if (property) {
          const e = property.exercised;
          out.write(
            property.ok
              ? `${paint.green('property ok')}: ${property.runs} random sequences (seed ${property.seed}) ` +
                  `agree with the reference model: ${e.taken} commands taken, ${e.refused} refused, ` +
                  `${e.deadlines} deadlines, ${e.closed} cases closed\n`
              : `${paint.red('property failed')} (seed ${property.seed}); minimal sequence:\n` +
                  `${(property.counterexample ?? []).map((x) => `  ${x}`).join('\n')}\n${property.error}\n`,
          );
        }
        if (crash) out.write(`${crash.ok ? paint.green('crash ok') : paint.red('crash failed')}: ${crash.report}\n`);
        // --root makes the hint work from any folder, inside this repository or not (its own config is not used).
        out.write(paint.dim(`run them (from any folder): ${summary.run}   (${summary.wallMs} ms)\n`));
      }
      if (!complete || (property && !property.ok) || (crash && !crash.ok)) process.exitCode = 1;
    });
}

/** `handoff testgen <model> --replay <data> [--record <file>]`: recorded runs against the current model. */
async function replayCommand(modelDir: string, source: string, o: TestgenOptions): Promise<void> {
  const fail = (err: unknown) => {
    if (!(err instanceof HandoffError)) throw err;
    if (o.json) printJson({ ok: false, error: { code: err.code, message: err.message, details: err.details } });
    process.stderr.write(`${paint.red('error')} ${err.message}\n`);
    process.exitCode = 1;
  };
  let model: LoadedModel;
  let episodes: RecordedEpisode[];
  try {
    model = await loadModel(modelDir);
    episodes = await readRecording(source, { model: model.name, open: (d) => openDataStore(d) });
    if (o.record) await writeRecording(o.record, episodes);
  } catch (err) {
    return fail(err);
  }
  const report = replayRecording(model, episodes, source);
  if (o.json) printJson({ ...report, ...(o.record ? { recorded: o.record } : {}) });
  else {
    const out = process.stdout;
    out.write(
      `\n${paint.bold(`handoff testgen --replay · ${source} against model ${model.name}@${model.config.version}`)}\n\n`,
    );
    if (report.results.length) {
      const rows = [['episode', 'actor', 'seq', 'event', 'what', 'recorded', 'now']];
      for (const r of report.results)
        for (const d of r.differences)
          rows.push([
            r.episodeId,
            d.actor === r.episodeId ? 'agent' : d.actor.slice(r.episodeId.length + 1),
            String(d.seq),
            d.event,
            d.what,
            d.recorded,
            d.now,
          ]);
      out.write(`${table(rows, { header: true })}\n\n`);
    }
    for (const k of report.skipped) out.write(`${paint.yellow('skipped')} ${k.episodeId}: ${k.reason}\n`);
    if (o.record) out.write(`recorded ${episodes.length} episodes in ${o.record}\n`);
    const verdict =
      `${report.differing} of ${report.episodes} episodes would now decide differently; ` +
      `${report.unchanged} unchanged`;
    out.write(`${report.ok ? paint.green('replay ok') : paint.red('replay differs')}: ${verdict}\n`);
  }
  if (!report.ok) process.exitCode = 1;
}

/** The QA commands: `testgen` and `simulate`. */
export function registerQaCommands(program: Command): void {
  registerTestgen(program);
  registerSimulate(program);
}
