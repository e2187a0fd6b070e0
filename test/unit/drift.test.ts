import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rulePlanner, type Planner } from '../../src/actors/planners/planner.ts';
import type { Observation } from '../../src/contracts/observation.ts';
import type { Plan } from '../../src/contracts/plan.ts';
import type { CaseContext } from '../../src/machines/review-case.ts';
import { loadModel, type LoadedModel } from '../../src/models/loader.ts';
import { DriftMonitor, driftGate, type DriftEvent, type MetaStore } from '../../src/policy/drift.ts';
import { screenedGate } from '../../src/policy/injection-screen.ts';
import { SimulatedClock } from '../../src/runtime/clock.ts';
import { LevelStore } from '../../src/runtime/level-store.ts';
import { Rng, drawFor } from '../../src/runtime/rng.ts';
import { Runtime } from '../../src/runtime/runtime.ts';
import { LevelWorld } from '../../src/runtime/world.ts';

let model: LoadedModel;
const dirs: string[] = [];
beforeAll(async () => {
  model = await loadModel('models/refunds');
});
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

class MemoryMeta implements MetaStore {
  data = new Map<string, unknown>();
  async getMeta<T>(key: string): Promise<T | undefined> {
    return structuredClone(this.data.get(key)) as T | undefined;
  }
  async putMeta(key: string, value: unknown): Promise<void> {
    this.data.set(key, structuredClone(value));
  }
}

function mkPlan(
  id: string,
  confidence: number,
  actions: Plan['actions'] = [
    { type: 'declineRefund', args: { orderId: 'ORD-00000001', reason: 'outside the window' } },
  ],
  score = 0.1,
): Plan {
  return model.validatePlan({
    id,
    planner: 'test',
    actions,
    confidence,
    rationale: 'test',
    risk: { score, factors: [] },
    citedInputs: [],
  });
}

const obs: Observation = {
  id: 'obs-1',
  kind: 'refund-request',
  subject: 'ORD-00000001',
  provenance: { source: 'test', observedAt: '2026-01-01T00:00:00.000Z', transforms: [] },
  classification: 'internal',
  dataClasses: ['internal'],
  fields: { reason: 'The mug arrived broken.' },
};

describe('DriftMonitor: figures', () => {
  it('counts override rate per model and rule, calibration buckets and the Brier score; expired cases are not decisions', async () => {
    const m = await DriftMonitor.open({
      models: [model],
      overrides: { refunds: { minSamples: 1000, cusumThreshold: 1000 } },
    });
    const rec = (
      i: number,
      rule: string,
      outcome: 'approved' | 'modified' | 'rejected' | 'expired',
      confidence: number,
    ) => m.record('refunds', { caseId: `ep-${i}.case-1`, rule, outcome, confidence, at: i });
    rec(1, 'confidence-threshold', 'approved', 0.75);
    rec(2, 'confidence-threshold', 'approved', 0.65);
    rec(3, 'confidence-threshold', 'modified', 0.55);
    rec(4, 'limit:issueRefund.amount', 'rejected', 0.95);
    rec(5, 'limit:issueRefund.amount', 'expired', 0.9);
    rec(5, 'limit:issueRefund.amount', 'approved', 0.9); // the same case again: ignored
    const r = m.report().models[0]!;
    expect(r.total).toMatchObject({ decided: 4, approved: 2, modified: 1, rejected: 1, expired: 1, overrideRate: 0.5 });
    const byRule = Object.fromEntries(r.rules.map((x) => [x.rule, x]));
    expect(byRule['confidence-threshold']).toMatchObject({ decided: 3, overrideRate: 0.3333 });
    expect(byRule['limit:issueRefund.amount']).toMatchObject({ decided: 1, rejected: 1, expired: 1, overrideRate: 1 });
    // Brier: (0.75-1)² + (0.65-1)² + (0.55-0)² + (0.95-0)² = 0.0625 + 0.1225 + 0.3025 + 0.9025 = 1.39 → /4
    expect(r.total.brier).toBeCloseTo(0.3475, 4);
    const b9 = r.calibration.find((c) => c.bucket === '0.9-1.0')!;
    expect(b9).toMatchObject({ n: 1, approvalRate: 0 });
    const b7 = r.calibration.find((c) => c.bucket === '0.7-0.8')!;
    expect(b7).toMatchObject({ n: 1, approvalRate: 1, meanConfidence: 0.75 });
    expect(r.window).toMatchObject({ samples: 4, overrides: 2, overrideRate: 0.5 });
    expect(r.tightened).toBeNull();
  });

  it('tightens once the window passes the limit (not before minSamples), audits it with the figures, and calls the hook', async () => {
    const audits: unknown[] = [];
    const events: DriftEvent[] = [];
    const m = await DriftMonitor.open({
      models: [model],
      overrides: { refunds: { maxOverrideRate: 0.3, window: 10, minSamples: 6, cusumThreshold: 1000 } },
      audit: async (d) => void audits.push(...d),
      onTightened: (e) => void events.push(e),
    });
    const outcomes = ['rejected', 'rejected', 'modified', 'approved', 'rejected'] as const;
    outcomes.forEach((o, i) =>
      expect(
        m.record('refunds', {
          caseId: `e${i}.case-1`,
          rule: 'confidence-threshold',
          outcome: o,
          confidence: 0.9,
          at: i,
        }),
      ).toBeUndefined(),
    );
    expect(m.tightening('refunds')).toBeUndefined(); // 5 samples < minSamples
    const event = m.record('refunds', {
      caseId: 'e5.case-1',
      rule: 'confidence-threshold',
      outcome: 'approved',
      confidence: 0.9,
      at: 5,
    });
    expect(event?.tightening).toMatchObject({ samples: 6, overrides: 4, overrideRate: 0.6667, maxOverrideRate: 0.3 });
    await m.flush();
    expect(events).toHaveLength(1);
    expect(audits).toEqual([
      expect.objectContaining({
        kind: 'drift.tightened',
        actor: 'drift/refunds',
        data: expect.objectContaining({ overrideRate: 0.6667, samples: 6, window: 10 }),
      }),
    ]);
    // Once tightened it stays so (no second event) until an operator relaxes it.
    m.record('refunds', {
      caseId: 'e6.case-1',
      rule: 'confidence-threshold',
      outcome: 'rejected',
      confidence: 0.9,
      at: 6,
    });
    await m.flush();
    expect(events).toHaveLength(1);
    expect(await m.relax('refunds', 'ops-1', 'planner rolled back')).toBe(true);
    expect(m.tightening('refunds')).toBeUndefined();
    expect(audits.at(-1)).toMatchObject({ kind: 'drift.relaxed', by: 'ops-1' });
    expect(m.report().models[0]!.window.samples).toBe(0);
  });

  it('per rule, a CUSUM notices a rule whose override rate jumps (spot checks of auto plans), even when the whole window is fine', async () => {
    const m = await DriftMonitor.open({
      models: [model],
      overrides: { refunds: { maxOverrideRate: 0.3, window: 100, minSamples: 20 } },
    });
    for (let i = 0; i < 40; i++)
      m.record('refunds', {
        caseId: `a${i}.case-1`,
        rule: 'confidence-threshold',
        outcome: 'approved',
        confidence: 0.6,
        at: i,
      });
    // p0 = 0.1, p1 = 0.3: an override adds ln 3 = 1.099, an approval ln(0.7/0.9) = -0.251.
    const seq = ['rejected', 'approved', 'rejected', 'rejected'] as const;
    seq.forEach((o, i) =>
      m.record('refunds', {
        caseId: `s${i}.case-1`,
        rule: 'drift-spot-check',
        outcome: o,
        confidence: 0.95,
        at: 40 + i,
      }),
    );
    expect(m.tightening('refunds')).toBeUndefined();
    expect(m.report().models[0]!.rules.find((r) => r.rule === 'drift-spot-check')!.cusum).toBeCloseTo(3.045, 2);
    m.record('refunds', {
      caseId: 's4.case-1',
      rule: 'drift-spot-check',
      outcome: 'modified',
      confidence: 0.95,
      at: 45,
    });
    expect(m.tightening('refunds')).toMatchObject({
      rule: 'drift-spot-check',
      samples: 5,
      overrides: 4,
      overrideRate: 0.8,
    });
    expect(m.tightening('refunds')!.cusum).toBeCloseTo(4.143, 2);
    expect(m.report().models[0]!.window.overrideRate).toBeLessThan(0.3);
  });

  it('the CUSUM stays quiet at an acceptable override rate (10 %) over a long run', async () => {
    const m = await DriftMonitor.open({ models: [model], overrides: { refunds: { maxOverrideRate: 0.3 } } });
    for (let i = 0; i < 1000; i++)
      m.record('refunds', {
        caseId: `q${i}.case-1`,
        rule: 'risk-threshold',
        outcome: i % 10 === 3 ? 'rejected' : 'approved',
        confidence: 0.7,
        at: i,
      });
    expect(m.tightening('refunds')).toBeUndefined();
    expect(m.report().models[0]!.rules[0]!.cusum).toBeLessThan(2);
  });

  it('persists its state in the store meta and picks it up again (tightening survives a restart)', async () => {
    const store = new MemoryMeta();
    const m1 = await DriftMonitor.open({
      store,
      models: [model],
      overrides: { refunds: { window: 5, minSamples: 3, cusumThreshold: 1000 } },
    });
    for (let i = 0; i < 3; i++)
      m1.record('refunds', {
        caseId: `x${i}.case-1`,
        rule: 'risk-threshold',
        outcome: 'rejected',
        confidence: 0.8,
        at: i,
      });
    await m1.close();
    expect(store.data.has('drift')).toBe(true);
    const m2 = await DriftMonitor.open({ store, models: [model] });
    expect(m2.tightening('refunds')).toMatchObject({ overrideRate: 1, samples: 3 });
    expect(m2.report().models[0]!.total.decided).toBe(3);
    // A case recorded before the restart is not counted twice.
    m2.record('refunds', { caseId: 'x2.case-1', rule: 'risk-threshold', outcome: 'rejected', confidence: 0.8, at: 9 });
    expect(m2.report().models[0]!.total.decided).toBe(3);
    expect(DriftMonitor.reportOf((await DriftMonitor.load(store))!).models[0]!.tightened).not.toBeNull();
  });
});

describe('driftGate', () => {
  let auto: Plan;
  beforeAll(() => {
    auto = mkPlan('p-auto', 0.95);
  });

  it('passes auto plans while the model is not tightened, spot-checks a deterministic share of them', async () => {
    const m = await DriftMonitor.open({ models: [model], overrides: { refunds: { spotCheckRate: 0.25 } } });
    const gate = driftGate(model, model.gate, m);
    expect(model.gate(auto, obs).outcome).toBe('auto');
    let spot = 0;
    for (let i = 0; i < 400; i++) {
      const d = gate({ ...auto, id: `ep-${i}.plan-1` }, obs);
      if (d.outcome === 'review') {
        spot++;
        expect(d.ruleId).toBe('drift-spot-check');
      }
      expect(gate({ ...auto, id: `ep-${i}.plan-1` }, obs).outcome).toBe(d.outcome); // same plan, same decision
    }
    expect(spot / 400).toBeGreaterThan(0.18);
    expect(spot / 400).toBeLessThan(0.32);
  });

  it('review-all: once tightened every auto plan goes to review with the figures as the reason; denials stay denials', async () => {
    const m = await DriftMonitor.open({
      models: [model],
      overrides: { refunds: { window: 5, minSamples: 3, spotCheckRate: 0 } },
    });
    for (let i = 0; i < 3; i++)
      m.record('refunds', {
        caseId: `y${i}.case-1`,
        rule: 'confidence-threshold',
        outcome: 'modified',
        confidence: 0.7,
        at: i,
      });
    const gate = driftGate(model, model.gate, m);
    const d = gate(auto, obs);
    expect(d).toMatchObject({ outcome: 'review', ruleId: 'drift-tightened', tier: 1 });
    expect(d.reasons[0]).toMatch(/overrode 100\.0% of the last 3 decided plans of refunds \(limit 30%\)/);
    const tooMuch = mkPlan('p-deny', 0.99, [
      {
        type: 'issueRefund',
        args: { orderId: 'ORD-00000001', amount: 2500, currency: 'EUR', iban: 'DE89370400440532013000' },
      },
    ]);
    expect(gate(tooMuch, obs).outcome).toBe('deny');
  });

  it('thresholds mode: raises minAutoConfidence and lowers maxAutoRisk for that model only', async () => {
    const m = await DriftMonitor.open({
      models: [model],
      overrides: {
        refunds: {
          window: 5,
          minSamples: 3,
          spotCheckRate: 0,
          tighten: { mode: 'thresholds', minAutoConfidence: 0.97, maxAutoRisk: 0.15 },
        },
      },
    });
    for (let i = 0; i < 3; i++)
      m.record('refunds', {
        caseId: `z${i}.case-1`,
        rule: 'confidence-threshold',
        outcome: 'rejected',
        confidence: 0.7,
        at: i,
      });
    const gate = driftGate(model, model.gate, m);
    expect(gate(mkPlan('a', 0.95), obs)).toMatchObject({ outcome: 'review', ruleId: 'drift-tightened' });
    expect(gate(mkPlan('b', 0.98), obs).outcome).toBe('auto'); // declineRefund: inherent risk 0.1 ≤ 0.15
    const refund = mkPlan('c', 0.99, [
      {
        type: 'issueRefund',
        args: { orderId: 'ORD-00000001', amount: 20, currency: 'EUR', iban: 'DE89370400440532013000' },
      },
    ]);
    expect(gate(refund, obs).reasons[0]).toMatch(/risk 0\.2 above the tightened limit 0\.15/);
  });
});

// -------------------------------------------------------------------------------------------------
// Simulation: a planner that starts to drift, oracle reviewers, the real runtime
// -------------------------------------------------------------------------------------------------

const round2 = (x: number) => Math.round(x * 100) / 100;

interface SimFigures {
  episodes: number;
  driftStartsAfter: number;
  wrongShare: number;
  spotCheckRate: number;
  wrongPlans: number;
  tightenedAtEpisode: number | null;
  episodesFromDriftToTightening: number | null;
  tightening: DriftEvent['tightening'] | null;
  windowAtTightening: DriftEvent['figures']['window'] | null;
  wrongAutoBefore: number;
  wrongAutoAfter: number;
  autoBefore: number;
  autoAfter: number;
  wrongExecutedAfter: number;
  reviewedAfter: number;
  wrongByGate: Record<string, number>;
  outcomes: Record<string, number>;
  wallMs: number;
}

async function simulate(opts: {
  episodes: number;
  driftAfter: number;
  wrongShare: number;
  spotCheckRate: number;
  seed: string;
}): Promise<{ figures: SimFigures; dir: string }> {
  const wall0 = performance.now();
  const dir = await mkdtemp(join(tmpdir(), 'handoff-drift-'));
  dirs.push(dir);
  const store = await LevelStore.open(dir);
  const clock = new SimulatedClock(Date.UTC(2026, 0, 5, 8));
  let tightenedEvent: DriftEvent | null = null;
  const monitor = await DriftMonitor.open({
    store,
    models: [model],
    clock,
    overrides: { refunds: { maxOverrideRate: 0.3, window: 50, minSamples: 20, spotCheckRate: opts.spotCheckRate } },
    onTightened: (e) => {
      tightenedEvent = e;
      return `operator-case-for-${e.model}`;
    },
  });

  // The planner: the model's own rule planner, until episode `driftAfter`; then a seeded share of its
  // plans is wrong (the wrong refund amount, or a refund where the rules decline) with high confidence.
  const wrong = new Set<string>();
  const correct = new Map<string, Plan>();
  const decisions: { planId: string; outcome: string; ruleId: string; tightened: boolean }[] = [];
  const planner: Planner = {
    name: 'drifting',
    async plan(m, episodeId, observation, ctx) {
      const good = await rulePlanner.plan(m, episodeId, observation, ctx);
      correct.set(episodeId, good);
      const index = Number(episodeId.slice(3));
      if (index <= opts.driftAfter || drawFor(opts.seed, 'wrong', episodeId) >= opts.wrongShare) return good;
      const f = observation.fields as {
        orderId: string;
        order: { amount: number };
        customer: { iban: string; email: string };
      };
      const refund = good.actions.find((a) => a.type === 'issueRefund');
      const factor = 1.5 + 1.5 * drawFor(opts.seed, 'factor', episodeId);
      const actions: Plan['actions'] = refund
        ? good.actions.map((a) =>
            a === refund ? { ...a, args: { ...a.args, amount: round2(Number(a.args.amount) * factor) } } : a,
          )
        : [
            {
              type: 'issueRefund',
              args: { orderId: f.orderId, amount: f.order.amount, currency: 'EUR', iban: f.customer.iban },
            },
            { type: 'notifyCustomer', args: { email: f.customer.email, template: 'refund-issued' } },
          ];
      const bad = m.validatePlan({
        ...good,
        actions,
        confidence: 0.96,
        risk: { score: 0.08, factors: [] },
        rationale: 'Full refund: the customer is clearly entitled.',
      });
      wrong.add(bad.id);
      return bad;
    },
  };

  const rt = await Runtime.open({
    store,
    world: new LevelWorld(store),
    models: [model],
    clock,
    seed: opts.seed,
    planners: { refunds: planner },
    // Timers held in memory for the whole run: the simulated clock then sees every deadline at once.
    timerHorizonMs: 30 * 86_400_000,
    gateFor: (m) => {
      const gate = driftGate(m, screenedGate(m, m.gate), monitor);
      return (plan, observation) => {
        const d = gate(plan, observation);
        decisions.push({
          planId: plan.id,
          outcome: d.outcome,
          ruleId: d.ruleId,
          tightened: monitor.tightening(m.name) !== undefined,
        });
        return d;
      };
    },
  });
  monitor.attach(rt);

  // Oracle reviewers: they know the right plan (the rule planner's). They approve it (and now and then
  // reject a right one: 3 % noise), and modify or reject a wrong one.
  const everyRole = ['support-lead', 'refunds-manager', 'finance-controller'];
  const A = { id: 'rev-a', roles: everyRole };
  const B = { id: 'rev-b', roles: everyRole };
  let n = 0;
  let inflight = 0;
  const cmd = (type: string, caseId: string, reviewer: typeof A, extra: Record<string, unknown> = {}) =>
    rt.command({ type, schemaVersion: 1, commandId: `sim-${++n}`, caseId, reviewer, ...extra });
  const same = (a: Plan, b: Plan) =>
    a.actions.length === b.actions.length &&
    a.actions.every(
      (x, i) =>
        x.type === b.actions[i]!.type && (x.type !== 'issueRefund' || x.args.amount === b.actions[i]!.args.amount),
    );
  const secondApprovalIfNeeded = async (caseId: string) => {
    if ((await rt.get(caseId))?.state === 'queued') {
      await cmd('handoff.case.claim', caseId, B);
      await cmd('handoff.case.approve', caseId, B);
    }
  };
  const decide = async (caseId: string) => {
    const view = await rt.get(caseId);
    if (!view || view.status !== 'active') return;
    const c = view.context as CaseContext;
    const right = correct.get(c.episodeId)!;
    await cmd('handoff.case.claim', caseId, A);
    if (same(c.plan, right)) {
      if (drawFor(opts.seed, 'noise', caseId) < 0.03)
        await cmd('handoff.case.reject', caseId, A, { reason: 'customer history needs a phone call first' });
      else {
        await cmd('handoff.case.approve', caseId, A);
        await secondApprovalIfNeeded(caseId);
      }
    } else if (
      drawFor(opts.seed, 'fix', caseId) < 0.5 &&
      right.actions.length === c.plan.actions.length &&
      right.actions.every((a, i) => a.type === c.plan.actions[i]!.type)
    ) {
      // A reviewer edits arguments only; a plan with other actions can only be rejected.
      await cmd('handoff.case.modify', caseId, A, {
        actions: right.actions.map((a) => ({ type: a.type, args: a.args })),
        comment: 'wrong decision: arguments set to the policy outcome',
      });
      await secondApprovalIfNeeded(caseId);
    } else await cmd('handoff.case.reject', caseId, A, { reason: 'wrong amount / not entitled' });
  };
  let finished = 0;
  rt.onTransition((t) => {
    if (t.kind === 'agent' && t.status === 'done') finished++;
    if (t.kind === 'case' && t.seq === 0 && !t.id.includes('.operator-')) {
      clock.setTimeout(() => {
        inflight++;
        decide(t.id)
          .catch((err: unknown) => rt.log.error({ err, caseId: t.id }, 'simulated reviewer failed'))
          .finally(() => inflight--);
      }, 5 * 60_000);
    }
  });

  // Arrivals, one every 2 minutes.
  const rng = new Rng(opts.seed);
  const arrivals: number[] = [];
  const startErrors: unknown[] = [];
  const t0 = clock.now();
  for (let i = 1; i <= opts.episodes; i++) {
    const signal = model.handlers.synthesize(rng, i);
    const at = t0 + i * 120_000;
    arrivals.push(at);
    clock.setTimeout(
      () =>
        void rt
          .startEpisode('refunds', signal, { episodeId: `ep-${String(i).padStart(4, '0')}` })
          .catch((err: unknown) => startErrors.push(err)),
      at - clock.now(),
    );
  }
  // Timer refills read the store asynchronously, outside `rt.busy`: when nothing is due yet episodes
  // are unfinished, give the runtime a moment before concluding that nothing will happen.
  for (let steps = 0, quiet = 0; steps < 200_000 && quiet < 100; steps++) {
    do {
      await rt.whenIdle();
      await new Promise((r) => setImmediate(r));
    } while (rt.busy > 0 || inflight > 0);
    if (finished >= opts.episodes) break;
    const next = clock.nextDue();
    if (next === undefined) {
      quiet++;
      await new Promise((r) => setTimeout(r, 5));
      continue;
    }
    quiet = 0;
    clock.advanceTo(next);
  }
  expect(startErrors).toEqual([]);
  expect(finished).toBe(opts.episodes);
  await monitor.close();
  await rt.close();

  // Figures: every gate decision, and whether the monitor had tightened the gate when it was taken.
  const t = (tightenedEvent as DriftEvent | null)?.tightening ?? null;
  const count = (f: (d: (typeof decisions)[number]) => boolean) => decisions.filter(f).length;
  const wrongAutoBefore = count((d) => !d.tightened && d.outcome === 'auto' && wrong.has(d.planId));
  const wrongAutoAfter = count((d) => d.tightened && d.outcome === 'auto' && wrong.has(d.planId));
  const autoBefore = count((d) => !d.tightened && d.outcome === 'auto');
  const autoAfter = count((d) => d.tightened && d.outcome === 'auto');
  const reviewedAfter = count((d) => d.tightened && d.outcome === 'review');
  const wrongByGate: Record<string, number> = {};
  for (const d of decisions)
    if (wrong.has(d.planId))
      wrongByGate[`${d.outcome}:${d.ruleId}`] = (wrongByGate[`${d.outcome}:${d.ruleId}`] ?? 0) + 1;
  const tightenedPlans = new Set(decisions.filter((d) => d.tightened).map((d) => d.planId));
  const outcomes: Record<string, number> = {};
  let sawTightenedAudit = false;
  const executed = new Set<string>();
  for await (const e of store.audit()) {
    if (e.kind === 'drift.tightened') sawTightenedAudit = true;
    if (e.kind === 'episode.outcome') outcomes[String(e.data.outcome)] = (outcomes[String(e.data.outcome)] ?? 0) + 1;
    if (e.kind === 'action.executed') executed.add(e.actor);
  }
  // A wrong plan, gated after the tightening, that ran by any route (on its own or approved).
  let wrongExecutedAfter = 0;
  for (const ep of executed) {
    const rec = await store.load(ep);
    const plan = rec ? (rec.snapshot as { context: { plan: Plan | null } }).context.plan : null;
    // A plan keeps its id when a reviewer corrects its arguments: wrong is what differs from the right plan.
    const right = correct.get(ep);
    if (plan && wrong.has(plan.id) && tightenedPlans.has(plan.id) && (!right || !same(plan, right)))
      wrongExecutedAfter++;
  }
  expect(sawTightenedAudit).toBe(t !== null);
  const persisted = await DriftMonitor.load(store);
  expect(persisted?.models.refunds?.tightened?.operatorCase ?? null).toBe(t ? 'operator-case-for-refunds' : null);
  await store.close();
  const tightenedAtEpisode = t ? arrivals.filter((a) => a <= t.at).length : null;
  return {
    dir,
    figures: {
      episodes: opts.episodes,
      driftStartsAfter: opts.driftAfter,
      wrongShare: opts.wrongShare,
      spotCheckRate: opts.spotCheckRate,
      wrongPlans: wrong.size,
      tightenedAtEpisode,
      episodesFromDriftToTightening: tightenedAtEpisode === null ? null : tightenedAtEpisode - opts.driftAfter,
      tightening: t,
      windowAtTightening: (tightenedEvent as DriftEvent | null)?.figures.window ?? null,
      wrongAutoBefore,
      wrongAutoAfter,
      autoBefore,
      autoAfter,
      wrongExecutedAfter,
      reviewedAfter,
      wrongByGate,
      outcomes,
      wallMs: Math.round(performance.now() - wall0),
    },
  };
}

describe('simulation: a drifting planner on the real runtime', () => {
  it('the gate tightens within a bounded number of episodes after the drift starts, and no wrong plan runs on its own afterwards', async () => {
    const { figures, dir } = await simulate({
      episodes: 300,
      driftAfter: 100,
      wrongShare: 0.4,
      spotCheckRate: 0.2,
      seed: 'drift-sim-1',
    });
    // eslint-disable-next-line no-console
    console.log(`[drift simulation]\n${JSON.stringify(figures, null, 2)}`);
    expect(figures.wrongPlans).toBeGreaterThan(40);
    // The drift did hurt before the gate reacted (wrong plans ran), and the gate did not fire before it.
    expect(figures.wrongAutoBefore).toBeGreaterThan(0);
    expect(figures.tightenedAtEpisode).not.toBeNull();
    expect(figures.tightenedAtEpisode!).toBeGreaterThan(figures.driftStartsAfter);
    expect(figures.episodesFromDriftToTightening!).toBeLessThanOrEqual(150);
    // After the tightening: nothing runs without a reviewer, and no wrong plan runs at all.
    expect(figures.autoAfter).toBe(0);
    expect(figures.wrongAutoAfter).toBe(0);
    expect(figures.wrongExecutedAfter).toBe(0);
    expect(figures.reviewedAfter).toBeGreaterThan(0);

    // The tightening survives a restart: a runtime opened on the same data folder still reviews everything.
    const store = await LevelStore.open(dir);
    try {
      const monitor = await DriftMonitor.open({ store, models: [model] });
      expect(monitor.tightening('refunds')).toMatchObject({ maxOverrideRate: 0.3 });
      const gate = driftGate(model, model.gate, monitor);
      expect(gate(mkPlan('after-restart', 0.99), obs)).toMatchObject({ outcome: 'review', ruleId: 'drift-tightened' });
      await monitor.close();
    } finally {
      await store.close();
    }
  });

  it('without drift, the same set-up never tightens (no false alarm)', async () => {
    const { figures } = await simulate({
      episodes: 200,
      driftAfter: 1_000,
      wrongShare: 0,
      spotCheckRate: 0.2,
      seed: 'drift-sim-2',
    });
    // eslint-disable-next-line no-console
    console.log(
      `[drift simulation, no drift] tightened: ${figures.tightenedAtEpisode}, outcomes ${JSON.stringify(figures.outcomes)}, ${figures.wallMs} ms`,
    );
    expect(figures.tightenedAtEpisode).toBeNull();
    expect(figures.wrongPlans).toBe(0);
  });
});
