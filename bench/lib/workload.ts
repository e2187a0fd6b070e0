/**
 * The work every benchmark does: the `refunds` pilot model, its synthetic signals, its perceiver,
 * rule planner, gate and actions. The model's simulated transient failures (an order lookup timing
 * out, a payment provider timing out, a mail relay refusing) are switched off, and signals whose
 * order does not exist or whose customer's mailbox bounces are left out: the benchmarks measure the
 * runtime, not retry back-offs and compensations, and every implementation compared (ours,
 * LangGraph, the minimal loop) runs exactly the same perceive / plan / gate / act code on the same
 * signals.
 */
import { perceive } from '../../src/actors/perceivers/perceive.ts';
import { stepContext } from '../../src/actors/step-context.ts';
import { rulePlanner } from '../../src/actors/planners/planner.ts';
import type { GateDecision } from '../../src/contracts/gate-decision.ts';
import type { Observation } from '../../src/contracts/observation.ts';
import type { Plan } from '../../src/contracts/plan.ts';
import type { LedgerEntry, ModelHandlers, StepContext, World } from '../../src/models/define.ts';
import { loadModel, type LoadedModel } from '../../src/models/loader.ts';
import { Rng } from '../../src/base/rng.ts';
import { createActor } from 'xstate';
import { agentMachineFor, type AgentContext } from '../../src/machines/agent.ts';

/** A step context whose draws never fall under a failure probability. */
const steady = <C extends StepContext>(ctx: C): C => ({ ...ctx, draw: () => 0.999 });

/** The refunds model with its simulated transient failures switched off. */
export async function benchModel(): Promise<LoadedModel> {
  const base = await loadModel('models/refunds');
  const h = base.handlers;
  const handlers: ModelHandlers = {
    ...h,
    perceive: (signal, ctx) => h.perceive(signal, steady(ctx)),
    plan: (observation, ctx) => h.plan(observation, steady(ctx)),
    actions: Object.fromEntries(
      Object.entries(h.actions).map(([name, a]) => [
        name,
        { ...a, execute: (args: never, ctx: Parameters<typeof a.execute>[1]) => a.execute(args, steady(ctx)) },
      ]),
    ),
  };
  return { ...base, handlers };
}

export interface Classified {
  signal: Record<string, unknown>;
  observation: Observation;
  plan: Plan;
  decision: GateDecision;
}

const memo = new Map<LoadedModel, Promise<Classified[]>>();

/** The first `scan` synthetic signals that perceive, with plan and gate decision; mail that bounces is left out. */
export function classified(model: LoadedModel, scan = 400): Promise<Classified[]> {
  let p = memo.get(model);
  if (!p) {
    p = (async () => {
      const rng = new Rng(11);
      const ctx = { now: Date.UTC(2026, 0, 5), attempt: 1, draw: () => 0.999 };
      const noWorld = { apply: async () => undefined, lookup: async () => undefined };
      const out: Classified[] = [];
      for (let i = 0; i < scan; i++) {
        const signal = model.handlers.synthesize(rng, i) as Record<string, unknown>;
        try {
          const observation = await perceive(model, `scan-${i}`, signal, ctx);
          const plan = await rulePlanner.plan(model, `scan-${i}`, observation, ctx);
          for (const [step, a] of plan.actions.entries())
            await model.handlers.actions[a.type]!.execute(a.args, { ...ctx, key: `scan-${i}/${step}`, world: noWorld });
          out.push({ signal, observation, plan, decision: model.gate(plan, observation) });
        } catch {
          // the order does not exist, or the customer's mailbox bounces
        }
      }
      return out;
    })();
    memo.set(model, p);
  }
  return p;
}

/** Signals the gate lets run on their own. */
export async function autoSignals(model: LoadedModel): Promise<Classified[]> {
  const out = (await classified(model)).filter((c) => c.decision.outcome === 'auto');
  if (out.length === 0) throw new Error('no auto signals in the scan');
  return out;
}

/** Signals that go to a tier-1 review that anyone in the support-lead role may decide. */
export async function reviewSignals(model: LoadedModel): Promise<Classified[]> {
  const out = (await classified(model)).filter(
    (c) => c.decision.outcome === 'review' && c.decision.tier === 1 && c.signal.requestedBy === undefined,
  );
  if (out.length === 0) throw new Error('no tier-1 review signals in the scan');
  return out;
}

/** A tier-1 reviewer of the refunds model. */
export const LEAD = { id: 'r-bench-lead', roles: ['support-lead'] };

/** An in-memory world for the references (no ledger on disk). */
export function memoryWorld(): World {
  const ledger = new Map<string, LedgerEntry>();
  return {
    async apply(key, action, args, result) {
      const e = ledger.get(key);
      ledger.set(
        key,
        e ? { ...e, applications: e.applications + 1 } : { key, action, args, result, at: Date.now(), applications: 1 },
      );
    },
    async lookup(key) {
      return ledger.get(key);
    },
  };
}

/** Runs a plan's actions in order against `world`, each under its idempotency key. */
export async function runActions(model: LoadedModel, world: World, id: string, plan: Plan): Promise<unknown[]> {
  const results: unknown[] = [];
  for (const [step, a] of plan.actions.entries()) {
    const key = `${id}/${step}`;
    results.push(
      await model.handlers.actions[a.type]!.execute(a.args, {
        ...stepContext(Date.now(), key, 1, 'bench'),
        key,
        world,
      }),
    );
  }
  return results;
}

/**
 * Auto-path episodes per second of the model's own work alone: perceive, plan, gate and the actions
 * against an in-memory world, one episode after another on one thread, with no runtime, no actor and
 * nothing persisted. No runtime that runs this model on one thread can finish more episodes than
 * this, so it is the ceiling for the durable episodes figure.
 */
export async function modelWorkPerSecond(model: LoadedModel, signals: Classified[], ms: number): Promise<number> {
  const world = memoryWorld();
  const episode = async (i: number) => {
    const id = `mw-${i}`;
    const signal = signals[i % signals.length]!.signal;
    const observation = await perceive(model, id, signal, stepContext(Date.now(), `${id}/perceive`, 1, 'bench'));
    const plan = await rulePlanner.plan(model, id, observation, stepContext(Date.now(), `${id}/plan`, 1, 'bench'));
    if (model.gate(plan, observation).outcome !== 'auto')
      throw new Error(`model work: ${id} did not pass the gate on its own`);
    await runActions(model, world, id, plan);
  };
  return episodesPerSecond(episode, ms);
}

/**
 * The model's own work (as {@link modelWorkPerSecond}) inside the agent machine: each episode is an
 * XState actor of `agentMachineFor` with the model's gate, sent the events the runtime sends
 * (`perceive.done`, `plan.done`, an `action.done` per action, with the effect ids the machine asks
 * for), one episode after another on one thread, with nothing stored and no runtime: no journal,
 * snapshot, audit, ledger, notices or timers. While every episode is an XState actor no runtime can
 * do better, so `this / modelWorkPerSecond` is the ceiling of the "durable episodes / the model's own
 * work" ratio (issue 23). Returns episodes/s.
 */
export async function machineWorkPerSecond(model: LoadedModel, signals: Classified[], ms: number): Promise<number> {
  const machine = agentMachineFor({
    gate: model.gate,
    onExpiry: model.config.policy.onExpiry,
    freshness: model.config.freshness,
  });
  const world = memoryWorld();
  const effectId = (a: { getSnapshot(): { context: AgentContext } }) => a.getSnapshot().context.effect!.id;
  const episode = async (i: number) => {
    const id = `mm-${i}`;
    const signal = signals[i % signals.length]!.signal;
    const actor = createActor(machine, {
      input: { episodeId: id, model: model.name, signal, retry: model.config.retry },
    }).start();
    const observation = await perceive(model, id, signal, stepContext(Date.now(), `${id}/perceive`, 1, 'bench'));
    actor.send({ type: 'perceive.done', effectId: effectId(actor), observation, at: Date.now() });
    const plan = await rulePlanner.plan(model, id, observation, stepContext(Date.now(), `${id}/plan`, 1, 'bench'));
    actor.send({ type: 'plan.done', effectId: effectId(actor), plan, at: Date.now() });
    for (const [step, a] of plan.actions.entries()) {
      const key = `${id}/${step}`;
      const result = await model.handlers.actions[a.type]!.execute(a.args, {
        ...stepContext(Date.now(), key, 1, 'bench'),
        key,
        world,
      });
      actor.send({ type: 'action.done', effectId: effectId(actor), result, at: Date.now() });
    }
    const snap = actor.getSnapshot();
    if (snap.status !== 'done') throw new Error(`machine work: ${id} ended in ${JSON.stringify(snap.value)}`);
    actor.stop();
  };
  return episodesPerSecond(episode, ms);
}

/** Episodes per second of `episode` run one after another for `ms`, after 2,000 unmeasured ones (JIT, caches). */
async function episodesPerSecond(episode: (i: number) => Promise<void>, ms: number): Promise<number> {
  for (let i = 0; i < 2000; i++) await episode(i);
  let n = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < ms) await episode(2000 + n++);
  return n / ((performance.now() - t0) / 1000);
}
