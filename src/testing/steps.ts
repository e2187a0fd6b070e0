/**
 * The vocabulary of generated paths: what a step does to the runtime (an {@link Action}) and what the
 * runtime must look like afterwards (an {@link Expectation}). Shared by the generator, which derives
 * expectations from the pure machines, and the harness, which checks them against the real runtime.
 */
import type { CaseOutcome } from '../contracts/review-case.ts';
import type { AgentContext } from '../machines/agent.ts';
import type { CaseContext } from '../machines/review-case.ts';
import type { PlanClass } from './fixtures.ts';

/** How a scripted effect ends: it succeeds (the model's real handler runs), or fails. */
export type EffectResult = 'done' | 'transient' | 'permanent';

export type AgentAction =
  | { do: 'perceive'; result: EffectResult }
  | { do: 'plan'; result: EffectResult; plan?: PlanClass }
  | { do: 'execute'; step: number; result: EffectResult }
  | { do: 'compensate'; step: number; result: EffectResult }
  /** The runtime opens the case by itself; the step waits for it. */
  | { do: 'caseOpened'; operator?: boolean }
  /** Reviewers (or deadlines) decide the agent's open case; `plan` is the reviewer's edit for `modified`. */
  | { do: 'resolve'; outcome: CaseOutcome; plan?: PlanClass; operator?: boolean };

export type CommandName = 'claim' | 'release' | 'renew' | 'approve' | 'modify' | 'reject' | 'escalate';

export type CaseAction =
  /** A reviewer command; `invalid` sends a payload that breaks the command's contract. */
  { do: CommandName; by: string; invalid?: boolean; after?: number };

/** A deadline passes: the simulated clock moves to the timer's due time. */
export type TimerAction = { do: 'timer'; timer: string };

/**
 * The last event of this type the actor took is delivered again (a duplicate, late or out of order):
 * it must be ignored.
 */
export type RedeliverAction = { do: 'redeliver'; event: string };

export type Action = AgentAction | CaseAction | TimerAction | RedeliverAction;

/** Features of an agent's context that paths assert. */
export interface AgentFeatures {
  attempt: number;
  step: number;
  compensateStep: number;
  cases: number;
  /** Gate branch of the current decision (`auto`, `review:2`, `deny`), or null. */
  decision: string | null;
  approvedTier: number;
  resolution: string | null;
  outcome: string | null;
  /** Kind of the pending effect request (`openCase:operator` for an operator case), or null. */
  effect: string | null;
  /** Names of armed timers. */
  timers: string[];
  plan: string | null;
}

export interface CaseFeatures {
  tier: number;
  claimedBy: string | null;
  approvals: string[];
  modified: boolean;
  escalations: number;
  /** Names of armed timers, earliest first. */
  timers: string[];
  resolution: string | null;
}

export interface Expectation extends Partial<AgentFeatures>, Partial<Omit<CaseFeatures, 'timers'>> {
  /** State after the step. */
  state?: string;
  /** Type of the journaled event the step caused. */
  event?: string;
  /** The command is refused with this error code (and rule); nothing changes. */
  refused?: { code: string; rule?: string };
  /** Effects-ledger keys (relative to the episode id), cumulative and sorted. */
  ledger?: string[];
  /** Kinds of the audit entries of this actor that this step appended, in order. */
  audit?: string[];
  /** After a case step: the state the agent is in once it has consumed the case's resolution. */
  agent?: string;
  /** Armed deadlines, ms after the start (`t0`), from model.json (the oracle): `{ ack: 900000, resolve: 3600000 }`. */
  due?: Record<string, number>;
  /** The case's queue priority, from model.json's tier (the oracle). */
  priority?: number;
}

export function agentFeatures(c: AgentContext): AgentFeatures {
  return {
    attempt: c.attempt,
    step: c.step,
    compensateStep: c.compensateStep,
    cases: c.caseIds.length,
    decision: c.decision ? (c.decision.outcome === 'review' ? `review:${c.decision.tier}` : c.decision.outcome) : null,
    approvedTier: c.approvedTier,
    resolution: c.resolution,
    outcome: c.outcome,
    effect: c.effect ? `${c.effect.kind}${c.effect.operator ? ':operator' : ''}` : null,
    timers: timerNames(c.timers),
    plan: planLabel(c.plan),
  };
}

/**
 * A plan's id with a fingerprint of its actions (a reviewer's edit keeps the id):
 * `ep-1.plan-review1~3f9a2c`. Paths compare plans by it, so running other arguments fails a path.
 */
export function planLabel(plan: { id: string; actions: unknown[] } | null | undefined): string | null {
  if (!plan) return null;
  let h = 0x811c9dc5;
  for (const ch of JSON.stringify(plan.actions)) h = Math.imul(h ^ ch.charCodeAt(0), 0x01000193) >>> 0;
  return `${plan.id}~${h.toString(16).padStart(8, '0').slice(0, 6)}`;
}

export function caseFeatures(c: CaseContext): CaseFeatures {
  return {
    tier: c.tier,
    claimedBy: c.claim?.reviewer ?? null,
    approvals: [...c.approvals],
    modified: c.modified,
    escalations: c.escalations,
    timers: timerNames(c.timers),
    resolution: c.resolution?.outcome ?? null,
  };
}

/** Timer names, earliest deadline first (ties by name). */
export function timerNames(timers: Partial<Record<string, number>>): string[] {
  return Object.entries(timers)
    .filter((e): e is [string, number] => e[1] !== undefined)
    .sort((a, b) => a[1] - b[1] || (a[0] < b[0] ? -1 : 1))
    .map(([name]) => name);
}

/** A one-line description of an action, for test names and failure messages. */
export function describeAction(a: Action): string {
  switch (a.do) {
    case 'perceive':
    case 'plan':
      return (
        `${a.do}.${a.result === 'done' ? 'done' : `failed(${a.result})`}` +
        (a.do === 'plan' && a.plan ? `[${a.plan}]` : '')
      );
    case 'execute':
      return `action.${a.result === 'done' ? 'done' : `failed(${a.result})`}#${a.step}`;
    case 'compensate':
      return `compensation.${a.result === 'done' ? 'done' : `failed(${a.result})`}#${a.step}`;
    case 'caseOpened':
      return a.operator ? 'operator-case.opened' : 'case.opened';
    case 'resolve':
      return `${a.operator ? 'operator-case' : 'case'}.${a.outcome}${a.plan ? `[${a.plan}]` : ''}`;
    case 'timer':
      return `timer.${a.timer}`;
    case 'redeliver':
      return `${a.event} again`;
    default:
      return `${a.after ? `${a.after / 1000} s later, ` : ''}${a.do}${a.invalid ? '(invalid)' : ''} by ${a.by}`;
  }
}
