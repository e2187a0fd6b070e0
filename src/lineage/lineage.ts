import { HandoffError } from '../contracts/errors.ts';
import type { Observation } from '../contracts/observation.ts';
import type { Plan } from '../contracts/plan.ts';
import type { CaseResolution } from '../contracts/review-case.ts';
import type { AgentContext } from '../machines/agent.ts';
import type { CaseContext } from '../machines/review-case.ts';
import type { LedgerEntry } from '../models/define.ts';
import type { AuditEntry } from '../base/audit-log.ts';
import type { ActorKind, JournalEntry } from '../runtime/store.ts';
import type { LineageObservation, LineagePlan } from './provenance.ts';
import type { CompactionSummary, LegalHold } from './retention-records.ts';

export type { LineageObservation, LineagePlan };

/** What a lineage is built from. Only `get` and `auditOf` are required; the rest fill in detail. */
export interface LineageSource {
  /** An actor's current view: its kind, model, state and context (live or finished). */
  get(
    id: string,
  ): Promise<
    { id: string; kind: ActorKind; model: string; state: string; status: string; context: unknown } | undefined
  >;
  /** Audit entries of these actors, oldest first. */
  auditOf(actors: readonly string[]): Promise<AuditEntry[]>;
  journal?(id: string): AsyncIterable<JournalEntry>;
  /** The world's effects ledger (by idempotency key). */
  effect?(key: string): Promise<LedgerEntry | undefined>;
  /** What replaced the episode's journals after retention compacted them. */
  summary?(episodeId: string): Promise<CompactionSummary | undefined>;
  hold?(episodeId: string): Promise<LegalHold | undefined>;
}

/** The id names no episode and no case. */
export class LineageNotFoundError extends HandoffError {
  constructor(id: string) {
    super('lineage.not_found', `no episode or case with id '${id}'`, { id });
  }
}

export interface LineageDecision {
  auditSeq: number;
  at: number;
  outcome: string;
  ruleId: string;
  reasons: string[];
  tier: number;
  policyVersion: string;
  riskScore: number | null;
  confidence: number | null;
  planId: string | null;
  inputs: { observationId: string; source: string; observedAt: string; cited: string[] } | null;
}

export interface LineageReviewEvent {
  auditSeq: number;
  at: number;
  kind: string;
  by: string;
  tier: number | null;
  note: string | null;
}

export interface LineageReview {
  caseId: string;
  kind: 'review' | 'operator';
  state: string | null;
  openedAt: number | null;
  /** The gate decision the case was opened on (as the reviewer saw it). */
  decision: { outcome: string; ruleId: string; reasons: string[]; tier: number } | null;
  tiers: { n: number; name: string; roles: string[]; fourEyes: boolean }[];
  /** Tier the case opened at and the tier it ended at. */
  openedTier: number | null;
  tier: number | null;
  events: LineageReviewEvent[];
  claims: { by: string; at: number; auditSeq: number }[];
  decisions: { kind: string; by: string; at: number; auditSeq: number; note: string | null }[];
  reviewers: string[];
  resolution: { outcome: string; decidedBy: string[]; at: number; reason: string | null } | null;
}

export interface LineageEffect {
  key: string;
  action: string;
  at: number;
  applications: number;
  result: unknown;
}

export interface LineageAction {
  step: number;
  type: string;
  key: string;
  executed: { auditSeq: number; at: number } | null;
  effect: LineageEffect | null;
  compensation: {
    type: string | null;
    key: string;
    compensated: { auditSeq: number; at: number } | null;
    effect: LineageEffect | null;
  };
}

/** From the observation's sources to the effects in the world, with the audit entries of each step. */
export interface Lineage {
  /** The id asked for (an episode or one of its cases). */
  id: string;
  episodeId: string;
  model: string;
  state: string | null;
  status: string | null;
  outcome: string | null;
  startedAt: number | null;
  endedAt: number | null;
  /** Where the event-level history is: the journals, or (after retention) a summary of them. */
  history:
    | { journal: 'kept'; entries: number }
    | { journal: 'compacted'; compactedAt: number; keepDays: number; entries: number }
    | { journal: 'none'; entries: 0 };
  hold: LegalHold | null;
  observations: LineageObservation[];
  plans: LineagePlan[];
  decisions: LineageDecision[];
  reviews: LineageReview[];
  actions: LineageAction[];
  outcomeEntry: { auditSeq: number; at: number; outcome: string; error: string | null } | null;
  /** Audit entries of the episode and its cases not shown above (suspensions, holds, retention...). */
  other: { auditSeq: number; at: number; kind: string; actor: string; by: string; data: Record<string, unknown> }[];
  /** Every audit entry of the episode and its cases, in chain order. */
  auditSeqs: number[];
}

const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);
const num = (v: unknown): number | null => (typeof v === 'number' ? v : null);

function observationOf(o: Observation, journalSeq: number | null, at: number | null): LineageObservation {
  return {
    id: o.id,
    kind: o.kind,
    subject: o.subject,
    source: o.provenance.source,
    observedAt: o.provenance.observedAt,
    transforms: o.provenance.transforms.map((t) => ({
      name: t.name,
      at: t.at,
      by: t.by,
      ...(t.note ? { note: t.note } : {}),
    })),
    journalSeq,
    at,
  };
}

function planOf(
  p: Plan,
  origin: LineagePlan['origin'],
  by: string[],
  journalSeq: number | null,
  at: number | null,
): LineagePlan {
  return {
    id: p.id,
    planner: p.planner,
    origin,
    by,
    rationale: p.rationale,
    confidence: p.confidence,
    riskScore: p.risk.score,
    citedInputs: p.citedInputs ?? [],
    actions: p.actions.map((a) => ({ type: a.type, description: a.description ?? null })),
    journalSeq,
    at,
  };
}

/** Observations and plans as the journal records them, in order. */
export async function journalLineage(
  journal: AsyncIterable<JournalEntry>,
): Promise<{ entries: number; observations: LineageObservation[]; plans: LineagePlan[] }> {
  const observations: LineageObservation[] = [];
  const plans: LineagePlan[] = [];
  let entries = 0;
  for await (const j of journal) {
    entries++;
    const e = j.event;
    if (e.type === 'perceive.done' && e.observation)
      observations.push(observationOf(e.observation as Observation, j.seq, j.at));
    else if (e.type === 'plan.done' && e.plan) plans.push(planOf(e.plan as Plan, 'planner', [], j.seq, j.at));
    else if (e.type === 'case.resolved') {
      const r = e.resolution as CaseResolution | undefined;
      if (r?.plan && r.outcome === 'modified')
        plans.push(
          planOf(r.plan, 'reviewer', r.edits ? [...new Set(r.edits.map((x) => x.by))] : r.decidedBy, j.seq, j.at),
        );
    }
  }
  return { entries, observations, plans };
}

const OPERATOR_CASE = /\.operator-[^.]*$/;

/**
 * The lineage of an episode (or of the episode behind a case): the observation's sources, the plans,
 * the gate's decisions, the reviews, the actions and their effects in the world, and the
 * compensations, each with its audit entry. After retention compacted the episode, the observations
 * and plans come from the compaction summary; everything else comes from the audit log, which
 * retention never touches.
 */
export async function buildLineage(id: string, source: LineageSource): Promise<Lineage> {
  const asked = await source.get(id);
  let episodeId = id;
  if (asked?.kind === 'case') episodeId = (asked.context as CaseContext).episodeId;
  const episode = episodeId === id ? asked : await source.get(episodeId);
  const agent = episode?.kind === 'agent' ? (episode.context as AgentContext) : null;
  if (!asked && !agent) {
    // Nothing live or finished by that id; a compacted or audit-only episode may still be known.
    const audit = await source.auditOf([id]);
    if (audit.length === 0 && !(await source.summary?.(id))) throw new LineageNotFoundError(id);
  }

  const caseIds = [...(agent?.caseIds ?? [])];
  if (asked?.kind === 'case' && !caseIds.includes(id)) caseIds.push(id);
  const audit = await source.auditOf([episodeId, ...caseIds]);
  // Cases the agent never linked (an operator case opened by the supervisor) still belong here.
  for (const e of audit)
    if (e.actor !== episodeId && !caseIds.includes(e.actor) && e.kind.startsWith('case.')) caseIds.push(e.actor);

  const summary = (await source.summary?.(episodeId)) ?? null;
  let observations: LineageObservation[] = [];
  let plans: LineagePlan[] = [];
  let entries = 0;
  if (source.journal) {
    const j = await journalLineage(source.journal(episodeId));
    ({ observations, plans, entries } = j);
  }
  if (entries === 0 && summary) ({ observations, plans } = summary);
  if (observations.length === 0 && agent?.observation) observations = [observationOf(agent.observation, null, null)];
  const sameActions = (p: LineagePlan, q: Plan) =>
    p.id === q.id && p.actions.map((a) => a.type).join() === q.actions.map((a) => a.type).join();
  // The plan that ran but no journal entry brought (the expiry fallback, or journals gone).
  if (agent?.plan && !plans.some((p) => sameActions(p, agent.plan!))) {
    plans.push(
      planOf(
        agent.plan,
        agent.plan.id.endsWith('.fallback') ? 'fallback' : agent.resolution === 'modified' ? 'reviewer' : 'planner',
        [],
        null,
        null,
      ),
    );
  }

  const decisions: LineageDecision[] = [];
  const other: Lineage['other'] = [];
  const executed = new Map<string, { auditSeq: number; at: number }>();
  const compensated = new Map<string, { auditSeq: number; at: number }>();
  let outcomeEntry: Lineage['outcomeEntry'] = null;
  const caseAudit = new Map<string, AuditEntry[]>();
  for (const e of audit) {
    const d = e.data;
    if (e.actor !== episodeId) {
      if (e.kind.startsWith('case.')) {
        let list = caseAudit.get(e.actor);
        if (!list) caseAudit.set(e.actor, (list = []));
        list.push(e);
      } else other.push({ auditSeq: e.seq, at: e.at, kind: e.kind, actor: e.actor, by: e.by, data: d });
      continue;
    }
    if (e.kind === 'gate.decision') {
      const inputs = d.inputs as LineageDecision['inputs'] | undefined;
      decisions.push({
        auditSeq: e.seq,
        at: e.at,
        outcome: str(d.outcome) ?? '',
        ruleId: str(d.ruleId) ?? '',
        reasons: Array.isArray(d.reasons) ? d.reasons.map(String) : [],
        tier: num(d.tier) ?? 0,
        policyVersion: str(d.policyVersion) ?? '',
        riskScore: num(d.riskScore),
        confidence: num(d.confidence),
        planId: str(d.planId),
        inputs: inputs ?? null,
      });
    } else if (e.kind === 'action.executed' && typeof d.key === 'string')
      executed.set(d.key, { auditSeq: e.seq, at: e.at });
    else if (e.kind === 'action.compensated' && typeof d.key === 'string')
      compensated.set(d.key, { auditSeq: e.seq, at: e.at });
    else if (e.kind === 'episode.outcome')
      outcomeEntry = { auditSeq: e.seq, at: e.at, outcome: str(d.outcome) ?? '', error: str(d.error) };
    else other.push({ auditSeq: e.seq, at: e.at, kind: e.kind, actor: e.actor, by: e.by, data: d });
  }

  const reviews: LineageReview[] = [];
  for (const caseId of caseIds) {
    const view = await source.get(caseId);
    const c = view?.kind === 'case' ? (view.context as CaseContext) : null;
    const events: LineageReviewEvent[] = (caseAudit.get(caseId) ?? []).map((e) => ({
      auditSeq: e.seq,
      at: e.at,
      kind: e.kind.replace(/^case\./, ''),
      by: e.by,
      tier: num(e.data.tier),
      note: str(e.data.note),
    }));
    const people = (list: LineageReviewEvent[]) => [
      ...new Set(list.flatMap((e) => e.by.split(',')).filter((b) => b && b !== 'runtime')),
    ];
    reviews.push({
      caseId,
      kind: OPERATOR_CASE.test(caseId) ? 'operator' : 'review',
      state: view?.state ?? null,
      openedAt: c?.openedAt ?? events.find((e) => e.kind === 'opened')?.at ?? null,
      decision: c
        ? { outcome: c.decision.outcome, ruleId: c.decision.ruleId, reasons: c.decision.reasons, tier: c.decision.tier }
        : null,
      tiers: c
        ? c.tiers.map((t, i) => ({ n: i + 1, name: t.name, roles: t.roles, fourEyes: t.fourEyes ?? false }))
        : [],
      openedTier: c?.history[0]?.tier ?? events[0]?.tier ?? null,
      tier: c?.tier ?? events.at(-1)?.tier ?? null,
      events,
      claims: events.filter((e) => e.kind === 'claimed').map((e) => ({ by: e.by, at: e.at, auditSeq: e.auditSeq })),
      decisions: events
        .filter((e) => ['approved', 'modified', 'rejected', 'expired', 'escalated'].includes(e.kind))
        .map((e) => ({ kind: e.kind, by: e.by, at: e.at, auditSeq: e.auditSeq, note: e.note })),
      reviewers: people(events),
      resolution: c?.resolution
        ? {
            outcome: c.resolution.outcome,
            decidedBy: c.resolution.decidedBy,
            at: c.resolution.at,
            reason: c.resolution.reason ?? null,
          }
        : null,
    });
  }

  const effectOf = async (key: string): Promise<LineageEffect | null> => {
    const e = await source.effect?.(key);
    return e ? { key: e.key, action: e.action, at: e.at, applications: e.applications, result: e.result } : null;
  };
  const actions: LineageAction[] = [];
  const finalPlan = agent?.plan ?? null;
  const model = episode?.model ?? asked?.model ?? summary?.model ?? '';
  for (const [step, a] of (finalPlan?.actions ?? []).entries()) {
    const key = `${episodeId}/${step}`;
    const ran = executed.get(key) ?? null;
    actions.push({
      step,
      type: a.type,
      key,
      executed: ran,
      effect: ran || (agent && step < agent.step) ? await effectOf(key) : null,
      compensation: {
        type: null,
        key: `${key}/compensate`,
        compensated: compensated.get(key) ?? null,
        effect: compensated.has(key) ? await effectOf(`${key}/compensate`) : null,
      },
    });
  }

  return {
    id,
    episodeId,
    model,
    state: episode?.state ?? null,
    status: episode?.status ?? null,
    outcome: agent?.outcome ?? outcomeEntry?.outcome ?? summary?.outcome ?? null,
    startedAt: agent?.startedAt ?? null,
    endedAt: agent?.endedAt ?? summary?.endedAt ?? null,
    history:
      entries > 0
        ? { journal: 'kept', entries }
        : summary
          ? {
              journal: 'compacted',
              compactedAt: summary.compactedAt,
              keepDays: summary.keepDays,
              entries: summary.journals.reduce((n, j) => n + j.entries, 0),
            }
          : { journal: 'none', entries: 0 },
    hold: (await source.hold?.(episodeId)) ?? null,
    observations,
    plans,
    decisions,
    reviews,
    actions,
    outcomeEntry,
    other,
    auditSeqs: audit.map((e) => e.seq),
  };
}

/** Fills in each action's compensation type from the model's catalogue. */
export function withCompensationTypes(
  lineage: Lineage,
  actions: Record<string, { compensation: string | null }> | undefined,
): Lineage {
  if (!actions) return lineage;
  return {
    ...lineage,
    actions: lineage.actions.map((a) => ({
      ...a,
      compensation: { ...a.compensation, type: actions[a.type]?.compensation ?? null },
    })),
  };
}
