/**
 * The freshness guarantee as a property: over random observation times, clock times, staleness
 * limits, stale policies and review delays, a plan built on stale data is never auto-acted, and an
 * approval acts on stale data only when the case it came from showed the data as stale.
 *
 * The machine is driven with the events the runtime would send; time is only the events' `at`.
 */
import fc from 'fast-check';
import { createActor } from 'xstate';
import { describe, expect, it } from 'vitest';
import type { GateDecision } from '../../src/contracts/gate-decision.ts';
import type { FreshnessConfig } from '../../src/contracts/model-config.ts';
import type { Observation } from '../../src/contracts/observation.ts';
import { agentMachineFor, type AgentContext } from '../../src/machines/agent.ts';
import { checkFreshness, flagsStale, withFreshness } from '../../src/policy/freshness.ts';
import { T0, auto, mkObservation, mkPlan, review } from './fixtures.ts';

const MIN = 60_000;
const HOUR = 60 * MIN;
/** Fewest runs that must exercise each side of a property (the seeds give many more; see the log). */
const MIN_EXERCISED = 20;

const freshnessArb: fc.Arbitrary<FreshnessConfig> = fc.record({
  sources: fc.record({ src: fc.record({ maxAgeMs: fc.integer({ min: 1, max: 3 * HOUR }) }) }),
  onStale: fc.constantFrom<FreshnessConfig['onStale']>('review', 'reperceive'),
  maxReperceives: fc.integer({ min: 0, max: 3 }),
});

/** One episode's timing: each perception's source lag, and the delays between the steps. */
const runArb = fc.record({
  freshness: freshnessArb,
  gate: fc.constantFrom<'auto' | 'review1' | 'review2'>('auto', 'review1', 'review2'),
  /** Age of the data when it is perceived (the source's own lag), per perception. */
  lags: fc.array(fc.integer({ min: 0, max: 4 * HOUR }), { minLength: 6, maxLength: 6 }),
  /** Perceive → plan delay, per round. */
  planDelays: fc.array(fc.integer({ min: 0, max: 2 * HOUR }), { minLength: 6, maxLength: 6 }),
  /** Case opened → resolved delay, per case. */
  reviewDelays: fc.array(fc.integer({ min: 0, max: 6 * HOUR }), { minLength: 8, maxLength: 8 }),
  /** What each reviewer does. */
  verdicts: fc.array(fc.constantFrom<'approved' | 'modified'>('approved', 'approved', 'modified'), {
    minLength: 8,
    maxLength: 8,
  }),
});

type Run = typeof runArb extends fc.Arbitrary<infer R> ? R : never;

interface Acted {
  at: number;
  observation: Observation;
  resolution: AgentContext['resolution'];
  /** The decision of the case the approval came through (null for auto). */
  caseDecision: GateDecision | null;
  /** Perception rounds started because the data went stale. */
  reperceived: number;
}

/** Drives one episode to its first execution request (or an end), returning what acted and when. */
function drive(run: Run): Acted | null {
  const decisions: Record<string, GateDecision> = { auto: auto(), review1: review(1), review2: review(2) };
  const machine = agentMachineFor({
    gate: () => decisions[run.gate]!,
    onExpiry: { fallback: 'deny' },
    freshness: run.freshness,
  });
  const actor = createActor(machine, {
    input: { episodeId: 'ep', model: 'm', signal: null, retry: { maxAttempts: 1, backoffMs: 1, maxBackoffMs: 1 } },
  }).start();
  let now = T0;
  let perceptions = 0;
  let cases = 0;
  let caseDecision: GateDecision | null = null;
  for (let guard = 0; guard < 50; guard++) {
    const snap = actor.getSnapshot();
    const ctx = snap.context;
    const effect = ctx.effect;
    if (snap.status !== 'active') return null;
    if (snap.value === 'acting') {
      return {
        at: now,
        observation: ctx.observation!,
        resolution: ctx.resolution,
        caseDecision: ctx.resolution === 'auto' ? null : caseDecision,
        reperceived: ctx.reperceived ?? 0,
      };
    }
    if (!effect) throw new Error(`no effect in ${String(snap.value)}`);
    if (effect.kind === 'perceive') {
      const lag = run.lags[perceptions % run.lags.length]!;
      const observation: Observation = {
        ...mkObservation(),
        provenance: { source: 'src', observedAt: new Date(now - lag).toISOString(), transforms: [] },
      };
      perceptions++;
      actor.send({ type: 'perceive.done', effectId: effect.id, observation, at: now });
    } else if (effect.kind === 'plan') {
      now += run.planDelays[(perceptions - 1) % run.planDelays.length]!;
      actor.send({ type: 'plan.done', effectId: effect.id, plan: mkPlan('p'), at: now });
    } else if (effect.kind === 'openCase') {
      caseDecision = ctx.decision;
      actor.send({ type: 'case.opened', effectId: effect.id, caseId: effect.caseId!, at: now });
      now += run.reviewDelays[cases % run.reviewDelays.length]!;
      const outcome = run.verdicts[cases % run.verdicts.length]!;
      cases++;
      actor.send({
        type: 'case.resolved',
        resolution: {
          caseId: effect.caseId!,
          outcome,
          plan: ctx.plan!,
          tier: Math.max(1, ctx.decision!.tier),
          decidedBy: ['r'],
          at: now,
        },
        at: now,
      });
    } else {
      throw new Error(`unexpected effect ${effect.kind}`);
    }
  }
  throw new Error('episode did not settle');
}

describe('freshness: property', () => {
  it('a stale observation is never auto-acted (random observation times, clock times, limits)', () => {
    // Runs that exercised each side of the property; a run that never reaches an execution (a
    // review denied by the gate's own choice, say) checks nothing and is counted apart.
    const seen = { runs: 0, notActed: 0, auto: 0, approvedFresh: 0, approvedStaleShown: 0, reperceived: 0 };
    fc.assert(
      fc.property(runArb, (run) => {
        seen.runs++;
        const acted = drive(run);
        if (!acted) {
          seen.notActed++;
          return;
        }
        if (acted.reperceived > 0) seen.reperceived++;
        const check = checkFreshness(acted.observation, run.freshness, acted.at);
        if (acted.resolution === 'auto') {
          seen.auto++;
          expect(check.stale, `auto-acted on data ${check.ageMs} ms old (limit ${check.maxAgeMs})`).toBe(false);
        } else {
          // A human approved: either the data was fresh when the approval arrived, or the case they
          // decided showed it as stale.
          if (check.stale) seen.approvedStaleShown++;
          else seen.approvedFresh++;
          expect(
            !check.stale || flagsStale(acted.caseDecision),
            `approved on stale data the case did not show (${check.ageMs} ms)`,
          ).toBe(true);
        }
      }),
      { numRuns: 600, seed: 20251125 },
    );
    console.log(`[freshness property] ${JSON.stringify(seen)}`);
    // The property was exercised on every side, not vacuously true.
    expect(seen.runs).toBe(600);
    expect(seen.auto, 'runs that auto-acted').toBeGreaterThanOrEqual(MIN_EXERCISED);
    expect(seen.approvedFresh, 'runs approved on fresh data').toBeGreaterThanOrEqual(MIN_EXERCISED);
    expect(seen.approvedStaleShown, 'runs approved on stale data the case showed as stale').toBeGreaterThanOrEqual(
      MIN_EXERCISED,
    );
    expect(seen.reperceived, 'runs that perceived again because the data went stale').toBeGreaterThanOrEqual(
      MIN_EXERCISED,
    );
    expect(seen.notActed, 'runs that never acted (checked nothing)').toBeLessThan(seen.runs / 2);
  });

  it('re-perception is bounded: never more than maxReperceives rounds', () => {
    fc.assert(
      fc.property(runArb, (run) => {
        const machine = agentMachineFor({
          gate: () => auto(),
          onExpiry: { fallback: 'deny' },
          freshness: { ...run.freshness, onStale: 'reperceive' },
        });
        const actor = createActor(machine, {
          input: {
            episodeId: 'ep',
            model: 'm',
            signal: null,
            retry: { maxAttempts: 1, backoffMs: 1, maxBackoffMs: 1 },
          },
        }).start();
        // Data that is always older than the limit: every gate finds it stale.
        const old: Observation = {
          ...mkObservation(),
          provenance: { source: 'src', observedAt: new Date(T0 - 4 * HOUR).toISOString(), transforms: [] },
        };
        let rounds = 0;
        for (let i = 0; i < 20 && actor.getSnapshot().context.effect; i++) {
          const effect = actor.getSnapshot().context.effect!;
          if (effect.kind === 'perceive') {
            rounds++;
            actor.send({ type: 'perceive.done', effectId: effect.id, observation: old, at: T0 });
          } else if (effect.kind === 'plan')
            actor.send({ type: 'plan.done', effectId: effect.id, plan: mkPlan('p'), at: T0 });
          else break;
        }
        const snap = actor.getSnapshot();
        expect(rounds).toBe(run.freshness.maxReperceives + 1);
        expect(snap.value).toBe('awaitingReview');
        expect(snap.context.decision?.ruleId).toBe('freshness.stale');
      }),
      { numRuns: 200, seed: 7 },
    );
  });

  it('the rule alone: whatever the base decision, stale data never comes out auto', () => {
    const seen = { staleAuto: 0, staleOther: 0, fresh: 0 };
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 10 * HOUR }),
        fc.integer({ min: 0, max: 10 * HOUR }),
        fc.integer({ min: 1, max: 5 * HOUR }),
        fc.constantFrom(auto(), review(1), review(3)),
        (observedOffset, nowOffset, maxAgeMs, base) => {
          const observation = {
            provenance: { source: 'src', observedAt: new Date(T0 + observedOffset).toISOString(), transforms: [] },
          };
          const check = checkFreshness(
            observation,
            { sources: { src: { maxAgeMs } }, onStale: 'review', maxReperceives: 0 },
            T0 + nowOffset,
          );
          const d = withFreshness(base, check);
          expect(check.stale).toBe(nowOffset - observedOffset > maxAgeMs);
          if (check.stale) {
            seen[base.outcome === 'auto' ? 'staleAuto' : 'staleOther']++;
            expect(d.outcome).not.toBe('auto');
          } else {
            seen.fresh++;
            expect(d.outcome).toBe(base.outcome);
          }
        },
      ),
      { numRuns: 1000, seed: 3 },
    );
    // Both sides checked, and stale data met an auto base decision (the case the rule exists for).
    expect(seen.staleAuto, 'stale data with an auto base decision').toBeGreaterThanOrEqual(MIN_EXERCISED);
    expect(seen.staleOther, 'stale data with a review base decision').toBeGreaterThanOrEqual(MIN_EXERCISED);
    expect(seen.fresh, 'fresh data').toBeGreaterThanOrEqual(MIN_EXERCISED);
  });
});
