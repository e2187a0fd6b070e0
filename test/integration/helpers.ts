/**
 * Shared helpers for the runtime integration tests: a fresh LevelDB per test, a simulated clock, a
 * way to drive the clock until a condition holds, and a scan of synthetic refund signals that
 * classifies each one (auto / review / deny) with the model's own perceiver, planner and gate.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino, { type Logger } from 'pino';
import { perceive } from '../../src/actors/perceivers/perceive.ts';
import { rulePlanner } from '../../src/actors/planners/planner.ts';
import type { GateDecision } from '../../src/contracts/gate-decision.ts';
import type { Observation } from '../../src/contracts/observation.ts';
import type { Plan } from '../../src/contracts/plan.ts';
import type { AgentContext } from '../../src/machines/agent.ts';
import type { CaseContext } from '../../src/machines/review-case.ts';
import type { LedgerEntry } from '../../src/models/define.ts';
import { loadModel, type LoadedModel } from '../../src/models/loader.ts';
import { SimulatedClock } from '../../src/base/clock.ts';
import { LevelStore } from '../../src/runtime/level-store.ts';
import { Rng } from '../../src/base/rng.ts';
import { Runtime, type ActorView, type RuntimeOptions } from '../../src/runtime/runtime.ts';
import type { JournalEntry, OutboxMessage } from '../../src/runtime/store.ts';
import { LevelWorld } from '../../src/runtime/world.ts';

export const START = Date.UTC(2026, 0, 5, 9, 0, 0);
export const SEED = 'it-runtime';
/** Seed of the synthetic signal stream (`synthesize(new Rng(SIGNAL_SEED), i)`). */
export const SIGNAL_SEED = 7;

let modelPromise: Promise<LoadedModel> | undefined;
export function refunds(): Promise<LoadedModel> {
  modelPromise ??= loadModel('models/refunds');
  return modelPromise;
}

// ------------------------------------------------------------------------------------------------
// Environment: temp dir, store, world, clock, runtime
// ------------------------------------------------------------------------------------------------

export interface Env {
  dir: string;
  store: LevelStore;
  world: LevelWorld;
  clock: SimulatedClock;
  rt: Runtime;
  model: LoadedModel;
}

const dirs: string[] = [];
const live = new Set<{ rt: Runtime; store: LevelStore }>();

export async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'handoff-it-'));
  dirs.push(dir);
  return dir;
}

export const silent: Logger = pino({ level: 'silent' });

/** Opens a store + runtime on `dir` (a new temp dir by default) with a simulated clock at `start`. */
export async function openEnv(
  opts: { dir?: string; start?: number; runtime?: Partial<RuntimeOptions> } = {},
): Promise<Env> {
  const model = await refunds();
  const dir = opts.dir ?? (await tempDir());
  const store = await LevelStore.open(dir);
  const world = new LevelWorld(store);
  const clock = new SimulatedClock(opts.start ?? START);
  const rt = await Runtime.open({ store, world, models: [model], clock, seed: SEED, logger: silent, ...opts.runtime });
  // Closing twice is harmless (both close() are idempotent): cleanup closes whatever a test left open.
  live.add({ rt, store });
  return { dir, store, world, clock, rt, model };
}

/** Closes the runtime and then the store, as a process shutting down would. */
export async function closeEnv(env: Pick<Env, 'rt' | 'store'>): Promise<void> {
  await env.rt.close();
  await env.store.close();
}

/** Call from afterEach: closes what a test left open and removes the temp dirs. */
export async function cleanup(): Promise<void> {
  for (const h of [...live]) {
    live.delete(h);
    await h.rt.close().catch(() => undefined);
    await h.store.close().catch(() => undefined);
  }
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
}

// ------------------------------------------------------------------------------------------------
// Driving the simulated clock
// ------------------------------------------------------------------------------------------------

const tick = () => new Promise<void>((r) => setTimeout(r, 0));

/**
 * Waits until the runtime is idle and stays idle across a few macrotask turns (timer refills read
 * the store's index asynchronously and are not counted as runtime work).
 */
export async function settle(rt: Runtime): Promise<void> {
  for (let quiet = 0; quiet < 3;) {
    await rt.whenIdle();
    await tick();
    quiet = rt.busy === 0 ? quiet + 1 : 0;
  }
}

/**
 * Moves the clock from due timer to due timer until `until` holds (checked after each step), nothing
 * is due, or the clock would pass `notAfter`. Returns whether `until` held.
 */
export async function drive(
  rt: Runtime,
  clock: SimulatedClock,
  until: () => boolean | Promise<boolean> = () => false,
  opts: { maxSteps?: number; notAfter?: number } = {},
): Promise<boolean> {
  const max = opts.maxSteps ?? 2000;
  for (let i = 0; i < max; i++) {
    await settle(rt);
    if (await until()) return true;
    const next = clock.nextDue();
    if (next === undefined) {
      // A refill may still be reading the timer index: give it a moment before giving up.
      await new Promise((r) => setTimeout(r, 5));
      await settle(rt);
      if (clock.nextDue() === undefined) return !!(await until());
      continue;
    }
    if (opts.notAfter !== undefined && next > opts.notAfter) return !!(await until());
    clock.advanceTo(next);
  }
  return !!(await until());
}

/** Drives until the actor has finished (status not active). */
export async function driveUntilDone(env: Pick<Env, 'rt' | 'clock'>, id: string): Promise<ActorView> {
  let view: ActorView | undefined;
  await drive(env.rt, env.clock, async () => {
    view = await env.rt.get(id);
    return !!view && view.status !== 'active';
  });
  if (!view) throw new Error(`${id} does not exist`);
  return view;
}

// ------------------------------------------------------------------------------------------------
// Reading the store
// ------------------------------------------------------------------------------------------------

export async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

export const journalOf = (rt: Runtime, id: string): Promise<JournalEntry[]> => collect(rt.journal(id));
export const outboxOf = (store: LevelStore): Promise<OutboxMessage[]> => collect(store.outbox());

/** Ledger entries of one episode (keys `<episodeId>/<step>...`), in key order. */
export async function ledgerOf(world: LevelWorld, episodeId: string): Promise<LedgerEntry[]> {
  return (await collect(world.entries())).filter((e) => e.key.startsWith(`${episodeId}/`));
}

export const agentCtx = (v: ActorView | undefined): AgentContext => v!.context as AgentContext;
export const caseCtx = (v: ActorView | undefined): CaseContext => v!.context as CaseContext;

// ------------------------------------------------------------------------------------------------
// Synthetic signals, classified
// ------------------------------------------------------------------------------------------------

export interface Classified {
  index: number;
  signal: Record<string, unknown>;
  observation: Observation;
  plan: Plan;
  decision: GateDecision;
  /** Some customer mailboxes bounce for good: a plan that notifies them ends compensated. */
  bounces: boolean;
}

let scanCache: Promise<Classified[]> | undefined;

/**
 * The first `count` synthetic signals of SIGNAL_SEED that perceive (orders that exist), each with
 * its plan and gate decision as the model computes them. Perception and planning are deterministic
 * in the signal (transient failures are retried by the runtime and do not change the result).
 */
export function scanSignals(count = 300): Promise<Classified[]> {
  scanCache ??= (async () => {
    const model = await refunds();
    const rng = new Rng(SIGNAL_SEED);
    const ctx = { now: START, attempt: 1, draw: () => 0.5 };
    const noWorld = { apply: async () => undefined, lookup: async () => undefined };
    const out: Classified[] = [];
    for (let i = 0; i < count; i++) {
      const signal = model.handlers.synthesize(rng, i) as Record<string, unknown>;
      let observation: Observation;
      let plan: Plan;
      try {
        observation = await perceive(model, `scan-${i}`, signal, ctx);
        plan = await rulePlanner.plan(model, `scan-${i}`, observation, ctx);
      } catch {
        continue; // order not found: perception fails for good
      }
      let bounces = false;
      for (const a of plan.actions) {
        if (a.type !== 'notifyCustomer') continue;
        try {
          await model.handlers.actions.notifyCustomer!.execute(a.args, { ...ctx, key: 'probe', world: noWorld });
        } catch {
          bounces = true;
        }
      }
      out.push({ index: i, signal, observation, plan, decision: model.gate(plan, observation), bounces });
    }
    return out;
  })();
  return scanCache;
}

/** Signals that go to review at `tier` (default 1), whose mail does not bounce, and that nobody on staff filed. */
export async function reviewSignals(opts: { tier?: number; requestedBy?: 'none' | 'any' } = {}): Promise<Classified[]> {
  const tier = opts.tier ?? 1;
  return (await scanSignals()).filter(
    (c) =>
      c.decision.outcome === 'review' &&
      c.decision.tier === tier &&
      !c.bounces &&
      (opts.requestedBy === 'any' || c.signal.requestedBy === undefined),
  );
}

export async function autoSignals(): Promise<Classified[]> {
  return (await scanSignals()).filter((c) => c.decision.outcome === 'auto' && !c.bounces);
}

// ------------------------------------------------------------------------------------------------
// Reviewers and commands
// ------------------------------------------------------------------------------------------------

export const LEAD = { id: 'r-sofia', roles: ['support-lead'] };
export const LEAD2 = { id: 'r-amelie', roles: ['support-lead'] };
export const MANAGER = { id: 'r-ingrid', roles: ['refunds-manager'] };

let commandSeq = 0;
export type CommandType = 'claim' | 'release' | 'renew' | 'approve' | 'modify' | 'reject' | 'escalate';

/** A reviewer command with a fresh commandId (override any field with `extra`). */
export function cmd(
  type: CommandType,
  caseId: string,
  reviewer: { id: string; roles: string[] },
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    type: `handoff.case.${type}`,
    schemaVersion: 1,
    commandId: `cmd-${++commandSeq}-${type}`,
    caseId,
    reviewer,
    ...extra,
  };
}
