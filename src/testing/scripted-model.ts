/**
 * Effect control for tests on the real runtime. The runtime performs an episode's effects itself (it
 * calls the model's perceiver, the planner, the action handlers); to walk a path, a test must decide
 * how each of them ends. A scripted model wraps the model's handlers and a test planner wraps the
 * plan step: each call waits at a gate until the test releases it with a result. `done` runs the
 * model's real handler (with pinned draws, see {@link BENIGN_DRAW}); `transient` / `permanent` throw
 * an `EffectError` as a flaky or refusing system would. Nothing in the runtime is replaced.
 */
import { EffectError } from '../contracts/errors.ts';
import type { Observation } from '../contracts/observation.ts';
import type { Plan } from '../contracts/plan.ts';
import type { Planner } from '../actors/planners/planner.ts';
import type { ModelHandlers } from '../models/define.ts';
import type { LoadedModel } from '../models/loader.ts';
import { BENIGN_DRAW, type PlanClass } from './fixtures.ts';
import type { EffectResult } from './steps.ts';

export type GatedKind = 'perceive' | 'plan' | 'execute' | 'compensate';

export type Directive =
  | { result: EffectResult; plan?: PlanClass }
  /** The runtime is being closed under the effect: it never reports back (after taking place, if `apply`). */
  | { crash: true; apply: boolean };

export interface Arrival {
  gen: number;
  kind: GatedKind;
  step?: number;
  release(d: Directive): void;
}

/** Effects waiting for a test to decide how they end, per runtime generation. */
export class EffectGates {
  #waiting: Arrival[] = [];
  #closing = new Map<number, (a: Arrival) => Directive>();
  #listeners = new Set<() => void>();

  arrive(gen: number, kind: GatedKind, step?: number): Promise<Directive> {
    return new Promise((resolve) => {
      const a: Arrival = { gen, kind, ...(step !== undefined ? { step } : {}), release: resolve };
      const auto = this.#closing.get(gen);
      if (auto) resolve(auto(a));
      else {
        this.#waiting.push(a);
        for (const l of this.#listeners) l();
      }
    });
  }

  /** The oldest waiting effect of this kind (and step) in this generation, removed from the queue. */
  take(gen: number, kind: GatedKind, step?: number): Arrival | undefined {
    const i = this.#waiting.findIndex(
      (a) => a.gen === gen && a.kind === kind && (step === undefined || a.step === undefined || a.step === step),
    );
    return i === -1 ? undefined : this.#waiting.splice(i, 1)[0];
  }

  /** What waits in this generation (for diagnostics). */
  pending(gen: number): Arrival[] {
    return this.#waiting.filter((a) => a.gen === gen);
  }

  blocked(gen: number): number {
    return this.pending(gen).length;
  }

  /** Answers everything waiting in `gen` now and later with `decide` (the runtime is closing). */
  close(gen: number, decide: (a: Arrival) => Directive): void {
    this.#closing.set(gen, decide);
    const mine = this.pending(gen);
    this.#waiting = this.#waiting.filter((a) => a.gen !== gen);
    for (const a of mine) a.release(decide(a));
  }
}

function injected(result: 'transient' | 'permanent', what: string): EffectError {
  return new EffectError(`injected ${result} failure of ${what} (model-based test)`, {
    transient: result === 'transient',
    code: `test.${result}`,
  });
}

async function follow<T>(d: Directive, what: string, real: () => Promise<T>): Promise<T> {
  if ('crash' in d) {
    if (d.apply) await real();
    throw new Error(`the runtime was closed under ${what} (simulated crash)`);
  }
  if (d.result !== 'done') throw injected(d.result, what);
  return real();
}

/** The model with every perceiver and action call held at `gates` (generation `gen`). */
export function scriptedModel(model: LoadedModel, gates: EffectGates, gen: number): LoadedModel {
  const h = model.handlers;
  const actions: ModelHandlers['actions'] = {};
  for (const [type, impl] of Object.entries(h.actions)) {
    actions[type] = {
      args: impl.args,
      async execute(args, ctx) {
        const compensation = ctx.key.endsWith('/compensate');
        const parts = ctx.key.split('/');
        const step = Number(parts[parts.length - (compensation ? 2 : 1)]);
        const d = await gates.arrive(
          gen,
          compensation ? 'compensate' : 'execute',
          Number.isInteger(step) ? step : undefined,
        );
        return follow(d, `${type} (${ctx.key})`, () => impl.execute(args, { ...ctx, draw: () => BENIGN_DRAW }));
      },
    };
  }
  const handlers: ModelHandlers = {
    ...h,
    actions,
    async perceive(signal, ctx) {
      const d = await gates.arrive(gen, 'perceive');
      return follow(d, 'perceive', () => h.perceive(signal, { ...ctx, draw: () => BENIGN_DRAW }));
    },
  };
  return { ...model, handlers };
}

/** A planner whose plan step returns the fixture plan the test names (or fails as scripted). */
export function scriptedPlanner(plans: Record<PlanClass, Plan>, gates: EffectGates, gen: number): Planner {
  return {
    name: 'handoff-testing',
    async plan(_model: LoadedModel, _episodeId: string, _observation: Observation): Promise<Plan> {
      const d = await gates.arrive(gen, 'plan');
      return follow(d, 'plan', async () => {
        const cls = 'result' in d ? d.plan : undefined;
        const plan = cls ? plans[cls] : undefined;
        if (!plan) throw new Error(`no fixture plan for gate branch '${cls}' (have ${Object.keys(plans).join(', ')})`);
        return structuredClone(plan);
      });
    },
  };
}
