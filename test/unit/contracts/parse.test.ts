/** Every contract parses its valid example, and an invalid input names the exact bad field. */
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  ActionLimit,
  CaseInput,
  CaseResolution,
  ContractError,
  EPISODE_OUTCOMES,
  Envelope,
  EpisodeResult,
  GateDecision,
  ModelConfig,
  Observation,
  Plan,
  PolicyConfig,
  ReviewerCommand,
  TierSpec,
  parseContract,
} from '../../../src/contracts/index.ts';
import {
  provenance,
  observation,
  plan,
  decision,
  tier,
  caseInput,
  caseResolution,
  envelopeMsg,
  episodeResult,
  policy,
  modelConfig,
  COMMANDS,
  contractError,
  expectInvalid,
  setAt,
} from './examples.ts';

describe('valid examples parse', () => {
  const cases: [string, z.ZodType, () => unknown][] = [
    ['Envelope', Envelope, envelopeMsg],
    ['Observation', Observation, observation],
    ['Plan', Plan, plan],
    ['GateDecision', GateDecision, decision],
    ['CaseInput', CaseInput, caseInput],
    ['CaseResolution', CaseResolution, caseResolution],
    ['EpisodeResult', EpisodeResult, episodeResult],
    ['ModelConfig', ModelConfig, modelConfig],
    ['PolicyConfig', PolicyConfig, policy],
    ['TierSpec', TierSpec, tier],
  ];
  for (const [name, schema, make] of cases) {
    it(name, () => {
      const input = make();
      expect(() => parseContract(schema, input, name)).not.toThrow();
      expect(parseContract(schema, input, name)).toMatchObject(input as object);
    });
  }

  it('applies defaults without touching the input', () => {
    const input = plan() as Record<string, unknown>;
    delete input.citedInputs;
    const prov = provenance() as Record<string, unknown>;
    delete prov.transforms;
    const snapshot = structuredClone(input);
    expect(parseContract(Plan, input, 'Plan').citedInputs).toEqual([]);
    expect(input).toEqual(snapshot);
    expect(
      parseContract(Observation, { ...observation(), provenance: prov }, 'Observation').provenance.transforms,
    ).toEqual([]);
    expect(prov).not.toHaveProperty('transforms');
  });

  it('ModelConfig fills defaults for retry, reviewers, deniedActions, limits and fourEyes', () => {
    const input = modelConfig() as Record<string, unknown>;
    delete input.retry;
    delete input.reviewers;
    const pol = { ...policy() } as Record<string, unknown>;
    delete pol.deniedActions;
    delete pol.limits;
    delete pol.denyAboveRisk;
    delete pol.reviewDataClasses;
    input.policy = pol;
    const out = parseContract(ModelConfig, input, 'ModelConfig');
    expect(out.retry).toEqual({ maxAttempts: 3, backoffMs: 500, maxBackoffMs: 30_000 });
    expect(out.reviewers).toEqual([]);
    expect(out.policy.deniedActions).toEqual([]);
    expect(out.policy.limits).toEqual([]);
    expect(out.policy.denyAboveRisk).toBe(1);
    expect(out.policy.reviewDataClasses).toEqual([]);
    expect(out.review.tiers[0]!.fourEyes).toBe(false);
    expect(out.review.tiers[1]!.fourEyes).toBe(true);
  });

  it('EpisodeOutcome lists every outcome', () => {
    expect(EPISODE_OUTCOMES).toEqual([
      'autoActed',
      'approved',
      'modified',
      'rejected',
      'denied',
      'expired',
      'compensated',
      'failed',
    ]);
    for (const outcome of EPISODE_OUTCOMES) {
      expect(() => parseContract(EpisodeResult, { ...episodeResult(), outcome }, 'EpisodeResult')).not.toThrow();
    }
  });
});

describe('invalid inputs name the exact bad field', () => {
  const cases: [string, z.ZodType, () => Record<string, unknown>, string, unknown][] = [
    // [contract, schema, fixture, path, bad value (undefined = remove)]
    ['Plan', Plan, plan, 'actions.0.type', ''],
    ['Plan', Plan, plan, 'actions', []],
    ['Plan', Plan, plan, 'confidence', 1.5],
    ['Plan', Plan, plan, 'confidence', Number.NaN],
    ['Plan', Plan, plan, 'risk.score', -0.1],
    ['Plan', Plan, plan, 'risk.factors.0.value', 2],
    ['Plan', Plan, plan, 'rationale', ''],
    ['Plan', Plan, plan, 'actions.0.args', 'amount=5'],
    ['Observation', Observation, observation, 'provenance.observedAt', 'yesterday'],
    ['Observation', Observation, observation, 'provenance.observedAt', '2024-05-01'],
    ['Observation', Observation, observation, 'provenance.source', undefined],
    ['Observation', Observation, observation, 'provenance.transforms.0.at', 'later'],
    ['Observation', Observation, observation, 'classification', 'secret'],
    ['Observation', Observation, observation, 'dataClasses.1', 'top-secret'],
    ['Observation', Observation, observation, 'fields', null],
    ['GateDecision', GateDecision, decision, 'outcome', 'maybe'],
    ['GateDecision', GateDecision, decision, 'reasons', []],
    ['GateDecision', GateDecision, decision, 'tier', -1],
    ['GateDecision', GateDecision, decision, 'rules.0.result', 'auto'],
    ['GateDecision', GateDecision, decision, 'rules.0.tier', 0],
    ['CaseInput', CaseInput, caseInput, 'plan.actions.0.type', ''],
    ['CaseInput', CaseInput, caseInput, 'tiers', []],
    ['CaseInput', CaseInput, caseInput, 'tiers.0.roles', []],
    ['CaseInput', CaseInput, caseInput, 'tiers.0.ackMs', 0],
    ['CaseInput', CaseInput, caseInput, 'tier', 0],
    ['CaseInput', CaseInput, caseInput, 'observation.provenance.observedAt', 42],
    ['CaseInput', CaseInput, caseInput, 'decision.policyVersion', ''],
    ['CaseInput', CaseInput, caseInput, 'openedAt', -5],
    ['CaseInput', CaseInput, caseInput, 'leaseMs', 1.5],
    ['CaseResolution', CaseResolution, caseResolution, 'outcome', 'maybe'],
    ['CaseResolution', CaseResolution, caseResolution, 'decidedBy', 'bob'],
    ['CaseResolution', CaseResolution, caseResolution, 'plan.confidence', 'high'],
    ['EpisodeResult', EpisodeResult, episodeResult, 'outcome', 'done'],
    ['EpisodeResult', EpisodeResult, episodeResult, 'effects', undefined],
    ['Envelope', Envelope, envelopeMsg, 'schemaVersion', 2],
    ['Envelope', Envelope, envelopeMsg, 'time', 'now'],
    ['Envelope', Envelope, envelopeMsg, 'provenance.observedAt', undefined],
    ['Envelope', Envelope, envelopeMsg, 'classification', 'public-ish'],
    ['ModelConfig', ModelConfig, modelConfig, 'name', 'Refunds'],
    ['ModelConfig', ModelConfig, modelConfig, 'actions.refund.risk', 1.2],
    ['ModelConfig', ModelConfig, modelConfig, 'actions.notify.compensation', ''],
    ['ModelConfig', ModelConfig, modelConfig, 'policy.allowedActions', []],
    ['ModelConfig', ModelConfig, modelConfig, 'policy.tierRiskBounds', []],
    ['ModelConfig', ModelConfig, modelConfig, 'policy.minAutoConfidence', 2],
    ['ModelConfig', ModelConfig, modelConfig, 'policy.onExpiry.fallback', 'approve'],
    ['ModelConfig', ModelConfig, modelConfig, 'policy.onExpiry.action.type', ''],
    ['ModelConfig', ModelConfig, modelConfig, 'policy.limits.0.reviewTier', 0],
    ['ModelConfig', ModelConfig, modelConfig, 'review.tiers.1.priority', -1],
    ['ModelConfig', ModelConfig, modelConfig, 'reviewers.0.roles', []],
  ];
  for (const [contract, schema, make, path, bad] of cases) {
    it(`${contract} rejects ${JSON.stringify(bad) ?? 'missing'} at ${path}`, () => {
      expectInvalid(schema, setAt(make(), path, bad), contract, path);
    });
  }

  it('the prefix argument roots the path (plan.actions.0.type)', () => {
    const bad = setAt(plan(), 'actions.0.type', 42);
    const err = expectInvalid(Plan, bad, 'Plan', 'plan.actions.0.type', 'plan');
    expect(err.message).toContain('Plan: plan.actions.0.type:');
  });

  it('an empty path is reported as (root)', () => {
    const err = expectInvalid(Plan, 'not a plan', 'Plan', '');
    expect(err.message.startsWith('Plan: (root): ')).toBe(true);
  });

  it('lists every issue and counts the extra ones in the message', () => {
    const bad = { ...plan(), confidence: 3, rationale: '', id: '' };
    const err = contractError(() => parseContract(Plan, bad, 'Plan'));
    expect(err.issues.map((i) => i.path).sort()).toEqual(['confidence', 'id', 'rationale']);
    expect(err.message).toContain('(+2 more)');
  });

  it('an ActionLimit needs reviewAbove or denyAbove', () => {
    const err = contractError(() => parseContract(ActionLimit, { action: 'refund', arg: 'amount' }, 'ActionLimit'));
    expect(err.message).toContain('a limit needs reviewAbove or denyAbove');
  });

  it('does not mutate the input when parsing fails', () => {
    for (const [schema, input] of [
      [CaseInput, setAt(caseInput(), 'plan.actions.0.type', '')],
      [ModelConfig, setAt(modelConfig(), 'policy.tierRiskBounds', [])],
      [ReviewerCommand, setAt(COMMANDS['handoff.case.modify'](), 'actions.0.type', 7)],
      [Envelope, setAt(envelopeMsg(), 'schemaVersion', 99)],
    ] as const) {
      // Drop defaulted fields so a mutating parser would visibly add them back.
      const i = input as Record<string, unknown>;
      if ('retry' in i) delete i.retry;
      const snapshot = structuredClone(input);
      expect(() => parseContract(schema, input, 'X')).toThrow(ContractError);
      expect(input).toEqual(snapshot);
    }
  });

  it('does not mutate the input when parsing succeeds with defaults', () => {
    const input = modelConfig() as Record<string, unknown>;
    delete input.retry;
    delete input.reviewers;
    const snapshot = structuredClone(input);
    const out = parseContract(ModelConfig, input, 'ModelConfig');
    expect(input).toEqual(snapshot);
    expect(out).not.toBe(input);
  });
});
