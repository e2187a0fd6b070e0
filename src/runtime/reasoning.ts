import { plannerFor } from '../actors/planners/llm-planner.ts';
import type { Planner } from '../actors/planners/planner.ts';
import type { LoadedModel } from '../models/loader.ts';
import { DriftMonitor, driftGate } from '../policy/drift.ts';
import { screenedGate } from '../policy/injection-screen.ts';
import type { Clock } from '../base/clock.ts';
import type { Runtime } from './runtime.ts';
import type { Store } from './store.ts';

/** The reasoning layer of a deployment: planners, the screened (and drift-aware) gate. */
export interface Reasoning {
  planners: Record<string, Planner>;
  gateFor: (model: LoadedModel) => LoadedModel['gate'];
  /** Starts watching the runtime's reviews for drift (no-op without drift monitoring). */
  attach(rt: Runtime): void;
  close(): Promise<void>;
}

/**
 * Assembles, per model's `planner` block: the planner (rules or LLM), prompt-injection screening in
 * front of the gate, and — with `drift` — the monitor that tightens the gate when reviewers keep
 * overriding the agent (its state is kept in the store, so a tightened gate stays tightened).
 */
export async function assembleReasoning(opts: {
  models: LoadedModel[];
  store: Store;
  clock: Clock;
  drift: boolean;
}): Promise<Reasoning> {
  let runtime: Runtime | undefined;
  // A tightened gate is reported to an operator through a case: approving it relaxes the gate
  // (the operator has looked into the planner); rejecting it keeps the gate tight.
  const monitor = opts.drift
    ? await DriftMonitor.open({
        models: opts.models,
        store: opts.store,
        clock: opts.clock,
        onTightened: async (e) => {
          if (!runtime) return undefined;
          const t = e.tightening;
          return runtime.openOperatorCase({
            model: e.model,
            target: `drift.${e.model}`,
            kind: 'handoff.drift.tightened',
            ruleId: 'drift:override-rate',
            rationale: `Reviewers overrode ${t.overrides} of ${t.samples} recent plans of ${e.model} (${Math.round(t.overrideRate * 100)}%, limit ${Math.round(t.maxOverrideRate * 100)}%${t.rule ? `, rule ${t.rule}` : ''}). The gate now sends every plan to review. Approve to relax it once the planner is fixed; reject to keep it tight.`,
            fields: {
              model: e.model,
              overrideRate: t.overrideRate,
              samples: t.samples,
              overrides: t.overrides,
              brier: t.brier,
              ...(t.rule ? { rule: t.rule } : {}),
            },
          });
        },
      })
    : undefined;
  let detach: (() => void) | undefined;
  return {
    planners: Object.fromEntries(opts.models.map((m) => [m.name, plannerFor(m, { clock: opts.clock })])),
    gateFor: (m) => {
      const screened = screenedGate(m, m.gate);
      return monitor ? driftGate(m, screened, monitor) : screened;
    },
    attach: (rt) => {
      runtime = rt;
      detach = monitor?.attach(rt);
      for (const m of opts.models)
        rt.onOperatorDecision(`drift.${m.name}`, async (r) => {
          if (r.outcome === 'approved' || r.outcome === 'modified')
            await monitor?.relax(m.name, r.decidedBy.join(',') || 'operator', `operator case ${r.caseId}`);
        });
    },
    close: async () => {
      detach?.();
      await monitor?.close();
    },
  };
}
