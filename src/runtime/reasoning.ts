import { plannerFor } from '../actors/planners/llm-planner.ts';
import type { Planner } from '../actors/planners/planner.ts';
import type { LoadedModel } from '../models/loader.ts';
import { DriftMonitor, driftGate } from '../policy/drift.ts';
import { screenedGate } from '../policy/injection-screen.ts';
import type { Clock } from './clock.ts';
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
export async function assembleReasoning(opts: { models: LoadedModel[]; store: Store; clock: Clock; drift: boolean }): Promise<Reasoning> {
  const monitor = opts.drift ? await DriftMonitor.open({ models: opts.models, store: opts.store, clock: opts.clock }) : undefined;
  let detach: (() => void) | undefined;
  return {
    planners: Object.fromEntries(opts.models.map((m) => [m.name, plannerFor(m, { clock: opts.clock })])),
    gateFor: (m) => {
      const screened = screenedGate(m, m.gate);
      return monitor ? driftGate(m, screened, monitor) : screened;
    },
    attach: (rt) => {
      detach = monitor?.attach(rt);
    },
    close: async () => {
      detach?.();
      await monitor?.close();
    },
  };
}
