import { EPISODE_OUTCOMES, type EpisodeOutcome } from '../contracts/episode-outcome.ts';
import type { AgentContext } from '../machines/agent.ts';
import type { CaseContext } from '../machines/review-case.ts';
import type { Store } from '../runtime/store.ts';
import type { LevelWorld } from '../runtime/world.ts';

/** A deadline missed at some tier: an escalation for it (not one a reviewer asked for), or expiry. */
const missedSla = (c: CaseContext) =>
  c.history.some(
    (h) => h.kind === 'expired' || (h.kind === 'escalated' && !h.by && (h.note ?? '').includes('deadline missed')),
  );

export interface RunSummary {
  episodes: number;
  outcomes: Record<EpisodeOutcome, number>;
  /** Episodes started but not finished (0 at the end of a complete run). */
  unfinished: number;
  /** Effects recorded in the world's ledger, and extra applications of an already applied key. */
  effects: number;
  duplicateEffects: number;
  cases: number;
  /** Mean time from a case opening to its first claim, ms (simulated time in the demo). */
  mttaMs: number;
  /** Mean time from a case opening to a reviewer's decision, ms. */
  mttrMs: number;
  /** Closed cases decided with no deadline missed at any tier, over those plus every case that missed one (still open ones included). */
  slaAttainment: number;
  /** Cases escalated out of each tier (`tier1`: escalated from tier 1 to tier 2). */
  escalations: Record<string, number>;
  auditEntries: number;
  /** Checks that must all be 0. */
  invariantViolations: {
    /** Episodes that ended acting whose actions are not all in the world's ledger. */
    missingEffects: number;
    /** Compensated episodes with a completed step whose compensation is not in the ledger. */
    missingCompensations: number;
    /** Episodes whose compensation failed and that have no operator case. */
    sagasWithoutOperatorCase: number;
    /** Episodes counted twice or not at all. */
    outcomeMismatch: number;
  };
}

/** Totals of everything in a store: computed from the durable records, so they survive restarts. */
export async function summarize(
  store: Store,
  world: LevelWorld,
  tierCount: number,
  compensationOf: (actionType: string) => string | null = () => null,
): Promise<RunSummary> {
  const outcomes = Object.fromEntries(EPISODE_OUTCOMES.map((o) => [o, 0])) as Record<EpisodeOutcome, number>;
  let episodes = 0;
  let unfinished = 0;
  let cases = 0;
  let claimed = 0;
  let ackSum = 0;
  let decided = 0;
  let resolveSum = 0;
  let closed = 0;
  let metSla = 0;
  /** Cases still open that already missed a deadline: they count against attainment too. */
  let missedOpen = 0;
  const escalations: Record<string, number> = {};
  const violations = { missingEffects: 0, missingCompensations: 0, sagasWithoutOperatorCase: 0, outcomeMismatch: 0 };
  const finishedAgents: AgentContext[] = [];
  const operatorCases = new Set<string>();
  for (let t = 1; t <= tierCount; t++) escalations[`tier${t}`] = 0;
  for await (const rec of store.actors()) {
    const ctx = (rec.snapshot as { context: AgentContext | CaseContext }).context;
    if (rec.kind === 'agent') {
      episodes++;
      const outcome = (ctx as AgentContext).outcome;
      // An agent stopped by an operator after repeated crashes counts as failed.
      if ((rec.status === 'done' || rec.status === 'stopped') && outcome) {
        outcomes[outcome]++;
        finishedAgents.push(ctx as AgentContext);
      } else unfinished++;
      continue;
    }
    const c = ctx as CaseContext;
    cases++;
    if (c.decision.ruleId === 'saga:compensation-failed') operatorCases.add(c.caseId);
    if (c.firstClaimAt !== null) {
      claimed++;
      ackSum += c.firstClaimAt - c.openedAt;
    }
    for (const h of c.history)
      if (h.kind === 'escalated') escalations[`tier${h.tier}`] = (escalations[`tier${h.tier}`] ?? 0) + 1;
    if (rec.status === 'done' && c.resolution) {
      closed++;
      if (c.resolution.outcome !== 'expired') {
        decided++;
        resolveSum += c.resolution.at - c.openedAt;
      }
      if (!missedSla(c)) metSla++;
    } else if (missedSla(c)) missedOpen++;
  }
  const ledger = new Set<string>();
  for await (const e of world.entries()) ledger.add(e.key);
  for (const a of finishedAgents) {
    const steps = a.plan?.actions.length ?? 0;
    if (
      ['autoActed', 'approved', 'modified'].includes(a.outcome ?? '') ||
      (a.outcome === 'expired' && a.resolution === 'expired' && a.results.length > 0)
    ) {
      for (let i = 0; i < steps; i++) if (!ledger.has(`${a.episodeId}/${i}`)) violations.missingEffects++;
    }
    if (a.outcome === 'compensated') {
      for (let i = 0; i < a.results.length; i++) {
        const type = a.plan?.actions[i]?.type;
        if (type && compensationOf(type) && !ledger.has(`${a.episodeId}/${i}/compensate`))
          violations.missingCompensations++;
      }
    }
    if (a.outcome === 'failed' && a.error?.phase === 'compensation' && !a.caseIds.some((id) => operatorCases.has(id)))
      violations.sagasWithoutOperatorCase++;
  }
  violations.outcomeMismatch = Math.abs(episodes - unfinished - Object.values(outcomes).reduce((x, y) => x + y, 0));
  const totals = await world.totals();
  let auditEntries = 0;
  const last = await store.lastAudit();
  if (last) auditEntries = last.seq;
  return {
    episodes,
    outcomes,
    unfinished,
    effects: totals.effects,
    duplicateEffects: totals.duplicates,
    cases,
    mttaMs: claimed ? Math.round(ackSum / claimed) : 0,
    mttrMs: decided ? Math.round(resolveSum / decided) : 0,
    slaAttainment: closed + missedOpen ? Math.round((metSla / (closed + missedOpen)) * 10_000) / 10_000 : 1,
    escalations,
    auditEntries,
    invariantViolations: violations,
  };
}
