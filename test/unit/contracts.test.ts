import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  ActionLimit,
  CaseInput,
  CaseResolution,
  CONTRACTS,
  ContractError,
  EPISODE_OUTCOMES,
  Envelope,
  EpisodeResult,
  GateDecision,
  HandoffError,
  ModelConfig,
  Observation,
  Plan,
  PolicyConfig,
  ReviewerCommand,
  SCHEMA_VERSION,
  TierSpec,
  Traceparent,
  classify,
  envelope,
  exportJsonSchemas,
  fromWireError,
  maskPaths,
  parseContract,
  sensitive,
  sensitivePaths,
  toWireError,
  type ReviewerCommandType,
} from '../../src/contracts/index.ts';

// ---------------------------------------------------------------------------------------------------
// Fixtures: one valid example of every contract. Each test clones what it changes.
// ---------------------------------------------------------------------------------------------------

const NOW = '2024-05-01T12:00:00Z';
const TRACEPARENT = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';

const provenance = () => ({
  source: 'zendesk',
  observedAt: NOW,
  transforms: [{ name: 'normalise', at: '2024-05-01T12:00:01+02:00', by: 'ingest' }],
});

const observation = () => ({
  id: 'obs-1',
  kind: 'ticket',
  subject: 'customer-42',
  requestedBy: 'alice',
  provenance: provenance(),
  classification: 'sensitive' as const,
  dataClasses: ['internal' as const, 'sensitive' as const],
  fields: { amount: 120, email: 'c@example.com' },
});

const plan = () => ({
  id: 'plan-1',
  planner: 'planner-v1',
  actions: [{ type: 'refund', args: { amount: 120 }, description: 'refund the order' }],
  confidence: 0.92,
  rationale: 'duplicate charge',
  risk: { score: 0.2, factors: [{ name: 'amount', value: 0.2 }] },
  citedInputs: ['amount'],
});

const decision = () => ({
  outcome: 'review' as const,
  ruleId: 'risk-threshold',
  reasons: ['risk 0.4 above the auto limit 0.3'],
  tier: 1,
  riskScore: 0.4,
  confidence: 0.92,
  policyVersion: 'p1',
  rules: [{ ruleId: 'risk-threshold', result: 'review' as const, detail: 'risk 0.4 above', tier: 1 }],
});

const tier = () => ({ name: 'L1', queue: 'q1', roles: ['agent'], ackMs: 60_000, resolveMs: 600_000, priority: 1 });

const caseInput = () => ({
  caseId: 'case-1',
  episodeId: 'ep-1',
  model: 'refunds',
  tier: 1,
  tiers: [tier()],
  leaseMs: 30_000,
  requestedBy: 'alice',
  plan: plan(),
  decision: decision(),
  observation: observation(),
  openedAt: 1_714_564_800_000,
});

const caseResolution = () => ({
  caseId: 'case-1',
  outcome: 'approved' as const,
  plan: plan(),
  tier: 1,
  decidedBy: ['bob'],
  reason: 'looks right',
  at: 1_714_564_900_000,
});

const envelopeMsg = () => ({
  id: 'msg-1',
  type: 'handoff.case.claim',
  schemaVersion: SCHEMA_VERSION,
  time: NOW,
  traceparent: TRACEPARENT,
  provenance: provenance(),
  classification: 'internal' as const,
  data: { anything: true },
});

const episodeResult = () => ({
  episodeId: 'ep-1',
  model: 'refunds',
  outcome: 'autoActed' as const,
  reason: 'every rule passed',
  effects: ['refund:ep-1:0'],
  caseIds: [],
});

const policy = () => ({
  version: 'p1',
  allowedActions: ['refund', 'notify'],
  deniedActions: ['wipe'],
  minAutoConfidence: 0.8,
  maxAutoRisk: 0.3,
  denyAboveRisk: 0.9,
  tierRiskBounds: [0.5, 1],
  reviewDataClasses: ['sensitive'],
  lowConfidenceTier2Below: 0.5,
  limits: [{ action: 'refund', arg: 'amount', reviewAbove: 100, reviewTier: 1, denyAbove: 1000 }],
  onExpiry: { fallback: 'safeAction', action: { type: 'notify', args: { to: 'customer' } } },
});

const modelConfig = () => ({
  name: 'refunds',
  version: '1.0.0',
  description: 'Refunds for duplicate charges',
  actions: {
    refund: { description: 'refund money', risk: 0.2, compensation: 'reverse-refund' },
    notify: { description: 'send a message', risk: 0, compensation: null },
  },
  policy: policy(),
  review: { tiers: [tier(), { ...tier(), name: 'L2', queue: 'q2', roles: ['lead'], fourEyes: true }], leaseMs: 30_000 },
  roles: { agent: { description: 'first line' }, lead: { description: 'second line' } },
  reviewers: [{ id: 'bob', name: 'Bob', roles: ['agent'] }],
});

const commandBase = () => ({
  schemaVersion: SCHEMA_VERSION,
  commandId: 'cmd-1',
  caseId: 'case-1',
  reviewer: { id: 'bob', roles: ['agent'] },
  expectedVersion: 3,
});

const COMMANDS: Record<ReviewerCommandType, () => Record<string, unknown>> = {
  'handoff.case.claim': () => ({ type: 'handoff.case.claim', ...commandBase() }),
  'handoff.case.release': () => ({ type: 'handoff.case.release', ...commandBase(), reason: 'lunch' }),
  'handoff.case.renew': () => ({ type: 'handoff.case.renew', ...commandBase() }),
  'handoff.case.approve': () => ({ type: 'handoff.case.approve', ...commandBase(), comment: 'ok' }),
  'handoff.case.modify': () => ({
    type: 'handoff.case.modify',
    ...commandBase(),
    actions: plan().actions.map((a) => ({ type: a.type, args: a.args })),
    comment: 'lower amount',
  }),
  'handoff.case.reject': () => ({ type: 'handoff.case.reject', ...commandBase(), reason: 'fraud' }),
  'handoff.case.escalate': () => ({ type: 'handoff.case.escalate', ...commandBase(), reason: 'too large' }),
};

/** Runs `fn`, expects a ContractError, and returns it. */
function contractError(fn: () => unknown): ContractError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ContractError);
    return err as ContractError;
  }
  throw new Error('expected a ContractError, but parsing succeeded');
}

/** Parses `input` with `schema` as `contract`, expects failure at exactly `path`, returns the error. */
function expectInvalid(schema: z.ZodType, input: unknown, contract: string, path: string, prefix = ''): ContractError {
  const err = contractError(() => parseContract(schema, input, contract, prefix));
  expect(err.path).toBe(path);
  expect(err.code).toBe('contract.invalid');
  expect(err.message.startsWith(`${contract}: ${path || '(root)'}: `)).toBe(true);
  expect(err.issues.length).toBeGreaterThanOrEqual(1);
  expect(err.issues[0]!.path).toBe(path);
  expect(err.details).toMatchObject({ contract });
  return err;
}

/** Sets a nested value on an object given a dotted path (array indices as numbers). */
function setAt(obj: Record<string, unknown>, path: string, value: unknown): Record<string, unknown> {
  const parts = path.split('.');
  let node: Record<string, unknown> = obj;
  for (const p of parts.slice(0, -1)) node = node[p] as Record<string, unknown>;
  const last = parts[parts.length - 1]!;
  if (value === undefined) delete node[last];
  else node[last] = value;
  return obj;
}

// ---------------------------------------------------------------------------------------------------

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

describe('ReviewerCommand', () => {
  for (const [type, make] of Object.entries(COMMANDS)) {
    it(`accepts ${type}`, () => {
      const input = make();
      const out = parseContract(ReviewerCommand, input, 'ReviewerCommand');
      expect(out.type).toBe(type);
      expect(out).toMatchObject(input);
    });

    it(`${type}: wrong schemaVersion says which version this node speaks`, () => {
      const err = expectInvalid(ReviewerCommand, { ...make(), schemaVersion: 2 }, 'ReviewerCommand', 'schemaVersion');
      expect(err.message).toContain(`this node speaks ${SCHEMA_VERSION}`);
    });

    it(`${type}: reviewer.roles must be a list of names`, () => {
      expectInvalid(
        ReviewerCommand,
        { ...make(), reviewer: { id: 'bob', roles: 'agent' } },
        'ReviewerCommand',
        'reviewer.roles',
      );
      expectInvalid(
        ReviewerCommand,
        { ...make(), reviewer: { id: 'bob', roles: [''] } },
        'ReviewerCommand',
        'reviewer.roles.0',
      );
      expectInvalid(ReviewerCommand, { ...make(), reviewer: { id: '', roles: [] } }, 'ReviewerCommand', 'reviewer.id');
    });
  }

  it('the optional fields are optional', () => {
    const claim = COMMANDS['handoff.case.claim']();
    delete claim.expectedVersion;
    expect(() => parseContract(ReviewerCommand, claim, 'ReviewerCommand')).not.toThrow();
    const release = COMMANDS['handoff.case.release']();
    delete release.reason;
    expect(() => parseContract(ReviewerCommand, release, 'ReviewerCommand')).not.toThrow();
    const approve = COMMANDS['handoff.case.approve']();
    delete approve.comment;
    expect(() => parseContract(ReviewerCommand, approve, 'ReviewerCommand')).not.toThrow();
  });

  it('rejects an unknown type at `type`', () => {
    expectInvalid(
      ReviewerCommand,
      { ...COMMANDS['handoff.case.claim'](), type: 'handoff.case.delete' },
      'ReviewerCommand',
      'type',
    );
    expectInvalid(ReviewerCommand, { ...COMMANDS['handoff.case.claim'](), type: 'claim' }, 'ReviewerCommand', 'type');
    const noType = COMMANDS['handoff.case.claim']();
    delete noType.type;
    expectInvalid(ReviewerCommand, noType, 'ReviewerCommand', 'type');
  });

  it('rejects a reject without reason at `reason`', () => {
    const missing = COMMANDS['handoff.case.reject']();
    delete missing.reason;
    expectInvalid(ReviewerCommand, missing, 'ReviewerCommand', 'reason');
    const err = expectInvalid(
      ReviewerCommand,
      { ...COMMANDS['handoff.case.reject'](), reason: '' },
      'ReviewerCommand',
      'reason',
    );
    expect(err.message).toContain('a rejection needs a reason');
  });

  it('rejects an escalate without reason at `reason`', () => {
    const err = expectInvalid(
      ReviewerCommand,
      { ...COMMANDS['handoff.case.escalate'](), reason: '' },
      'ReviewerCommand',
      'reason',
    );
    expect(err.message).toContain('an escalation needs a reason');
  });

  it('rejects a modify with invalid actions at the field, and any planner field in an action (rationale, description)', () => {
    const modify = COMMANDS['handoff.case.modify'];
    expectInvalid(ReviewerCommand, setAt(modify(), 'actions', []), 'ReviewerCommand', 'actions');
    expectInvalid(ReviewerCommand, setAt(modify(), 'actions.0.type', ''), 'ReviewerCommand', 'actions.0.type');
    expectInvalid(ReviewerCommand, setAt(modify(), 'actions.0.args', 'all of it'), 'ReviewerCommand', 'actions.0.args');
    expectInvalid(
      ReviewerCommand,
      setAt(modify(), 'actions.0.description', 'Refund €15.00'),
      'ReviewerCommand',
      'actions.0',
    );
    expectInvalid(ReviewerCommand, setAt(modify(), 'actions', undefined), 'ReviewerCommand', 'actions');
  });

  it('rejects blank reasons and comments (whitespace only), and text over 4,000 characters', () => {
    for (const blank of [' ', '\t\n ', '\u00a0\u2003']) {
      expectInvalid(
        ReviewerCommand,
        { ...COMMANDS['handoff.case.reject'](), reason: blank },
        'ReviewerCommand',
        'reason',
      );
      expectInvalid(
        ReviewerCommand,
        { ...COMMANDS['handoff.case.escalate'](), reason: blank },
        'ReviewerCommand',
        'reason',
      );
      expectInvalid(
        ReviewerCommand,
        { ...COMMANDS['handoff.case.modify'](), comment: blank },
        'ReviewerCommand',
        'comment',
      );
    }
    expectInvalid(
      ReviewerCommand,
      { ...COMMANDS['handoff.case.reject'](), reason: 'x'.repeat(4001) },
      'ReviewerCommand',
      'reason',
    );
    expect(ReviewerCommand.safeParse({ ...COMMANDS['handoff.case.reject'](), reason: 'x'.repeat(4000) }).success).toBe(
      true,
    );
  });

  it('bounds command and case ids: at most 200 printable characters, no NUL, controls, spaces or bidi overrides', () => {
    for (const bad of ['x'.repeat(201), 'x'.repeat(10_000), 'a\u0000b', 'a b', 'a\nb', 'a\u202eb', 'a\u200bb']) {
      expectInvalid(
        ReviewerCommand,
        { ...COMMANDS['handoff.case.approve'](), commandId: bad },
        'ReviewerCommand',
        'commandId',
      );
      expectInvalid(
        ReviewerCommand,
        { ...COMMANDS['handoff.case.approve'](), caseId: bad },
        'ReviewerCommand',
        'caseId',
      );
    }
    expect(
      ReviewerCommand.safeParse({ ...COMMANDS['handoff.case.approve'](), commandId: 'web:r-amelie:' + 'x'.repeat(180) })
        .success,
    ).toBe(true);
  });

  it('rejects a modify without a comment', () => {
    const err = expectInvalid(
      ReviewerCommand,
      { ...COMMANDS['handoff.case.modify'](), comment: '' },
      'ReviewerCommand',
      'comment',
    );
    expect(err.message).toContain('say why the plan was changed');
  });

  it('rejects a bad expectedVersion and missing ids', () => {
    expectInvalid(
      ReviewerCommand,
      { ...COMMANDS['handoff.case.approve'](), expectedVersion: -1 },
      'ReviewerCommand',
      'expectedVersion',
    );
    expectInvalid(
      ReviewerCommand,
      { ...COMMANDS['handoff.case.approve'](), expectedVersion: 1.5 },
      'ReviewerCommand',
      'expectedVersion',
    );
    expectInvalid(
      ReviewerCommand,
      { ...COMMANDS['handoff.case.approve'](), commandId: '' },
      'ReviewerCommand',
      'commandId',
    );
    expectInvalid(
      ReviewerCommand,
      { ...COMMANDS['handoff.case.approve'](), caseId: undefined },
      'ReviewerCommand',
      'caseId',
    );
  });
});

describe('Envelope', () => {
  it('rejects a wrong schemaVersion saying which version this node speaks', () => {
    for (const v of [0, 2, '1', undefined]) {
      const err = expectInvalid(Envelope, { ...envelopeMsg(), schemaVersion: v }, 'Envelope', 'schemaVersion');
      expect(err.message).toContain(`unsupported schemaVersion (this node speaks ${SCHEMA_VERSION})`);
    }
  });

  it('requires a namespaced type', () => {
    for (const ok of ['handoff.case.claim', 'handoff.observation', 'handoff.x_y-z.1']) {
      expect(() => parseContract(Envelope, { ...envelopeMsg(), type: ok }, 'Envelope')).not.toThrow();
    }
    for (const bad of [
      'case.claim',
      'claim',
      'handoff.',
      'Handoff.case',
      'handoff.Case.Claim',
      'xhandoff.case',
      'handoff.case claim',
      '',
    ]) {
      const err = expectInvalid(Envelope, { ...envelopeMsg(), type: bad }, 'Envelope', 'type');
      expect(err.message).toContain('namespaced');
    }
  });

  it('checks the traceparent format, and the traceparent is optional', () => {
    const noTrace = envelopeMsg() as Record<string, unknown>;
    delete noTrace.traceparent;
    expect(() => parseContract(Envelope, noTrace, 'Envelope')).not.toThrow();
    for (const bad of [
      'garbage',
      '01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', // wrong version
      '00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01', // upper case
      '00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01', // trace id too short
      '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b-01', // span id too short
      '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1', // flags too short
      `${TRACEPARENT}-extra`,
    ]) {
      const err = expectInvalid(Envelope, { ...envelopeMsg(), traceparent: bad }, 'Envelope', 'traceparent');
      expect(err.message).toContain('W3C traceparent');
    }
    expect(Traceparent.safeParse(TRACEPARENT).success).toBe(true);
  });

  it('envelope(data) validates the payload under `data`', () => {
    const Claim = envelope(z.object({ caseId: z.string().min(1) }));
    expect(() => parseContract(Claim, { ...envelopeMsg(), data: { caseId: 'c1' } }, 'Claim')).not.toThrow();
    expectInvalid(Claim, { ...envelopeMsg(), data: { caseId: '' } }, 'Claim', 'data.caseId');
  });
});

describe('classification', () => {
  const Contact = z.object({ email: sensitive(z.string()), label: z.string() });
  const Schema = z.object({
    name: sensitive(z.string()),
    note: z.string(),
    optionalIban: sensitive(z.string()).optional(),
    wrappedOptional: sensitive(z.string().optional()),
    nullableDefault: sensitive(z.string()).nullable().default(null),
    confidential: classify(z.string(), 'confidential'),
    address: z.object({
      street: sensitive(z.string()),
      city: z.string(),
      geo: z.object({ lat: sensitive(z.number()) }),
    }),
    contacts: z.array(Contact),
    optionalContacts: z.array(Contact).optional(),
    phones: z.array(sensitive(z.string())),
    secretBlob: sensitive(z.object({ inner: z.string() })),
  });

  it('sensitivePaths finds top-level, nested, array and optional() fields', () => {
    const paths = sensitivePaths(Schema);
    expect(paths.sort()).toEqual(
      [
        'name',
        'optionalIban',
        'wrappedOptional',
        'nullableDefault',
        'address.street',
        'address.geo.lat',
        'contacts.*.email',
        'optionalContacts.*.email',
        'phones.*',
        'secretBlob',
      ].sort(),
    );
    // Only `sensitive` counts; other classes and plain fields are not listed.
    expect(paths).not.toContain('confidential');
    expect(paths).not.toContain('note');
    expect(paths).not.toContain('address.city');
    expect(paths).not.toContain('contacts.*.label');
    // A whole-object classification stops the descent.
    expect(paths).not.toContain('secretBlob.inner');
  });

  it('sensitivePaths honours a prefix and returns [] for unclassified schemas', () => {
    expect(sensitivePaths(Contact, 'fields')).toEqual(['fields.email']);
    expect(sensitivePaths(z.object({ a: z.string(), b: z.array(z.number()) }))).toEqual([]);
    expect(sensitivePaths(z.array(Contact))).toEqual(['*.email']);
  });

  it('classify returns the same schema', () => {
    const s = z.string();
    expect(sensitive(s)).toBe(s);
    expect(classify(s, 'internal')).toBe(s);
  });

  const value = () => ({
    name: 'Ann',
    note: 'vip',
    optionalIban: 'DE00',
    address: { street: 'Main St 1', city: 'Berlin', geo: { lat: 52.5 } },
    contacts: [
      { email: 'a@x', label: 'work' },
      { email: 'b@x', label: 'home' },
    ],
    phones: ['123', '456'],
  });

  it('maskPaths masks on a copy and leaves the original unchanged', () => {
    const original = value();
    const snapshot = structuredClone(original);
    const masked = maskPaths(original, sensitivePaths(Schema));
    expect(original).toEqual(snapshot);
    expect(masked).not.toBe(original);
    expect(masked.address).not.toBe(original.address);
    expect(masked).toEqual({
      name: '[REDACTED]',
      note: 'vip',
      optionalIban: '[REDACTED]',
      address: { street: '[REDACTED]', city: 'Berlin', geo: { lat: '[REDACTED]' } },
      contacts: [
        { email: '[REDACTED]', label: 'work' },
        { email: '[REDACTED]', label: 'home' },
      ],
      phones: ['[REDACTED]', '[REDACTED]'],
    });
    // Absent fields stay absent rather than being created.
    expect(masked).not.toHaveProperty('wrappedOptional');
    expect(masked).not.toHaveProperty('secretBlob');
  });

  it('maskPaths uses a custom mask and tolerates missing branches and primitives', () => {
    const masked = maskPaths(
      { a: { b: 'secret' }, list: null as unknown },
      ['a.b', 'list.*.x', 'missing.deep'],
      (v) => `<${String(v).length}>`,
    );
    expect(masked).toEqual({ a: { b: '<6>' }, list: null });
    expect(maskPaths('plain', ['x'])).toBe('plain');
    expect(maskPaths(null, ['x'])).toBeNull();
  });
});

describe('exportJsonSchemas', () => {
  it('returns a JSON-serialisable schema for every contract', () => {
    const schemas = exportJsonSchemas();
    expect(Object.keys(schemas).sort()).toEqual(Object.keys(CONTRACTS).sort());
    expect(Object.keys(schemas).sort()).toEqual(
      [
        'CaseInput',
        'CaseResolution',
        'Envelope',
        'EpisodeResult',
        'GateDecision',
        'ModelConfig',
        'Observation',
        'Plan',
        'ReviewerCommand',
      ].sort(),
    );
    const roundTripped = JSON.parse(JSON.stringify(schemas)) as Record<string, unknown>;
    expect(roundTripped).toEqual(schemas);
  });

  it('object schemas carry properties; the command union carries its variants', () => {
    const schemas = exportJsonSchemas() as Record<
      string,
      { type?: string; properties?: Record<string, unknown>; oneOf?: unknown[]; anyOf?: unknown[] }
    >;
    for (const name of [
      'Envelope',
      'Observation',
      'Plan',
      'GateDecision',
      'CaseInput',
      'CaseResolution',
      'EpisodeResult',
      'ModelConfig',
    ]) {
      const s = schemas[name]!;
      expect(s.type, name).toBe('object');
      expect(s.properties, name).toBeTypeOf('object');
      expect(Object.keys(s.properties!).length, name).toBeGreaterThan(0);
    }
    expect(Object.keys(schemas.Plan!.properties!)).toEqual(
      expect.arrayContaining(['id', 'planner', 'actions', 'confidence', 'rationale', 'risk', 'citedInputs']),
    );
    expect(Object.keys(schemas.Envelope!.properties!)).toEqual(
      expect.arrayContaining([
        'id',
        'type',
        'schemaVersion',
        'time',
        'traceparent',
        'provenance',
        'classification',
        'data',
      ]),
    );
    const variants = (schemas.ReviewerCommand!.oneOf ?? schemas.ReviewerCommand!.anyOf) as {
      properties: Record<string, unknown>;
    }[];
    expect(variants).toHaveLength(7);
    for (const v of variants) expect(v.properties).toHaveProperty('type');
  });
});

describe('wire errors', () => {
  it('toWireError / fromWireError keep code and message of a ContractError', () => {
    const err = contractError(() => parseContract(Plan, { ...plan(), confidence: 9 }, 'Plan'));
    const wire = toWireError(err);
    expect(wire.code).toBe('contract.invalid');
    expect(wire.message).toBe(err.message);
    const json = JSON.parse(JSON.stringify(wire)) as typeof wire;
    const back = fromWireError(json);
    expect(back).toBeInstanceOf(HandoffError);
    expect(back.code).toBe(err.code);
    expect(back.message).toBe(err.message);
    expect(back.details).toEqual(JSON.parse(JSON.stringify(err.details)));
  });

  it('unknown errors become `internal`', () => {
    expect(toWireError(new Error('boom'))).toEqual({ code: 'internal', message: 'boom' });
    expect(toWireError('boom')).toEqual({ code: 'internal', message: 'boom' });
    const back = fromWireError({ code: 'internal', message: 'boom' });
    expect(back.code).toBe('internal');
    expect(back.message).toBe('boom');
    expect(back.details).toEqual({});
  });
});
