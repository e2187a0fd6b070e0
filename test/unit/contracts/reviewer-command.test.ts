/** The reviewer commands' contract: each command type, its fields and refusals. */
import { describe, expect, it } from 'vitest';
import { ReviewerCommand, SCHEMA_VERSION, parseContract } from '../../../src/contracts/index.ts';
import { COMMANDS, expectInvalid, setAt } from './examples.ts';

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
