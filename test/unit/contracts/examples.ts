/**
 * One valid example of every contract (each test clones what it changes), and the helpers that expect a
 * ContractError at an exact path. Used by the contracts tests in this folder.
 */
import { expect } from 'vitest';
import { z } from 'zod';
import {
  ContractError,
  SCHEMA_VERSION,
  parseContract,
  type ReviewerCommandType,
} from '../../../src/contracts/index.ts';

const NOW = '2024-05-01T12:00:00Z';
export const TRACEPARENT = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';

export const provenance = () => ({
  source: 'zendesk',
  observedAt: NOW,
  transforms: [{ name: 'normalise', at: '2024-05-01T12:00:01+02:00', by: 'ingest' }],
});

export const observation = () => ({
  id: 'obs-1',
  kind: 'ticket',
  subject: 'customer-42',
  requestedBy: 'alice',
  provenance: provenance(),
  classification: 'sensitive' as const,
  dataClasses: ['internal' as const, 'sensitive' as const],
  fields: { amount: 120, email: 'c@example.com' },
});

export const plan = () => ({
  id: 'plan-1',
  planner: 'planner-v1',
  actions: [{ type: 'refund', args: { amount: 120 }, description: 'refund the order' }],
  confidence: 0.92,
  rationale: 'duplicate charge',
  risk: { score: 0.2, factors: [{ name: 'amount', value: 0.2 }] },
  citedInputs: ['amount'],
});

export const decision = () => ({
  outcome: 'review' as const,
  ruleId: 'risk-threshold',
  reasons: ['risk 0.4 above the auto limit 0.3'],
  tier: 1,
  riskScore: 0.4,
  confidence: 0.92,
  policyVersion: 'p1',
  rules: [{ ruleId: 'risk-threshold', result: 'review' as const, detail: 'risk 0.4 above', tier: 1 }],
});

export const tier = () => ({
  name: 'L1',
  queue: 'q1',
  roles: ['agent'],
  ackMs: 60_000,
  resolveMs: 600_000,
  priority: 1,
});

export const caseInput = () => ({
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

export const caseResolution = () => ({
  caseId: 'case-1',
  outcome: 'approved' as const,
  plan: plan(),
  tier: 1,
  decidedBy: ['bob'],
  reason: 'looks right',
  at: 1_714_564_900_000,
});

export const envelopeMsg = () => ({
  id: 'msg-1',
  type: 'handoff.case.claim',
  schemaVersion: SCHEMA_VERSION,
  time: NOW,
  traceparent: TRACEPARENT,
  provenance: provenance(),
  classification: 'internal' as const,
  data: { anything: true },
});

export const episodeResult = () => ({
  episodeId: 'ep-1',
  model: 'refunds',
  outcome: 'autoActed' as const,
  reason: 'every rule passed',
  effects: ['refund:ep-1:0'],
  caseIds: [],
});

export const policy = () => ({
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

export const modelConfig = () => ({
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

export const COMMANDS: Record<ReviewerCommandType, () => Record<string, unknown>> = {
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
export function contractError(fn: () => unknown): ContractError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ContractError);
    return err as ContractError;
  }
  throw new Error('expected a ContractError, but parsing succeeded');
}

/** Parses `input` with `schema` as `contract`, expects failure at exactly `path`, returns the error. */
export function expectInvalid(
  schema: z.ZodType,
  input: unknown,
  contract: string,
  path: string,
  prefix = '',
): ContractError {
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
export function setAt(obj: Record<string, unknown>, path: string, value: unknown): Record<string, unknown> {
  const parts = path.split('.');
  let node: Record<string, unknown> = obj;
  for (const p of parts.slice(0, -1)) node = node[p] as Record<string, unknown>;
  const last = parts[parts.length - 1]!;
  if (value === undefined) delete node[last];
  else node[last] = value;
  return obj;
}
