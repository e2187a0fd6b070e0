/**
 * What must hold after each step of a scenario (harness.ts): what the actor's view shows against
 * what the path expects (state, context features, deadlines and queue priority from model.json), the
 * machines' context invariants, and the effects ledger of an episode (each effect applied once).
 */
import { isDeepStrictEqual } from 'node:util';
import type { AgentContext } from '../machines/agent.ts';
import type { CaseContext } from '../machines/review-case.ts';
import type { LoadedModel } from '../models/loader.ts';
import type { LevelStore } from '../runtime/level-store.ts';
import type { ActorView, Runtime } from '../runtime/runtime.ts';
import type { LevelWorld } from '../runtime/world.ts';
import { agentFeatures, caseFeatures, type Expectation } from './steps.ts';

export class HarnessError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'HarnessError';
  }
}

/**
 * How the view of an actor at the step's own version differs from `expect`: its state, the context
 * features the path names, its deadlines (ms after `t0`) and, for a case, the priority of the queue
 * view the runtime published (`queue`).
 */
export function viewProblems(
  expect: Expectation,
  v: ActorView,
  machine: 'agent' | 'case',
  t0: number,
  queue: { tier: number; priority: number } | undefined,
): string[] {
  const problems: string[] = [];
  if (expect.state !== undefined && v.state !== expect.state)
    problems.push(`state ${v.state}, expected ${expect.state}`);
  const actual: Record<string, unknown> =
    machine === 'agent'
      ? { ...agentFeatures(v.context as AgentContext) }
      : { ...caseFeatures(v.context as CaseContext) };
  for (const [k, want] of Object.entries(expect)) {
    if (!(k in actual)) continue;
    if (!isDeepStrictEqual(actual[k], want))
      problems.push(`${k} is ${JSON.stringify(actual[k])}, expected ${JSON.stringify(want)}`);
  }
  // Values from the oracle (model.json): deadlines by due time, the queue's priority.
  if (expect.due !== undefined) {
    const got = Object.fromEntries(
      Object.entries(v.context.timers as Record<string, number | undefined>)
        .filter((e): e is [string, number] => e[1] !== undefined)
        .sort(([a], [b]) => (a < b ? -1 : 1))
        .map(([k, d]) => [k, d - t0]),
    );
    const want = Object.fromEntries(Object.entries(expect.due).sort(([a], [b]) => (a < b ? -1 : 1)));
    if (!isDeepStrictEqual(got, want))
      problems.push(`deadlines (ms after t0) are ${JSON.stringify(got)}, model.json gives ${JSON.stringify(want)}`);
  }
  if (expect.priority !== undefined && machine === 'case') {
    if (!queue) problems.push('the runtime published no queue view of the case');
    else if (queue.priority !== expect.priority)
      problems.push(`queue priority ${queue.priority} at tier ${queue.tier}, model.json gives ${expect.priority}`);
  }
  return problems;
}

/** The ledger keys of an episode's effects (without the episode prefix), and those applied more than once. */
export async function ledgerOf(world: LevelWorld, episodeId: string): Promise<{ keys: string[]; repeated: string[] }> {
  const prefix = `${episodeId}/`;
  const keys: string[] = [];
  const repeated: string[] = [];
  for await (const e of world.entries()) {
    if (!e.key.startsWith(prefix)) continue;
    keys.push(e.key.slice(prefix.length));
    if (e.applications !== 1) repeated.push(`${e.key} ×${e.applications}`);
  }
  return { keys: keys.sort(), repeated };
}

/** After a restart: every live actor's deadlines are back in the timer index, and no effect repeated. */
export async function checkRestart(store: LevelStore, rt: Runtime, world: LevelWorld, ids: string[]): Promise<void> {
  const index = new Map<string, Record<string, number>>();
  for await (const t of store.dueTimers(Number.MAX_SAFE_INTEGER))
    index.set(t.actorId, { ...index.get(t.actorId), [t.name]: t.dueAt });
  for (const id of ids) {
    const v = await rt.get(id);
    if (!v || v.status !== 'active') continue;
    const armed = Object.fromEntries(Object.entries(v.context.timers).filter(([, d]) => d !== undefined));
    if (!isDeepStrictEqual(armed, index.get(id) ?? {}))
      throw new HarnessError(
        `after a restart the timer index of ${id} holds ${JSON.stringify(index.get(id) ?? {})}, ` +
          `its context ${JSON.stringify(armed)}`,
      );
  }
  const totals = await world.totals();
  if (totals.duplicates !== 0)
    throw new HarnessError(`after a restart: ${totals.duplicates} effect(s) applied more than once`);
}

// ------------------------------------------------------------------------------------------------
// Invariants
// ------------------------------------------------------------------------------------------------

const FINAL_AGENT = new Set(['done', 'denied', 'rejected', 'expired', 'compensated', 'failed']);
const EFFECT_FOR_STATE: Record<string, string[]> = {
  perceiving: ['perceive'],
  planning: ['plan'],
  acting: ['execute'],
  compensating: ['compensate'],
  awaitingReview: ['openCase'],
  awaitingOperator: ['openCase'],
};

/** Context invariants of an agent episode that hold after every step. */
export function agentInvariants(v: ActorView, model: LoadedModel): string[] {
  const c = v.context as AgentContext;
  const out: string[] = [];
  const final = FINAL_AGENT.has(v.state);
  if (final !== (v.status === 'done')) out.push(`state ${v.state} with status ${v.status}`);
  if (final) {
    if (!c.outcome) out.push('a finished episode has no outcome');
    if (c.effect) out.push('a finished episode still requests an effect');
    if (Object.keys(c.timers).length) out.push('a finished episode still has timers');
    const byState: Record<string, string[]> = {
      denied: ['denied'],
      rejected: ['rejected'],
      expired: ['expired'],
      compensated: ['compensated'],
      failed: ['failed'],
      done: ['autoActed', 'approved', 'modified', 'expired'],
    };
    if (c.outcome && !byState[v.state]?.includes(c.outcome)) out.push(`outcome ${c.outcome} in state ${v.state}`);
  } else {
    if (c.outcome) out.push(`outcome ${c.outcome} before the episode finished`);
    const backoff = v.state.endsWith('Backoff');
    if (backoff !== (c.timers.retry !== undefined))
      out.push(`retry timer ${c.timers.retry === undefined ? 'missing' : 'armed'} in ${v.state}`);
    const kinds = EFFECT_FOR_STATE[v.state];
    if (backoff && c.effect) out.push(`an effect is requested during ${v.state}`);
    if (kinds && c.effect && !kinds.includes(c.effect.kind))
      out.push(`effect ${c.effect.kind} requested in ${v.state}`);
    if (kinds && !c.effect && v.state !== 'awaitingReview' && v.state !== 'awaitingOperator')
      out.push(`no effect requested in ${v.state}`);
    if (c.effect && c.effect.attempt !== c.attempt)
      out.push(`effect attempt ${c.effect.attempt}, context attempt ${c.attempt}`);
  }
  if (c.attempt < 1 || c.attempt > model.config.retry.maxAttempts)
    out.push(`attempt ${c.attempt} outside 1..${model.config.retry.maxAttempts}`);
  if (c.results.length !== c.step) out.push(`${c.results.length} results for ${c.step} executed steps`);
  if (c.plan && c.step > c.plan.actions.length)
    out.push(`step ${c.step} beyond the plan's ${c.plan.actions.length} actions`);
  if (v.state === 'compensating' && !(c.compensateStep >= 0 && c.compensateStep < c.step))
    out.push(`compensating step ${c.compensateStep} with ${c.step} executed`);
  if (new Set(c.caseIds).size !== c.caseIds.length) out.push('a case id repeats');
  if (c.caseIds.some((id) => !id.startsWith(`${c.episodeId}.`))) out.push('a case id does not belong to the episode');
  return out;
}

/** Context invariants of a review case that hold after every step. */
export function caseInvariants(v: ActorView): string[] {
  const c = v.context as CaseContext;
  const out: string[] = [];
  const final = ['approved', 'modified', 'rejected', 'expired'].includes(v.state);
  if (final !== (v.status === 'done')) out.push(`state ${v.state} with status ${v.status}`);
  if (final) {
    if (!c.resolution || c.resolution.outcome !== v.state)
      out.push(`resolution ${c.resolution?.outcome ?? 'none'} in state ${v.state}`);
    if (Object.keys(c.timers).length) out.push('a closed case still has timers');
    if (c.claim) out.push('a closed case is still claimed');
  } else {
    if (c.resolution) out.push('an open case has a resolution');
    if (c.timers.resolve === undefined) out.push('an open case has no resolve deadline');
    if ((v.state === 'claimed') !== (c.claim !== null)) out.push(`claim ${c.claim ? 'held' : 'missing'} in ${v.state}`);
    if ((v.state === 'claimed') !== (c.timers.lease !== undefined))
      out.push(`lease ${c.timers.lease === undefined ? 'missing' : 'armed'} in ${v.state}`);
    if (c.approvals.length > 1) out.push(`${c.approvals.length} approvals on an open case`);
  }
  if (c.tier < 1 || c.tier > c.tiers.length) out.push(`tier ${c.tier} outside 1..${c.tiers.length}`);
  if (new Set(c.approvals).size !== c.approvals.length) out.push('an approver counted twice');
  if (c.requestedBy && (c.approvals.includes(c.requestedBy) || c.claim?.reviewer === c.requestedBy))
    out.push('the requester reviews their own request');
  if (c.history[0]?.kind !== 'opened') out.push('history does not start with the opening');
  return out;
}
