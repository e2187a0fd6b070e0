import type { z } from 'zod';
import { EffectError } from '../contracts/errors.ts';
import type { Observation } from '../contracts/observation.ts';
import type { Plan } from '../contracts/plan.ts';
import type { Transform } from '../contracts/envelope.ts';
import type { Rng } from '../base/rng.ts';

/** One applied effect in the effects ledger of the world a model acts on. */
export interface LedgerEntry {
  key: string;
  action: string;
  args: Record<string, unknown>;
  result: unknown;
  at: number;
  /** How many times the effect was applied under this key; more than 1 is a duplicate effect. */
  applications: number;
}

/**
 * The external systems a model acts on. The pilots run against a simulated world kept in the data
 * folder; every effect lands in its ledger under its idempotency key, so duplicates can be counted.
 */
export interface World {
  /** Records an applied effect. Call it exactly when the effect takes place. */
  apply(
    key: string,
    action: string,
    args: Record<string, unknown>,
    result: unknown,
    fence?: EffectFence,
  ): Promise<void>;
  /** The ledger entry for a key, if that effect was ever applied. */
  lookup(key: string, fence?: EffectFence): Promise<LedgerEntry | undefined>;
}

/**
 * The fencing token an effect runs under (a cluster node's lease revision of the episode), and a
 * check that throws (`lease.lost`) once the node can no longer prove it holds that lease. The
 * runtime binds it to `ctx.world` for each effect; a world that records effects (the cluster's
 * simulated ledger) refuses a stale token, as a fencing-aware service would.
 */
export interface EffectFence {
  token: number;
  check(): void;
}

/** What perception hands over: the domain fields plus where they came from. */
export interface Perceived<F> {
  kind: string;
  subject: string;
  requestedBy?: string;
  source: string;
  /** Epoch ms at which the source observed the data. */
  observedAt: number;
  fields: F;
  transforms?: Omit<Transform, 'at'>[];
}

export interface StepContext {
  /** The runtime's clock time, epoch ms. */
  now: number;
  /** Attempt number of this step, from 1. */
  attempt: number;
  /** Stable draw in [0, 1) for this step and attempt: use it for simulated failures. */
  draw(salt?: string): number;
  /**
   * The episode's W3C trace context (its root span), when it has one: pass it on as the
   * `traceparent` header of calls to other services, so their spans join the episode's trace.
   */
  traceparent?: string;
}

export interface EffectContext extends StepContext {
  /**
   * Idempotency key of this effect: `<episodeId>/<stepIndex>` (`/compensate` for compensations).
   * The same on every attempt, retry, restart and takeover: send it to the service as its
   * idempotency key (an HTTP API's `Idempotency-Key` header), so a duplicate request that slips
   * through (a node paused or cut off mid-call) is absorbed by the receiver. See docs/durability.md.
   */
  key: string;
  /** The same as {@link key}, under the name services use (always set by the runtime). */
  idempotencyKey?: string;
  /**
   * In a cluster: the fencing token (lease revision) this effect runs under. It grows with every
   * takeover of the episode; a service that records it can refuse a request carrying a smaller one.
   * Undefined in the embedded runtime (one writer).
   */
  fencingToken?: number;
  world: World;
}

/** A planner's proposal before the runtime stamps its id and planner name. */
export type PlanDraft = Omit<Plan, 'id' | 'planner'>;

export interface ActionImpl<A extends Record<string, unknown> = Record<string, unknown>> {
  /** zod schema of the action's arguments; plans and reviewer edits are validated with it. */
  args: z.ZodType<A>;
  /**
   * Runs the effect. Throw `EffectError` with `transient: true` for failures worth retrying, and
   * `transient: false` for permanent ones (which start compensation).
   */
  execute(args: A, ctx: EffectContext): Promise<unknown>;
  /**
   * Describes an action from its arguments ("Refund €15.00 to the IBAN on file"). Used when a
   * reviewer edits the arguments, so the description shown to the next reviewer matches what runs;
   * without it an edited action shows its type's description from model.json.
   */
  describe?(args: A): string;
}

/** How a {@link simulatedAction} fails, checked in this order before its effect. */
export interface SimulatedFailures<A> {
  /** A share of attempts fails transiently (retried), drawn per step, attempt and `salt`. */
  transient?: { salt: string; share: number; message: (args: A) => string };
  /** Further checks; throw `EffectError` (transient or permanent) to fail. */
  check?: (args: A, ctx: EffectContext) => void;
}

/**
 * An action of a simulated system (the pilot models', demos', tests'): it fails as `fails` says,
 * else records `result` in the world's ledger under the step's idempotency key and returns it. A
 * real action calls its system instead, passing `ctx.key` as the idempotency key.
 */
export function simulatedAction<A extends Record<string, unknown>, R>(
  name: string,
  args: z.ZodType<A>,
  result: (args: A, ctx: EffectContext) => R,
  fails: SimulatedFailures<A> = {},
): ActionImpl<A> {
  return {
    args,
    async execute(a, ctx) {
      if (fails.transient && ctx.draw(fails.transient.salt) < fails.transient.share)
        throw new EffectError(fails.transient.message(a), { transient: true });
      fails.check?.(a, ctx);
      const r = result(a, ctx);
      await ctx.world.apply(ctx.key, name, a, r);
      return r;
    },
  };
}

/** The code half of a model (`handlers.ts`): schemas and implementations. */
export interface ModelHandlers<S = unknown, F extends Record<string, unknown> = Record<string, unknown>> {
  /** Contract of the raw signal that starts an episode. */
  signal: z.ZodType<S>;
  /** Contract of the observation's domain fields; mark personal data with `sensitive()`. */
  fields: z.ZodType<F>;
  /** Takes a signal, reads what else is needed, returns validated fields with provenance. */
  perceive(signal: S, ctx: StepContext): Promise<Perceived<F>>;
  /** Rule-based planner: actions, confidence, rationale and risk from the observation. */
  plan(observation: Observation & { fields: F }, ctx: StepContext): Promise<PlanDraft>;
  /** Every action and compensation named in `model.json`. */
  // `any`: each action has its own argument type, and ActionImpl is contravariant in it.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  actions: Record<string, ActionImpl<any>>;
  /** Realistic synthetic signals for the demo and simulations; deterministic for an index and rng. */
  synthesize(rng: Rng, index: number): S;
}

/** Identity function that gives a model's handlers their types. */
export function defineHandlers<S, F extends Record<string, unknown>>(
  handlers: ModelHandlers<S, F>,
): ModelHandlers<S, F> {
  return handlers;
}
