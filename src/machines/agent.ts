import { and, assign, not, setup } from 'xstate';
import type { EpisodeOutcome } from '../contracts/episode-outcome.ts';
import type { GateDecision } from '../contracts/gate-decision.ts';
import type { FreshnessConfig, PolicyConfig, RetryConfig } from '../contracts/model-config.ts';
import type { TraceContext } from '../contracts/envelope.ts';
import type { Observation } from '../contracts/observation.ts';
import type { Plan } from '../contracts/plan.ts';
import type { CaseEdit, CaseResolution } from '../contracts/review-case.ts';
import { checkFreshness, flagsStale, withFreshness } from '../policy/freshness.ts';
import {
  backoffMs,
  initialContext,
  type EffectKind,
  type EffectRequest,
  type FailureInfo,
  type Stamped,
  type TimerEvent,
  type Timers,
} from './effects.ts';

export interface AgentInput {
  episodeId: string;
  model: string;
  signal: unknown;
  retry: RetryConfig;
  /** The episode's trace, fixed at the start (absent in older snapshots). */
  trace?: TraceContext;
}

export interface AgentContext {
  episodeId: string;
  model: string;
  signal: unknown;
  /** The episode's trace (random, or continued from the signal's traceparent); null or absent in older snapshots. */
  trace?: TraceContext | null;
  retry: RetryConfig;
  observation: Observation | null;
  plan: Plan | null;
  decision: GateDecision | null;
  /** The planner's plan when reviewers edited `plan` (absent or null otherwise, and in older snapshots). */
  proposedPlan?: Plan | null;
  /** The reviewers' edits of the planner's plan that `plan` carries, in order. */
  edits?: CaseEdit[];
  /** How the current plan came to be allowed to run. */
  resolution: 'auto' | 'approved' | 'modified' | 'expired' | null;
  /** Highest tier a reviewer has approved the current plan at (0: none). */
  approvedTier: number;
  caseIds: string[];
  /** Next action to execute. */
  step: number;
  /** Results of executed actions, by step. */
  results: unknown[];
  /** Next action to compensate (counting down), -1 when none. */
  compensateStep: number;
  attempt: number;
  effect: EffectRequest | null;
  timers: Timers;
  error: (FailureInfo & { phase: string }) | null;
  outcome: EpisodeOutcome | null;
  /** Compensation retries an operator approved (absent in older snapshots); part of the effect ids. */
  compensationRetries?: number;
  /** Times the episode perceived again because its data went stale (absent in older snapshots). */
  reperceived?: number;
  /** A reviewer decided on a case that showed the data as stale, so acting on it is their informed call. */
  staleAccepted?: boolean;
  /** Epoch ms of the first and the last event. */
  startedAt: number | null;
  endedAt: number | null;
}

export type AgentEvent =
  | ({ type: 'perceive.done'; effectId: string; observation: Observation } & Stamped)
  | ({ type: 'plan.done'; effectId: string; plan: Plan } & Stamped)
  | ({ type: 'action.done'; effectId: string; result: unknown } & Stamped)
  | ({ type: 'compensation.done'; effectId: string } & Stamped)
  | ({
      type: 'perceive.failed' | 'plan.failed' | 'action.failed' | 'compensation.failed';
      effectId: string;
      error: FailureInfo;
    } & Stamped)
  | ({ type: 'case.opened'; effectId: string; caseId: string } & Stamped)
  | ({ type: 'case.resolved'; resolution: CaseResolution } & Stamped)
  | ({ type: 'timer.retry' } & TimerEvent);

export interface AgentOutput {
  episodeId: string;
  outcome: EpisodeOutcome;
  reason: string;
}

/** The effect request for `kind` in the current context; ids are deterministic, so replays agree. */
function nextEffect(context: AgentContext, kind: EffectKind, operator = false): { effect: EffectRequest } {
  const step = kind === 'execute' ? context.step : kind === 'compensate' ? context.compensateStep : undefined;
  const caseId = kind === 'openCase' ? `${context.episodeId}.case-${context.caseIds.length + 1}` : undefined;
  // Each re-perception round, and each compensation retry an operator approved, gets its own ids, so a
  // (late, redelivered) result of an earlier round is never taken for this one.
  const round =
    (kind === 'perceive' || kind === 'plan') && (context.reperceived ?? 0) > 0
      ? `r${context.reperceived}`
      : kind === 'compensate' && (context.compensationRetries ?? 0) > 0
        ? `r${context.compensationRetries}`
        : '';
  const id = [context.episodeId, kind, round, step ?? caseId ?? '', context.attempt].filter((p) => p !== '').join(':');
  return {
    effect: {
      id,
      kind,
      attempt: context.attempt,
      ...(step !== undefined ? { step } : {}),
      ...(caseId ? { caseId } : {}),
      ...(operator ? { operator, step: context.compensateStep } : {}),
    },
  };
}

function failure(event: AgentEvent): FailureInfo {
  return 'error' in event ? event.error : { message: 'unknown failure', code: 'unknown', transient: false };
}

/**
 * The agent episode: perceive → plan → gate → act, with human review where the gate asks for it and
 * compensation (a saga) when acting fails for good. Pure: effects are requested as data (see
 * `effects.ts`); the gate and the expiry fallback are implementations the runtime provides per model
 * with {@link agentMachineFor}.
 */
export const agentMachine = setup({
  types: {
    context: {} as AgentContext,
    events: {} as AgentEvent,
    input: {} as AgentInput,
    output: {} as AgentOutput,
  },
  actions: {
    requestPerception: assign(({ context }) => nextEffect(context, 'perceive')),
    requestPlan: assign(({ context }) => nextEffect(context, 'plan')),
    requestExecution: assign(({ context }) => nextEffect(context, 'execute')),
    requestCompensation: assign(({ context }) => nextEffect(context, 'compensate')),
    requestReviewCase: assign(({ context }) => nextEffect(context, 'openCase')),
    requestOperatorCase: assign(({ context }) => nextEffect(context, 'openCase', true)),
    retryCompensation: assign(({ context }) => ({
      error: null,
      attempt: 1,
      compensationRetries: (context.compensationRetries ?? 0) + 1,
    })),
    evaluateGate: () => {
      throw new Error('evaluateGate must be provided by the runtime (agentMachineFor)');
    },
    clearEffect: assign({ effect: null, attempt: 1 }),
    recordStart: assign({ startedAt: ({ context, event }) => context.startedAt ?? event.at }),
    storeObservation: assign({
      observation: ({ event }) => (event.type === 'perceive.done' ? event.observation : null),
    }),
    // A new plan from the planner (after perceiving again) carries no edits.
    storePlan: assign(({ event, context }) =>
      event.type !== 'plan.done'
        ? {}
        : context.edits?.length
          ? { plan: event.plan, proposedPlan: null, edits: [] }
          : { plan: event.plan },
    ),
    noteCaseOpened: assign({
      caseIds: ({ context, event }) =>
        event.type === 'case.opened' && !context.caseIds.includes(event.caseId)
          ? [...context.caseIds, event.caseId]
          : context.caseIds,
      effect: null,
    }),
    linkResolvedCase: assign(({ context, event }) =>
      event.type === 'case.resolved' && !context.caseIds.includes(event.resolution.caseId)
        ? { caseIds: [...context.caseIds, event.resolution.caseId], effect: null }
        : { effect: null },
    ),
    markAutoIfUnreviewed: assign({ resolution: ({ context }) => context.resolution ?? 'auto' }),
    /** Stale data: perceive again; whatever was approved concerned the old data, so it no longer counts. */
    startReperception: assign(({ context }) => ({
      reperceived: (context.reperceived ?? 0) + 1,
      resolution: null,
      approvedTier: 0,
      staleAccepted: false,
      attempt: 1,
      effect: null,
    })),
    acceptApproval: assign(({ context, event }) =>
      event.type === 'case.resolved'
        ? {
            // A plan a reviewer modified stays "modified" when a higher tier then approves it.
            resolution: context.resolution === 'modified' ? ('modified' as const) : ('approved' as const),
            approvedTier: event.resolution.tier,
            plan: event.resolution.plan,
            staleAccepted: flagsStale(context.decision),
          }
        : {},
    ),
    acceptModification: assign(({ context, event }) =>
      event.type === 'case.resolved'
        ? {
            resolution: 'modified' as const,
            approvedTier: event.resolution.tier,
            plan: event.resolution.plan,
            // The planner's plan and every edit travel with the edited plan to the next case.
            proposedPlan: context.proposedPlan ?? context.plan,
            edits: event.resolution.edits ?? context.edits ?? [],
            staleAccepted: flagsStale(context.decision),
          }
        : {},
    ),
    adoptSafeAction: () => {
      throw new Error('adoptSafeAction must be provided by the runtime (agentMachineFor)');
    },
    recordResult: assign(({ context, event }) =>
      event.type === 'action.done'
        ? { results: [...context.results, event.result], step: context.step + 1, attempt: 1, effect: null }
        : {},
    ),
    armRetry: assign(({ context, event }) => ({
      timers: {
        ...context.timers,
        retry: event.at + backoffMs(context.attempt, context.retry.backoffMs, context.retry.maxBackoffMs),
      },
      attempt: context.attempt + 1,
      effect: null,
    })),
    clearRetry: assign(({ context }) => {
      const { retry: _done, ...timers } = context.timers;
      return { timers };
    }),
    recordFailure: assign(({ context, event }) => ({
      error: { ...failure(event), phase: event.type.split('.')[0] ?? 'unknown' },
      effect: null,
      attempt: 1,
      // A failed action starts compensation from the last completed step; a failed compensation
      // keeps pointing at the step that could not be undone.
      compensateStep: event.type === 'action.failed' ? context.step - 1 : context.compensateStep,
    })),
    stepCompensated: assign(({ context }) => ({
      compensateStep: context.compensateStep - 1,
      attempt: 1,
      effect: null,
    })),
    setOutcomeDone: assign({
      outcome: ({ context }): EpisodeOutcome =>
        context.resolution === 'approved'
          ? 'approved'
          : context.resolution === 'modified'
            ? 'modified'
            : context.resolution === 'expired'
              ? 'expired'
              : 'autoActed',
      endedAt: ({ event }) => event.at,
      effect: null,
      timers: {},
    }),
    setOutcome: assign((_, params: { outcome: EpisodeOutcome }) => ({ outcome: params.outcome })),
    closeEpisode: assign({ endedAt: ({ event }) => event.at, effect: null, timers: {} }),
  },
  guards: {
    effectIsCurrent: ({ context, event }) => 'effectId' in event && context.effect?.id === event.effectId,
    retryTimerIsCurrent: ({ context, event }) => event.type === 'timer.retry' && context.timers.retry === event.dueAt,
    transientWithAttemptsLeft: ({ context, event }) =>
      failure(event).transient && context.attempt < context.retry.maxAttempts,
    gateDenies: ({ context }) => context.decision?.outcome === 'deny',
    gateAllowsAuto: ({ context }) => context.decision?.outcome === 'auto',
    /**
     * After a modification: the re-gated plan needs no higher tier than the one that approved it, and
     * if its data is stale now, the reviewer was shown that.
     */
    reviewAlreadyCovers: ({ context }) =>
      context.decision?.outcome === 'review' &&
      context.approvedTier > 0 &&
      context.approvedTier >= Math.max(1, context.decision.tier) &&
      (!flagsStale(context.decision) || context.staleAccepted === true),
    /** The gate found the data stale and the model perceives again (rounds left); provided per model. */
    staleMayReperceive: () => false,
    /** An approval arrived when the data was stale, on a case that did not show it stale; provided per model. */
    staleAtApproval: () => false,
    /** The resolution is for the case this agent is waiting on (it may arrive before `case.opened`). */
    caseIsCurrent: ({ context, event }) =>
      event.type === 'case.resolved' &&
      (context.effect?.kind === 'openCase'
        ? context.effect.caseId === event.resolution.caseId
        : context.caseIds.at(-1) === event.resolution.caseId),
    caseApproved: ({ event }) => event.type === 'case.resolved' && event.resolution.outcome === 'approved',
    caseModified: ({ event }) => event.type === 'case.resolved' && event.resolution.outcome === 'modified',
    caseRejected: ({ event }) => event.type === 'case.resolved' && event.resolution.outcome === 'rejected',
    expiryFallsBackToSafeAction: () => false,
    moreActionsToRun: ({ context }) => context.plan !== null && context.step + 1 < context.plan.actions.length,
    nothingExecutedYet: ({ context }) => context.step === 0,
    moreToCompensate: ({ context }) => context.compensateStep > 0,
  },
}).createMachine({
  id: 'agent',
  context: ({ input }) =>
    initialContext({
      episodeId: input.episodeId,
      model: input.model,
      signal: input.signal,
      retry: input.retry,
      observation: null,
      plan: null,
      decision: null,
      resolution: null,
      approvedTier: 0,
      caseIds: [],
      step: 0,
      results: [],
      compensateStep: -1,
      attempt: 1,
      effect: null,
      timers: {},
      error: null,
      outcome: null,
      startedAt: null,
      endedAt: null,
      trace: input.trace ?? null,
    }),
  initial: 'perceiving',
  states: {
    perceiving: {
      entry: 'requestPerception',
      on: {
        'perceive.done': {
          guard: 'effectIsCurrent',
          target: 'planning',
          actions: ['recordStart', 'storeObservation', 'clearEffect'],
        },
        'perceive.failed': [
          {
            guard: and(['effectIsCurrent', 'transientWithAttemptsLeft']),
            target: 'perceiveBackoff',
            actions: ['recordStart', 'armRetry'],
          },
          { guard: 'effectIsCurrent', target: 'failed', actions: ['recordStart', 'recordFailure'] },
        ],
      },
    },
    perceiveBackoff: {
      on: { 'timer.retry': { guard: 'retryTimerIsCurrent', target: 'perceiving', actions: 'clearRetry' } },
    },
    planning: {
      entry: 'requestPlan',
      on: {
        'plan.done': { guard: 'effectIsCurrent', target: 'gating', actions: ['storePlan', 'clearEffect'] },
        'plan.failed': [
          { guard: and(['effectIsCurrent', 'transientWithAttemptsLeft']), target: 'planBackoff', actions: 'armRetry' },
          { guard: 'effectIsCurrent', target: 'failed', actions: 'recordFailure' },
        ],
      },
    },
    planBackoff: {
      on: { 'timer.retry': { guard: 'retryTimerIsCurrent', target: 'planning', actions: 'clearRetry' } },
    },
    gating: {
      entry: 'evaluateGate',
      always: [
        { guard: 'gateDenies', target: 'denied' },
        { guard: 'gateAllowsAuto', target: 'acting', actions: 'markAutoIfUnreviewed' },
        { guard: 'reviewAlreadyCovers', target: 'acting' },
        { guard: 'staleMayReperceive', target: 'perceiving', actions: 'startReperception' },
        { target: 'awaitingReview' },
      ],
    },
    awaitingReview: {
      entry: 'requestReviewCase',
      on: {
        'case.opened': { guard: 'effectIsCurrent', actions: 'noteCaseOpened' },
        'case.resolved': [
          {
            guard: and(['caseIsCurrent', 'caseApproved', not('staleAtApproval')]),
            target: 'acting',
            actions: ['linkResolvedCase', 'acceptApproval'],
          },
          {
            guard: and(['caseIsCurrent', 'caseModified']),
            target: 'gating',
            actions: ['linkResolvedCase', 'acceptModification'],
          },
          { guard: and(['caseIsCurrent', 'caseRejected']), target: 'rejected', actions: 'linkResolvedCase' },
          {
            guard: and(['caseIsCurrent', 'expiryFallsBackToSafeAction']),
            target: 'acting',
            actions: ['linkResolvedCase', 'adoptSafeAction'],
          },
          { guard: and(['caseIsCurrent', not('caseApproved')]), target: 'expired', actions: 'linkResolvedCase' },
          // Time passed in the queue: an approval on data gone stale is gated again at its own time.
          {
            guard: and(['caseIsCurrent', 'caseApproved', 'staleAtApproval']),
            target: 'gating',
            actions: ['linkResolvedCase', 'acceptApproval'],
          },
        ],
      },
    },
    acting: {
      entry: 'requestExecution',
      on: {
        'action.done': [
          {
            guard: and(['effectIsCurrent', 'moreActionsToRun']),
            target: 'acting',
            reenter: true,
            actions: 'recordResult',
          },
          { guard: 'effectIsCurrent', target: 'done', actions: 'recordResult' },
        ],
        'action.failed': [
          { guard: and(['effectIsCurrent', 'transientWithAttemptsLeft']), target: 'actBackoff', actions: 'armRetry' },
          { guard: and(['effectIsCurrent', 'nothingExecutedYet']), target: 'failed', actions: 'recordFailure' },
          { guard: 'effectIsCurrent', target: 'compensating', actions: 'recordFailure' },
        ],
      },
    },
    actBackoff: {
      on: { 'timer.retry': { guard: 'retryTimerIsCurrent', target: 'acting', actions: 'clearRetry' } },
    },
    compensating: {
      entry: 'requestCompensation',
      on: {
        'compensation.done': [
          {
            guard: and(['effectIsCurrent', 'moreToCompensate']),
            target: 'compensating',
            reenter: true,
            actions: 'stepCompensated',
          },
          { guard: 'effectIsCurrent', target: 'compensated', actions: 'stepCompensated' },
        ],
        'compensation.failed': [
          {
            guard: and(['effectIsCurrent', 'transientWithAttemptsLeft']),
            target: 'compensateBackoff',
            actions: 'armRetry',
          },
          { guard: 'effectIsCurrent', target: 'awaitingOperator', actions: 'recordFailure' },
        ],
      },
    },
    /** A compensation failed for good: an operator decides (approve: retry it; reject: stop, effects stand). */
    awaitingOperator: {
      entry: 'requestOperatorCase',
      on: {
        'case.opened': { guard: 'effectIsCurrent', actions: 'noteCaseOpened' },
        'case.resolved': [
          {
            guard: and(['caseIsCurrent', 'caseApproved']),
            target: 'compensating',
            actions: ['linkResolvedCase', 'retryCompensation'],
          },
          { guard: 'caseIsCurrent', target: 'failed', actions: 'linkResolvedCase' },
        ],
      },
    },
    compensateBackoff: {
      on: { 'timer.retry': { guard: 'retryTimerIsCurrent', target: 'compensating', actions: 'clearRetry' } },
    },
    done: { type: 'final', entry: 'setOutcomeDone' },
    denied: { type: 'final', entry: [{ type: 'setOutcome', params: { outcome: 'denied' } }, 'closeEpisode'] },
    rejected: { type: 'final', entry: [{ type: 'setOutcome', params: { outcome: 'rejected' } }, 'closeEpisode'] },
    expired: { type: 'final', entry: [{ type: 'setOutcome', params: { outcome: 'expired' } }, 'closeEpisode'] },
    compensated: { type: 'final', entry: [{ type: 'setOutcome', params: { outcome: 'compensated' } }, 'closeEpisode'] },
    failed: { type: 'final', entry: [{ type: 'setOutcome', params: { outcome: 'failed' } }, 'closeEpisode'] },
  },
  output: ({ context }) => ({
    episodeId: context.episodeId,
    outcome: context.outcome ?? 'failed',
    reason: context.error?.message ?? context.decision?.reasons[0] ?? '',
  }),
});

/** What the runtime binds into the agent machine for one model. */
export interface AgentBindings {
  gate(plan: Plan, observation: Observation): GateDecision;
  onExpiry: PolicyConfig['onExpiry'];
  /** The model's freshness limits, checked at the time of each gating and approval. @default none */
  freshness?: FreshnessConfig;
}

/** The agent machine with a model's gate and expiry fallback provided. */
export function agentMachineFor(bindings: AgentBindings) {
  return agentMachine.provide({
    actions: {
      evaluateGate: assign({
        decision: ({ context, event }) => {
          if (!context.plan || !context.observation) throw new Error('gating without a plan and an observation');
          const decision = bindings.gate(context.plan, context.observation);
          const freshness = bindings.freshness;
          if (!freshness) return decision;
          const check = checkFreshness(context.observation, freshness, event.at);
          if (!check.stale) return withFreshness(decision, check);
          const done = context.reperceived ?? 0;
          const note =
            freshness.onStale === 'review'
              ? 'a reviewer decides whether to act on it'
              : done < freshness.maxReperceives
                ? `perceiving again (round ${done + 1} of ${freshness.maxReperceives})`
                : `perceived again ${done} time${done === 1 ? '' : 's'} (the limit); a reviewer decides whether to act on it`;
          return withFreshness(decision, check, note);
        },
      }),
      adoptSafeAction: assign(({ context, event }) => {
        if (bindings.onExpiry.fallback !== 'safeAction' || !context.plan) return {};
        const at = event.at;
        return {
          resolution: 'expired' as const,
          plan: {
            ...context.plan,
            id: `${context.plan.id}.fallback`,
            actions: [bindings.onExpiry.action],
            rationale: `Review expired after the last tier (at ${new Date(at).toISOString()}); running the policy's safe fallback action.`,
          },
        };
      }),
    },
    guards: {
      staleMayReperceive: ({ context }) =>
        bindings.freshness?.onStale === 'reperceive' &&
        context.decision?.ruleId === 'freshness.stale' &&
        context.staleAccepted !== true &&
        (context.reperceived ?? 0) < bindings.freshness.maxReperceives,
      staleAtApproval: ({ context, event }) =>
        !!bindings.freshness &&
        event.type === 'case.resolved' &&
        !!context.observation &&
        !flagsStale(context.decision) &&
        checkFreshness(context.observation, bindings.freshness, event.at).stale,
      expiryFallsBackToSafeAction: ({ event }) =>
        bindings.onExpiry.fallback === 'safeAction' &&
        event.type === 'case.resolved' &&
        event.resolution.outcome === 'expired',
    },
  });
}
