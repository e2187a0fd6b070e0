import type { Command } from 'commander';
import { HandoffError } from '../contracts/errors.ts';
import { loadModel } from '../models/loader.ts';
import { DriftMonitor, type DriftReport, type ModelFigures } from '../policy/drift.ts';
import type { LevelStore } from '../runtime/level-store.ts';
import { paint, printJson, table } from './output.ts';
import { openDataStore } from './keys-command.ts';

/** The parts of a closed review case the report reads. */
interface CaseRecordContext {
  caseId: string;
  model: string;
  decision?: { ruleId: string };
  proposedPlan?: { confidence: number };
  resolution?: { outcome: 'approved' | 'modified' | 'rejected' | 'expired'; at: number } | null;
}

/**
 * Figures recomputed from the closed review cases of a data folder (the first case of each episode,
 * in the order they were decided), for data folders where no monitor ran (e.g. a demo run).
 */
async function rebuild(store: LevelStore, modelDirs: string[]): Promise<DriftReport> {
  const models = await Promise.all(modelDirs.map((d) => loadModel(d)));
  const monitor = await DriftMonitor.open({ models });
  const samples: { model: string; c: CaseRecordContext }[] = [];
  for await (const rec of store.actors('case')) {
    if (rec.status !== 'done' || !/\.case-1$/.test(rec.id)) continue;
    const c = (rec.snapshot as { context?: CaseRecordContext }).context;
    if (c?.resolution) samples.push({ model: rec.model, c });
  }
  samples.sort((a, b) => a.c.resolution!.at - b.c.resolution!.at);
  for (const { model, c } of samples) {
    monitor.record(model, {
      caseId: c.caseId,
      rule: c.decision?.ruleId ?? 'unknown',
      outcome: c.resolution!.outcome,
      confidence: c.proposedPlan?.confidence ?? 0,
      at: c.resolution!.at,
    });
  }
  return monitor.report(samples.at(-1)?.c.resolution?.at ?? Date.now());
}

const pct = (x: number) => `${(x * 100).toFixed(1)}%`;

function printModel(m: ModelFigures, out: NodeJS.WritableStream): void {
  const cfg = m.config;
  const status = m.tightened
    ? paint.red(
        `TIGHTENED since ${new Date(m.tightened.at).toISOString()} (${m.tightened.rule ? `rule ${m.tightened.rule}, CUSUM ${m.tightened.cusum}: ` : ''}override rate ${pct(m.tightened.overrideRate)} over ${m.tightened.samples} cases, limit ${pct(m.tightened.maxOverrideRate)}; ${m.tightened.mode.mode}${m.tightened.operatorCase ? `; operator case ${m.tightened.operatorCase}` : ''})`,
      )
    : paint.green('normal');
  out.write(`\n${paint.bold(`model ${m.model}`)}  gate: ${status}\n`);
  out.write(
    paint.dim(
      `limit ${pct(cfg.maxOverrideRate)} over the last ${cfg.window} decided cases (from ${cfg.minSamples}); per rule a CUSUM from ${pct(cfg.acceptableOverrideRate ?? cfg.maxOverrideRate / 3)} to ${pct(cfg.maxOverrideRate)}, alarm at ${cfg.cusumThreshold}; spot checks ${pct(cfg.spotCheckRate)} of auto plans; tightening: ${cfg.tighten.mode}\n\n`,
    ),
  );
  const w = m.window;
  const t = m.total;
  out.write(
    `${table(
      [
        ['', 'decided', 'approved', 'modified', 'rejected', 'expired', 'override rate', 'Brier'],
        ['window', w.samples, '', '', '', '', pct(w.overrideRate), w.brier.toFixed(3)],
        ['all time', t.decided, t.approved, t.modified, t.rejected, t.expired, pct(t.overrideRate), t.brier.toFixed(3)],
      ],
      { header: true },
    )}\n\n`,
  );
  const rules: (string | number)[][] = [
    [
      'rule',
      'decided',
      'approved',
      'modified',
      'rejected',
      'expired',
      'override rate',
      'window',
      'CUSUM',
      'mean conf.',
      'Brier',
    ],
  ];
  for (const r of m.rules) {
    const wr = w.byRule[r.rule];
    rules.push([
      r.rule,
      r.decided,
      r.approved,
      r.modified,
      r.rejected,
      r.expired,
      pct(r.overrideRate),
      wr ? `${pct(wr.overrideRate)} of ${wr.samples}` : '-',
      r.cusum.toFixed(2),
      r.meanConfidence.toFixed(2),
      r.brier.toFixed(3),
    ]);
  }
  out.write(`${table(rules, { header: true })}\n\n`);
  const cal: (string | number)[][] = [['confidence', 'cases', 'mean conf.', 'approved as proposed']];
  for (const b of m.calibration)
    if (b.n > 0) cal.push([b.bucket, b.n, b.meanConfidence.toFixed(2), pct(b.approvalRate)]);
  out.write(`${table(cal, { header: true })}\n`);
  for (const h of m.history)
    out.write(
      paint.dim(
        `${new Date(h.at).toISOString()} ${h.kind} by ${h.by}${h.overrideRate !== undefined ? ` (override rate ${pct(h.overrideRate)} over ${h.samples})` : ''}${h.note ? `: ${h.note}` : ''}\n`,
      ),
    );
}

/** `handoff drift report` and `handoff drift relax`. */
export function registerDrift(program: Command): void {
  const drift = program
    .command('drift')
    .description('Drift-aware gating: how often reviewers override the agents, and whether a gate is tightened.');
  drift
    .command('report')
    .description(
      'Override rate per model and gate rule, calibration (confidence vs. approval, Brier score) and tightening status.',
    )
    .option('--data <dir>', 'data folder', '.handoff/demo')
    .option(
      '--rebuild',
      "recompute the figures from the data folder's closed review cases instead of the monitor's saved state",
      false,
    )
    .option('--model <dirs...>', 'model folders (their drift settings apply to --rebuild)', [])
    .option('--json', 'print the report as JSON', false)
    .action(async (o: { data: string; rebuild: boolean; model: string[]; json: boolean }) => {
      const store = await openDataStore(o.data);
      try {
        const saved = await DriftMonitor.load(store);
        const source = o.rebuild || !saved ? 'recomputed from closed review cases' : 'drift monitor state';
        const report =
          o.rebuild || !saved ? await rebuild(store, o.model) : DriftMonitor.reportOf(saved, saved.updatedAt);
        if (saved && o.rebuild) {
          // Tightening is a decision the monitor took, not a figure: it comes from the saved state.
          for (const m of report.models) m.tightened = saved.models[m.model]?.tightened ?? null;
        }
        if (o.json) printJson({ source, ...report });
        else {
          process.stdout.write(`${paint.bold('Drift report')} · ${o.data} · ${source}\n`);
          if (report.models.length === 0) process.stdout.write('no decided review cases yet\n');
          for (const m of report.models) printModel(m, process.stdout);
        }
      } finally {
        await store.close();
      }
    });
  drift
    .command('relax')
    .description(
      "Lift a model's tightened gate (an operator decision, audited as drift.relaxed); its window starts afresh.",
    )
    .requiredOption('--model <name>', 'model name')
    .requiredOption('--by <operator>', 'operator id, for the audit log')
    .option('--note <text>', 'why, for the audit log')
    .option('--data <dir>', 'data folder', '.handoff/demo')
    .option('--json', 'print the result as JSON', false)
    .action(async (o: { model: string; by: string; note?: string; data: string; json: boolean }) => {
      const store = await openDataStore(o.data);
      try {
        const monitor = await DriftMonitor.open({ store, audit: (drafts) => store.appendAudit(drafts) });
        if (!monitor.tightening(o.model))
          throw new HandoffError('drift.not_tightened', `the gate of model '${o.model}' is not tightened`, {
            model: o.model,
          });
        await monitor.relax(o.model, o.by, o.note);
        await monitor.close();
        if (o.json) printJson({ ok: true, model: o.model, relaxedBy: o.by });
        else process.stdout.write(`${paint.green('relaxed')} the gate of ${o.model}; the drift window starts afresh\n`);
      } finally {
        await store.close();
      }
    });
}
