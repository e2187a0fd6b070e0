import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { rulePlanner, type Planner } from '../../../src/actors/planners/planner.ts';
import type { Plan } from '../../../src/contracts/plan.ts';
import type { CaseContext } from '../../../src/machines/review-case.ts';
import { DriftMonitor, driftGate, type DriftEvent } from '../../../src/policy/drift.ts';
import { screenedGate } from '../../../src/policy/injection-screen.ts';
import { SimulatedClock } from '../../../src/base/clock.ts';
import { LevelStore } from '../../../src/runtime/level-store.ts';
import { Rng, drawFor } from '../../../src/base/rng.ts';
import { Runtime } from '../../../src/runtime/runtime.ts';
import { LevelWorld } from '../../../src/runtime/world.ts';
import { model, dirs, mkPlan, obs } from './fixtures.ts';

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
    console.log(
      `[drift simulation, no drift] tightened: ${figures.tightenedAtEpisode}, outcomes ${JSON.stringify(figures.outcomes)}, ${figures.wallMs} ms`,
    );
    expect(figures.tightenedAtEpisode).toBeNull();
    expect(figures.wrongPlans).toBe(0);
  });
});
