/**
 * The freshness rule (src/policy/freshness.ts) on the gate's decisions, and its configuration in
 * model.json. The machine's paths are in agent-machine.test.ts ("freshness"); the guarantee as a
 * property over random times is in freshness.property.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { ModelConfig, type FreshnessConfig } from '../../src/contracts/model-config.ts';
import { ContractError } from '../../src/contracts/errors.ts';
import { parseContract } from '../../src/contracts/parse.ts';
import { loadModel } from '../../src/models/loader.ts';
import { evaluateGate } from '../../src/policy/gate.ts';
import {
  FRESHNESS_FRESH,
  FRESHNESS_STALE,
  checkFreshness,
  flagsStale,
  formatAge,
  maxAgeFor,
  withFreshness,
} from '../../src/policy/freshness.ts';
import { T0, auto, deny, mkObservation, mkPlan, review } from './fixtures.ts';

const MIN = 60_000;
const CONFIG: FreshnessConfig = {
  sources: { 'orders-db': { maxAgeMs: 10 * MIN } },
  defaultMaxAgeMs: 60 * MIN,
  onStale: 'review',
  maxReperceives: 2,
};
const observed = (source: string, at: number | string) => ({
  ...mkObservation(),
  provenance: { source, observedAt: typeof at === 'string' ? at : new Date(at).toISOString(), transforms: [] },
});

describe('freshness: the check', () => {
  it('takes the source its own limit, else the default, else none', () => {
    expect(maxAgeFor(CONFIG, 'orders-db')).toBe(10 * MIN);
    expect(maxAgeFor(CONFIG, 'crm')).toBe(60 * MIN);
    expect(maxAgeFor({ ...CONFIG, defaultMaxAgeMs: undefined }, 'crm')).toBeNull();
  });

  it('is inclusive at the limit and stale one millisecond past it', () => {
    expect(checkFreshness(observed('orders-db', T0), CONFIG, T0 + 10 * MIN)).toMatchObject({
      stale: false,
      ageMs: 10 * MIN,
      maxAgeMs: 10 * MIN,
    });
    expect(checkFreshness(observed('orders-db', T0), CONFIG, T0 + 10 * MIN + 1)).toMatchObject({
      stale: true,
      ageMs: 10 * MIN + 1,
    });
  });

  it('a source without a limit never goes stale; a future observedAt (clock skew) is age 0', () => {
    const none = { ...CONFIG, defaultMaxAgeMs: undefined };
    expect(checkFreshness(observed('crm', T0), none, T0 + 365 * 86_400_000).stale).toBe(false);
    expect(checkFreshness(observed('orders-db', T0 + 5 * MIN), CONFIG, T0)).toMatchObject({ stale: false, ageMs: 0 });
  });

  it('an observedAt that does not parse is stale wherever a limit applies', () => {
    const check = checkFreshness(observed('orders-db', 'not a time'), CONFIG, T0);
    expect(check.stale).toBe(true);
    expect(check.ageMs).toBe(Number.POSITIVE_INFINITY);
  });

  it('formats ages for people', () => {
    expect(formatAge(950)).toBe('950ms');
    expect(formatAge(14 * MIN + 3000)).toBe('14m 03s');
    expect(formatAge(62 * MIN)).toBe('1h 02m');
    expect(formatAge(26 * 60 * MIN)).toBe('1d 02h');
  });
});

describe('freshness: the gate rule', () => {
  const stale = checkFreshness(observed('orders-db', T0), CONFIG, T0 + 25 * MIN);
  const fresh = checkFreshness(observed('orders-db', T0), CONFIG, T0 + 5 * MIN);

  it('an auto decision on stale data goes to review at tier 1, freshness.stale deciding, the reason first', () => {
    const d = withFreshness(auto(), stale, 'a reviewer decides whether to act on it');
    expect(d.outcome).toBe('review');
    expect(d.ruleId).toBe(FRESHNESS_STALE);
    expect(d.tier).toBe(1);
    expect(d.reasons).toHaveLength(1);
    expect(d.reasons[0]).toBe(
      "stale data: the observation from 'orders-db' (observed 2025-01-01T12:00:00.000Z) is 25m 00s old at 2025-01-01T12:25:00.000Z, above its limit 10m 00s; a reviewer decides whether to act on it",
    );
    expect(d.rules.at(-1)).toEqual({ ruleId: FRESHNESS_STALE, result: 'review', tier: 1, detail: d.reasons[0] });
    expect(flagsStale(d)).toBe(true);
  });

  it('a review keeps its tier and its reasons, behind the staleness', () => {
    const d = withFreshness(review(2), stale);
    expect(d).toMatchObject({ outcome: 'review', ruleId: FRESHNESS_STALE, tier: 2 });
    expect(d.reasons).toEqual([expect.stringMatching(/^stale data/), 'stub gate: review at tier 2']);
  });

  it('a deny stays a deny, with the finding recorded', () => {
    const d = withFreshness(deny(), stale);
    expect(d).toMatchObject({ outcome: 'deny', ruleId: 'stub-deny', tier: 0, reasons: ['stub gate: denied'] });
    expect(flagsStale(d)).toBe(true);
  });

  it('fresh data changes nothing but adds a passing freshness.fresh rule', () => {
    const d = withFreshness(auto(), fresh);
    expect(d).toMatchObject({ outcome: 'auto', ruleId: 'stub-auto', reasons: ['stub gate: auto'] });
    expect(d.rules.at(-1)).toEqual({
      ruleId: FRESHNESS_FRESH,
      result: 'pass',
      detail: "data from 'orders-db' is 5m 00s old (limit 10m 00s)",
    });
    expect(flagsStale(d)).toBe(false);
  });

  it('on a real policy decision: the stale rule sits beside every other rule', async () => {
    const refunds = await loadModel('models/refunds');
    const plan = refunds.validatePlan({
      ...mkPlan('p'),
      actions: [{ type: 'declineRefund', args: { orderId: 'ORD-00000001', reason: 'outside the return window' } }],
    });
    const base = evaluateGate(plan, mkObservation(), refunds.config);
    const d = withFreshness(
      base,
      checkFreshness(observed('shop-orders', T0), refunds.config.freshness, T0 + 25 * 3600_000),
    );
    expect(d.outcome).toBe('review');
    expect(d.rules.map((r) => r.ruleId)).toEqual([...base.rules.map((r) => r.ruleId), FRESHNESS_STALE]);
    expect(d.policyVersion).toBe(refunds.config.policy.version);
  });
});

describe('freshness: model.json', () => {
  const minimal = {
    name: 'm',
    version: '1',
    description: 'd',
    actions: { a: { description: 'a', risk: 0, compensation: null } },
    policy: {
      version: 'p',
      allowedActions: ['a'],
      minAutoConfidence: 0.5,
      maxAutoRisk: 0.5,
      tierRiskBounds: [1],
      onExpiry: { fallback: 'deny' },
    },
    review: { tiers: [{ name: 't', queue: 'q', roles: ['r'], ackMs: 1, resolveMs: 2, priority: 1 }], leaseMs: 1 },
    roles: { r: { description: 'r' } },
  };

  it('a model without a freshness block stays valid: no limits, review on stale, 2 re-perceptions', () => {
    const cfg = ModelConfig.parse(minimal);
    expect(cfg.freshness).toEqual({ sources: {}, onStale: 'review', maxReperceives: 2 });
    expect(cfg.retention).toBeUndefined();
  });

  it('bad values are refused with the field named', () => {
    const bad = (freshness: unknown) => () => parseContract(ModelConfig, { ...minimal, freshness }, 'model.json');
    expect(bad({ onStale: 'ignore' })).toThrow(ContractError);
    expect(bad({ onStale: 'ignore' })).toThrow(/freshness\.onStale/);
    expect(bad({ sources: { db: { maxAgeMs: -1 } } })).toThrow(/freshness\.sources\.db\.maxAgeMs/);
    expect(() => parseContract(ModelConfig, { ...minimal, retention: { keepDays: 0 } }, 'model.json')).toThrow(
      /retention\.keepDays/,
    );
  });

  it('both shipped models declare limits for the sources their perceivers stamp', async () => {
    const refunds = await loadModel('models/refunds');
    const incidents = await loadModel('models/incidents');
    expect(refunds.config.freshness.sources['shop-orders']?.maxAgeMs).toBe(86_400_000);
    expect(refunds.config.freshness.onStale).toBe('review');
    expect(incidents.config.freshness.sources.alertmanager?.maxAgeMs).toBe(900_000);
    expect(incidents.config.freshness.onStale).toBe('reperceive');
    expect(refunds.config.retention?.keepDays).toBe(365);
    expect(incidents.config.retention?.keepDays).toBe(90);
  });
});
