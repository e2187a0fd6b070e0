import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { GatewayBackend } from '../../src/gateway/backend.ts';
import { Metrics } from '../../src/gateway/metrics.ts';
import { QueueProjection } from '../../src/gateway/projection.ts';
import type { CaseContext } from '../../src/machines/review-case.ts';
import { loadModel, type LoadedModel } from '../../src/models/loader.ts';
import type { ActorView, TransitionNotice } from '../../src/runtime/runtime.ts';
import type { ActorRecord } from '../../src/runtime/store.ts';

/**
 * Issue 17, defect 6: SLA misses must not vanish after escalation. A case escalated twice for missed
 * acknowledge deadlines shows its history on the queue row, and counts as a miss in SLA attainment
 * at once, from the store at start and live from the notices (the NATS dashboard said 100%).
 */
const ROOT = join(import.meta.dirname, '..', '..');
const T0 = Date.UTC(2026, 11, 1, 9, 0, 0);
const MIN = 60_000;

let model: LoadedModel;
beforeAll(async () => {
  model = await loadModel(join(ROOT, 'models/refunds'));
});

/** A case context with the fields the projection and the dashboards read. */
function caseCtx(id: string, over: Partial<CaseContext> = {}): CaseContext {
  const tiers = model.config.review.tiers;
  const plan = {
    actions: [{ type: 'issueRefund', args: {}, description: 'Refund €10' }],
    rationale: 'r',
    confidence: 0.8,
    riskScore: 0.2,
  };
  return {
    caseId: id,
    episodeId: `ep-${id}`,
    model: 'refunds',
    tier: 1,
    tiers,
    leaseMs: 600_000,
    requestedBy: null,
    plan,
    proposedPlan: plan,
    modified: false,
    modificationNote: null,
    edits: [],
    decision: { outcome: 'review', riskScore: 0.2, confidence: 0.8, ruleId: 'r', reasons: ['x'] },
    observation: { kind: 'refund-request', subject: `ORD-${id}` },
    openedAt: T0,
    enteredTierAt: T0,
    firstClaimAt: null,
    claim: null,
    approvals: [],
    timers: { ack: T0 + 15 * MIN, resolve: T0 + 60 * MIN },
    history: [{ at: T0, kind: 'opened', tier: 1 }],
    escalations: 0,
    resolution: null,
    ...over,
  } as unknown as CaseContext;
}

/** Twice escalated for missed acknowledge deadlines, still open at tier 3. */
function twiceEscalated(id: string): CaseContext {
  const t2 = T0 + 15 * MIN;
  const t3 = t2 + 30 * MIN;
  return caseCtx(id, {
    tier: 3,
    enteredTierAt: t3,
    escalations: 2,
    timers: { ack: t3 + 60 * MIN, resolve: t3 + 480 * MIN },
    history: [
      { at: T0, kind: 'opened', tier: 1 },
      { at: t2, kind: 'escalated', tier: 1, note: 'acknowledge deadline missed' },
      { at: t3, kind: 'escalated', tier: 2, note: 'acknowledge deadline missed' },
    ],
  } as Partial<CaseContext>);
}

function fakeBackend(records: ActorRecord[]) {
  const listeners: ((n: TransitionNotice) => void)[] = [];
  const views = new Map<string, ActorView>();
  for (const r of records)
    views.set(r.id, {
      id: r.id,
      kind: r.kind,
      model: r.model,
      seq: r.seq,
      state: r.state,
      status: r.status,
      context: (r.snapshot as { context: CaseContext }).context,
    });
  let now = T0 + 50 * MIN;
  const backend = {
    namespace: 'test',
    models: [model],
    command: async () => ({}) as never,
    get: async (id: string) => views.get(id),
    liveActors: async function* () {
      for (const r of records) if (r.status === 'active') yield r;
    },
    actors: async function* () {
      for (const r of records) yield r;
    },
    audit: async function* () {},
    appendAudit: async () => undefined,
    onCase: (l: (n: TransitionNotice) => void) => {
      listeners.push(l);
      return { unsubscribe: () => undefined };
    },
    onAgent: () => ({ unsubscribe: () => undefined }),
    now: () => now,
  } as unknown as GatewayBackend;
  return {
    backend,
    views,
    setNow: (t: number) => (now = t),
    emit: (n: TransitionNotice) => listeners.forEach((l) => l(n)),
  };
}

const record = (
  id: string,
  ctx: CaseContext,
  status: ActorRecord['status'] = 'active',
  state = 'queued',
  seq = 3,
): ActorRecord => ({
  id,
  kind: 'case',
  model: 'refunds',
  seq,
  status,
  state,
  snapshot: { context: ctx },
  updatedAt: T0,
});
const everyone = {
  id: 'probe',
  name: 'probe',
  grants: { refunds: { roles: ['support-lead', 'refunds-manager', 'finance-controller'], seeSensitive: true } },
};

describe('SLA misses after escalation', () => {
  it('the queue row of a twice-escalated case carries its escalations, why, and that the SLA was missed; P1 is the most urgent tier', async () => {
    const { backend } = fakeBackend([record('c-esc', twiceEscalated('c-esc')), record('c-fresh', caseCtx('c-fresh'))]);
    const q = new QueueProjection(backend);
    await q.start();
    const rows = q.list(everyone, {}, 0, 10, T0 + 50 * MIN).rows;
    const esc = rows.find((r) => r.id === 'c-esc')!;
    expect(esc.escalations.map((e) => [e.fromTier, e.cause])).toEqual([
      [1, 'ack'],
      [2, 'ack'],
    ]);
    expect(esc.slaMissed).toBe(true);
    // The finance controller tier (priority 3) is the most urgent: P1. Support lead (priority 1): P3.
    expect(esc.priorityRank).toBe(1);
    const fresh = rows.find((r) => r.id === 'c-fresh')!;
    expect(fresh.escalations).toEqual([]);
    expect(fresh.slaMissed).toBe(false);
    expect(fresh.priorityRank).toBe(3);
    // A reviewer's escalation is not a missed deadline, whatever its reason says.
    const byHand = caseCtx('c-hand', {
      tier: 2,
      history: [
        { at: T0, kind: 'opened', tier: 1 },
        { at: T0 + MIN, kind: 'escalated', tier: 1, by: 'r-amelie', note: 'deadline missed, says I' },
      ],
    } as Partial<CaseContext>);
    const q2 = new QueueProjection(fakeBackend([record('c-hand', byHand)]).backend);
    await q2.start();
    expect(q2.get('c-hand')).toMatchObject({
      slaMissed: false,
      escalations: [{ fromTier: 1, cause: 'reviewer', by: 'r-amelie' }],
    });
  });

  it('dashboards count a miss as soon as a case escalates for it, from the store and live; escalations are charted; empty buckets are gaps', async () => {
    const met = caseCtx('c-met', {
      firstClaimAt: T0 + 2 * MIN,
      resolution: { outcome: 'approved', at: T0 + 10 * MIN, by: ['r-amelie'] },
    } as unknown as Partial<CaseContext>);
    const f = fakeBackend([
      record('c-esc', twiceEscalated('c-esc')),
      record('c-met', met, 'done', 'approved'),
      record('c-live', caseCtx('c-live')),
    ]);
    const m = new Metrics(f.backend);
    await m.start().loaded;
    const s1 = m.series(everyone, 3600_000, T0 + 50 * MIN);
    // One closed case met its SLA, one open case missed twice: 50%, not the 100% of closed cases only.
    expect(s1.totals.slaAttainment).toBe(0.5);
    expect(s1.totals.slaMissed).toBe(1);
    expect(s1.totals.escalations).toEqual({ ack: 2, resolve: 0, reviewer: 0 });
    expect(s1.escalations.ack.reduce((a, b) => a + b, 0)).toBe(2);
    // A minute with nothing closed or missed has no attainment: null, drawn as a gap.
    expect(s1.slaAttainment.some((v) => v === null)).toBe(true);

    // Live: the third case misses its acknowledge deadline and escalates (as on a NATS cluster).
    const at = T0 + 16 * MIN;
    const escalated = caseCtx('c-live', {
      tier: 2,
      enteredTierAt: at,
      history: [
        { at: T0, kind: 'opened', tier: 1 },
        { at, kind: 'escalated', tier: 1, note: 'acknowledge deadline missed' },
      ],
    } as Partial<CaseContext>);
    f.views.set('c-live', {
      id: 'c-live',
      kind: 'case',
      model: 'refunds',
      seq: 4,
      state: 'queued',
      status: 'active',
      context: escalated,
    });
    const tier2 = model.config.review.tiers[1]!;
    f.emit({
      id: 'c-live',
      kind: 'case',
      model: 'refunds',
      seq: 4,
      at,
      event: 'timer.ack',
      state: 'queued',
      status: 'active',
      queue: {
        queue: tier2.queue,
        roles: tier2.roles,
        tier: 2,
        priority: tier2.priority,
        claimedBy: null,
        openedAt: T0,
      },
    });
    await expect.poll(() => m.series(everyone, 3600_000, T0 + 50 * MIN).totals.slaMissed).toBe(2);
    const s2 = m.series(everyone, 3600_000, T0 + 50 * MIN);
    expect(s2.totals.slaAttainment).toBeCloseTo(1 / 3);
    expect(s2.totals.escalations.ack).toBe(3);

    // When it closes later, it is not counted twice.
    const closed = {
      ...escalated,
      resolution: { outcome: 'approved', at: T0 + 40 * MIN, by: ['r-malik'] },
    } as unknown as CaseContext;
    f.views.set('c-live', {
      id: 'c-live',
      kind: 'case',
      model: 'refunds',
      seq: 5,
      state: 'approved',
      status: 'done',
      context: closed,
    });
    f.emit({
      id: 'c-live',
      kind: 'case',
      model: 'refunds',
      seq: 5,
      at: T0 + 40 * MIN,
      event: 'approve',
      state: 'approved',
      status: 'done',
    });
    await expect.poll(() => m.series(everyone, 3600_000, T0 + 50 * MIN).totals.closed).toBe(2);
    const s3 = m.series(everyone, 3600_000, T0 + 50 * MIN);
    expect(s3.totals.slaMissed).toBe(2);
    expect(s3.totals.slaAttainment).toBeCloseTo(1 / 3);
    expect(s3.totals.escalations.ack).toBe(3);
  });
});
