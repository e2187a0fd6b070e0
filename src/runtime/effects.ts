import { perceive } from '../actors/perceivers/perceive.ts';
import { rulePlanner, type Planner } from '../actors/planners/planner.ts';
import { executeOnce } from '../actors/executors/execute.ts';
import { stepContext } from '../actors/step-context.ts';
import type { TraceContext } from '../contracts/envelope.ts';
import {
  ActorCrashedError,
  ActorExistsError,
  ActorRestartingError,
  ActorSuspendedError,
  EffectError,
  EventRejectedError,
  HandoffError,
  RuntimeStoppedError,
} from '../contracts/errors.ts';
import { isNotMine } from '../contracts/cluster-errors.ts';
import { CaseInput } from '../contracts/review-case.ts';
import { parseContract } from '../contracts/parse.ts';
import type { AgentContext, AgentEvent } from '../machines/agent.ts';
import type { EffectRequest } from '../machines/effects.ts';
import type { EffectFence, World } from '../models/define.ts';
import type { LoadedModel } from '../models/loader.ts';
import type { Cell } from './cell.ts';
import { CircuitBreaker, type CircuitBreakerOptions } from '../base/circuit-breaker.ts';
import { maybeFail, type FaultSpec } from '../base/faults.ts';
import type { Host } from './host.ts';
import { operatorCaseInput } from './operator-case.ts';
import { drawFor } from '../base/rng.ts';
import type { RuntimeOptions } from './runtime-types.ts';

export interface EffectsOptions {
  world: World;
  seed: string;
  planners: Record<string, Planner>;
  faults: FaultSpec | undefined;
  fencing: RuntimeOptions['fencing'];
  circuitBreaker: CircuitBreakerOptions;
}

/**
 * The effects an agent requests: perceive and plan (reads), execute and compensate (through the
 * world, once per idempotency key, behind a circuit breaker per action type), and opening a case.
 * Each result goes back to the agent as an event.
 */
export class Effects {
  #host: Host;
  #opts: EffectsOptions;
  #breakers = new Map<string, CircuitBreaker>();

  constructor(host: Host, opts: EffectsOptions) {
    this.#host = host;
    this.#opts = opts;
  }

  #breaker(actionType: string): CircuitBreaker {
    let b = this.#breakers.get(actionType);
    if (!b)
      this.#breakers.set(actionType, (b = new CircuitBreaker(actionType, this.#host.clock, this.#opts.circuitBreaker)));
    return b;
  }

  run(cell: Cell, ctx: AgentContext, effect: EffectRequest): void {
    const h = this.#host;
    h.begin();
    h.stats.effects++;
    cell.pending++;
    // The fencing token is the one held when the effect is dispatched (after its request is durable).
    const fencing = this.#opts.fencing;
    const token = fencing?.token(cell.id);
    const fence = fencing && token !== undefined ? { token, check: () => fencing.check(cell.id, token) } : undefined;
    void this.#perform(cell.model, ctx, effect, fence)
      .then((event) => h.send(cell.id, event))
      .catch((err: unknown) => {
        if (err instanceof EventRejectedError || err instanceof RuntimeStoppedError || err instanceof ActorCrashedError)
          return;
        // The result was lost (a store write failed, the actor is restarting): the restart re-issues
        // the effect from the durable snapshot, where it is still pending.
        // (Or this node may not write the actor now: the restart reloads it if it is still ours.)
        if (
          err instanceof HandoffError &&
          (err.code === 'store.write_failed' || err instanceof ActorRestartingError || isNotMine(err))
        ) {
          h.drop(cell);
          h.scheduleRestart(cell.id, err.message, err instanceof ActorRestartingError ? err.retryAfterMs + 1 : 0);
          return;
        }
        h.log.error({ actor: cell.id, effect: effect.id, err }, 'effect result could not be delivered');
      })
      .finally(() => {
        cell.pending--;
        h.settle();
      });
  }

  async #perform(
    model: LoadedModel,
    ctx: AgentContext,
    effect: EffectRequest,
    fence?: EffectFence,
  ): Promise<AgentEvent> {
    const h = this.#host;
    const { faults, seed } = this.#opts;
    const key = `${ctx.episodeId}/${effect.kind}`;
    const failedType = {
      perceive: 'perceive.failed',
      plan: 'plan.failed',
      execute: 'action.failed',
      compensate: 'compensation.failed',
      openCase: 'plan.failed',
    } as const;
    try {
      switch (effect.kind) {
        case 'perceive': {
          maybeFail(faults, 'perceive', drawFor(seed, 'fault', effect.id));
          const observation = await perceive(
            model,
            ctx.episodeId,
            ctx.signal,
            stepContext(h.clock.now(), key, effect.attempt, seed, traceparentOf(ctx.trace)),
          );
          return { type: 'perceive.done', effectId: effect.id, observation, at: h.clock.now() };
        }
        case 'plan': {
          if (!ctx.observation) throw new EffectError('planning without an observation', { transient: false });
          maybeFail(faults, 'plan', drawFor(seed, 'fault', effect.id));
          const planner = this.#opts.planners[model.name] ?? rulePlanner;
          const planned = await planner.plan(
            model,
            ctx.episodeId,
            ctx.observation,
            stepContext(h.clock.now(), key, effect.attempt, seed, traceparentOf(ctx.trace)),
          );
          // A planner is code the runtime does not own: its plan is checked against the contract and
          // each action's argument schema before the episode takes it (ContractError naming the field:
          // the effect fails for good), unless the planner checks its own (the built-in ones do).
          const plan = planner.validatesPlans ? planned : model.validatePlan(planned, 'Plan');
          return { type: 'plan.done', effectId: effect.id, plan, at: h.clock.now() };
        }
        case 'execute':
        case 'compensate': {
          const step = effect.step ?? 0;
          const compensation = effect.kind === 'compensate';
          const faultKind = compensation ? 'compensate' : 'execute';
          const { result } = await executeOnce(
            {
              model,
              world: this.#opts.world,
              ...(fence ? { fence } : {}),
              guard: (type, fn) =>
                this.#breaker(type).run(() => {
                  maybeFail(faults, faultKind, drawFor(seed, 'fault', effect.id));
                  return fn();
                }),
              plan: ctx.plan!,
              step,
              key: `${ctx.episodeId}/${step}${compensation ? '/compensate' : ''}`,
              attempt: effect.attempt,
              now: h.clock.now(),
              seed,
              original: compensation ? ctx.results[step] : undefined,
              ...(ctx.trace ? { traceparent: traceparentOf(ctx.trace) } : {}),
            },
            compensation,
          );
          return compensation
            ? { type: 'compensation.done', effectId: effect.id, at: h.clock.now() }
            : { type: 'action.done', effectId: effect.id, result: result ?? null, at: h.clock.now() };
        }
        case 'openCase': {
          await this.#openCase(model, ctx, effect);
          return { type: 'case.opened', effectId: effect.id, caseId: effect.caseId!, at: h.clock.now() };
        }
      }
    } catch (err) {
      if (effect.kind === 'openCase' || isNotMine(err)) throw err;
      // Unknown errors and lost writes are worth retrying; a typed refusal is not.
      const transient =
        err instanceof EffectError
          ? err.transient
          : !(err instanceof HandoffError) || err.code === 'store.write_failed';
      const code = err instanceof HandoffError ? err.code : 'effect.error';
      const message = err instanceof Error ? err.message : String(err);
      return {
        type: failedType[effect.kind],
        effectId: effect.id,
        error: { message, code, transient },
        at: h.clock.now(),
      } as AgentEvent;
    }
  }

  /**
   * Opens the case an agent asked for (a review, or an operator case), unless it exists. The spawn
   * finds out whether it does (one look-up: the live index in memory, else the store's key filter,
   * else one read), so no read is made here first.
   */
  async #openCase(model: LoadedModel, ctx: AgentContext, effect: EffectRequest): Promise<void> {
    const h = this.#host;
    const caseId = effect.caseId!;
    if (h.cells.has(caseId)) return;
    let input: unknown;
    if (effect.operator) {
      const step = effect.step ?? 0;
      const action = ctx.plan?.actions[step];
      const comp = action ? model.config.actions[action.type]?.compensation : null;
      const rationale = `Compensation of step ${step + 1} (${comp ?? 'n/a'} undoing ${action?.type ?? 'n/a'}) failed for good: ${ctx.error?.message ?? 'unknown error'}. Approve to retry the compensation; reject to stop with the effect standing (the episode ends failed).`;
      input = operatorCaseInput(
        model,
        caseId,
        ctx.episodeId,
        ctx.observation,
        rationale,
        'saga:compensation-failed',
        h.clock.now(),
      );
    } else {
      input = parseContract(
        CaseInput,
        {
          caseId,
          episodeId: ctx.episodeId,
          model: model.name,
          tier: Math.max(1, ctx.decision?.tier ?? 1),
          tiers: model.config.review.tiers,
          leaseMs: model.config.review.leaseMs,
          ...(ctx.observation?.requestedBy ? { requestedBy: ctx.observation.requestedBy } : {}),
          plan: ctx.plan,
          ...(ctx.edits?.length ? { proposedPlan: ctx.proposedPlan ?? undefined, edits: ctx.edits } : {}),
          ...(ctx.trace ? { trace: ctx.trace } : {}),
          decision: ctx.decision,
          observation: ctx.observation,
          openedAt: h.clock.now(),
        },
        'CaseInput',
      );
    }
    await h.spawn('case', caseId, model, input).catch((err: unknown) => {
      // The case exists (finished, restarting or suspended): it was opened before.
      if (!(
        err instanceof ActorExistsError ||
        err instanceof ActorRestartingError ||
        err instanceof ActorSuspendedError
      ))
        throw err;
    });
  }
}

/** The W3C traceparent of an episode's root span, if it has a stored trace. */
function traceparentOf(trace: TraceContext | null | undefined): string | undefined {
  return trace ? `00-${trace.traceId}-${trace.spanId}-${trace.sampled === false ? '00' : '01'}` : undefined;
}
