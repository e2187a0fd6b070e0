/** Review integrity (edits, separation of duties, ordered steps), and guards that agree with explainCaseRejection. */
import { getShortestPaths } from 'xstate/graph';
import { describe, expect, it } from 'vitest';
import type { TierSpec } from '../../../src/contracts/review-case.ts';
import type { PlannedAction } from '../../../src/contracts/plan.ts';
import type { Reviewer } from '../../../src/contracts/reviewer-command.ts';
import { explainCaseRejection, reviewCaseMachine, type CaseEvent } from '../../../src/machines/review-case.ts';
import { T0, mkAction, mkPlan, stateIds } from '../fixtures.ts';
import { PLAN, NEW_PLAN, R, caseInput, type Command, command, Case } from './harness.ts';

// ---------------------------------------------------------------------------------------------------
// Guards and explainCaseRejection agree; coverage
// ---------------------------------------------------------------------------------------------------

const REVIEWERS = Object.values(R);
const COMMANDS: Command[] = ['claim', 'release', 'renew', 'approve', 'modify', 'reject', 'escalate'];

/** Every reachable snapshot, by a breadth-first walk over commands of every reviewer and every armed timer. */
function reachableSnapshots() {
  const at = T0 + 1;
  const paths = getShortestPaths(reviewCaseMachine, {
    input: caseInput(),
    // History grows with every renewal; leave it out so that the walk is finite.
    serializeState: (s) =>
      JSON.stringify({ value: s.value, context: { ...s.context, history: s.context.history.length > 0 } }),
    events: (s): CaseEvent[] => {
      const events: CaseEvent[] = [];
      for (const type of COMMANDS) for (const reviewer of REVIEWERS) events.push(command(type, reviewer, at));
      for (const name of ['ack', 'resolve', 'lease'] as const) {
        const dueAt = s.context.timers[name];
        if (dueAt !== undefined) events.push({ type: `timer.${name}`, dueAt, at: dueAt });
      }
      return events;
    },
  });
  return paths.map((p) => p.state);
}

describe('review case: review integrity (edits, separation of duties, ordered steps)', () => {
  const edit = (reviewer: Reviewer, actions: PlannedAction[], at = T0 + 9_000): CaseEvent => ({
    type: 'modify',
    reviewer,
    actions,
    comment: 'edit',
    at,
  });

  it('the requester may not escalate their own case, queued or by any other path (separation-of-duties)', () => {
    const c = new Case();
    c.cannot('escalate', R.alice, 'separation-of-duties', true);
    c.do('claim', R.bob);
    c.cannot('escalate', R.alice, 'separation-of-duties', true);
  });

  it('an edit may change arguments only: another action type, a dropped or an added action are refused (planner-fields)', () => {
    const c = new Case().do('claim', R.bob);
    c.refuse(edit(R.bob, [mkAction('payout', { amount: 20 })]), 'planner-fields', false);
    c.refuse(edit(R.bob, []), 'planner-fields', false);
    c.refuse(
      edit(R.bob, [mkAction('refund', { amount: 20 }), mkAction('refund', { amount: 1 })]),
      'planner-fields',
      false,
    );
  });

  it('an edit that changes nothing is refused (no-change): approve instead', () => {
    const c = new Case().do('claim', R.bob);
    c.refuse(edit(R.bob, PLAN.actions), 'no-change', false);
  });

  it('the planner’s rationale, confidence and risk survive every edit; the edit is a diff with its author', () => {
    const c = new Case({ tier: 3 }).do('claim', R.erin).do('modify', R.erin, T0 + 2_000);
    expect(c.ctx.plan.rationale).toBe(PLAN.rationale);
    expect(c.ctx.plan.confidence).toBe(PLAN.confidence);
    expect(c.ctx.plan.risk).toEqual(PLAN.risk);
    expect(c.ctx.proposedPlan).toEqual(PLAN);
    expect(c.ctx.edits.map((e) => [e.by, e.diff])).toEqual([
      ['erin', [{ path: 'actions.0.args.amount', from: 50, to: 20 }]],
    ]);
  });

  it('an edit after an edit discards the first editor’s approval too; decidedBy names only approvers of the plan that runs', () => {
    const again = mkPlan('plan-1', [mkAction('refund', { amount: 5 })]);
    const c = new Case({ tier: 3 }).do('claim', R.erin).do('modify', R.erin).do('claim', R.frank);
    c.send(edit(R.frank, again.actions, c.tick()));
    expect(c.state).toBe('queued');
    expect(c.ctx.approvals).toEqual(['frank']);
    expect(c.ctx.edits.at(-1)?.discardedApprovals).toEqual(['erin']);
    c.do('claim', R.erin).do('approve', R.erin);
    expect(c.ctx.resolution).toMatchObject({ outcome: 'modified', plan: again, decidedBy: ['frank', 'erin'] });
    expect(c.ctx.resolution?.edits?.map((e) => e.by)).toEqual(['erin', 'frank']);
  });

  describe('ordered steps: a manager, then security', () => {
    const ORDERED: TierSpec[] = [
      {
        name: 'production access',
        queue: 'q-access',
        roles: ['manager', 'security'],
        ackMs: 60_000,
        resolveMs: 300_000,
        priority: 1,
        fourEyes: false,
        steps: [
          { name: 'manager', roles: ['manager'] },
          { name: 'security', roles: ['security'] },
        ],
      },
    ];
    const P = {
      mia: { id: 'mia', roles: ['manager'] },
      sam: { id: 'sam', roles: ['security'] },
      sue: { id: 'sue', roles: ['security'] },
      both: { id: 'both', roles: ['manager', 'security'] },
    } satisfies Record<string, Reviewer>;
    const ordered = () => new Case({ tiers: ORDERED, tier: 1 });

    it('security may not act before the manager (step-role); the manager’s approval hands the case to security', () => {
      const c = ordered();
      c.cannot('claim', P.sam, 'step-role', true);
      c.do('claim', P.mia).do('approve', P.mia);
      expect(c.state).toBe('queued');
      expect(c.ctx.approvals).toEqual(['mia']);
      c.cannot('claim', P.mia, 'step-role', true);
      c.do('claim', P.sam).do('approve', P.sam);
      expect(c.ctx.resolution).toMatchObject({ outcome: 'approved', decidedBy: ['mia', 'sam'] });
    });

    it('one person holding both roles approves one step only (separation of duties across steps)', () => {
      const c = ordered().do('claim', P.both).do('approve', P.both);
      c.cannot('claim', P.both, 'four-eyes', true);
      c.do('claim', P.sue).do('approve', P.sue);
      expect(c.ctx.resolution?.decidedBy).toEqual(['both', 'sue']);
    });

    it('an edit by security sends the edited plan back to the manager', () => {
      const c = ordered().do('claim', P.mia).do('approve', P.mia).do('claim', P.sam).do('modify', P.sam);
      expect(c.state).toBe('queued');
      expect(c.ctx.approvals).toEqual([]);
      expect(c.ctx.edits.at(-1)?.discardedApprovals).toEqual(['mia']);
      c.cannot('claim', P.sue, 'step-role', true);
      c.do('claim', P.mia).do('approve', P.mia).do('claim', P.sam).do('approve', P.sam);
      expect(c.ctx.resolution).toMatchObject({ outcome: 'modified', decidedBy: ['mia', 'sam'], plan: NEW_PLAN });
    });

    it('an edit by the manager counts as the manager’s approval', () => {
      const c = ordered().do('claim', P.mia).do('modify', P.mia);
      expect(c.ctx.approvals).toEqual(['mia']);
      c.do('claim', P.sam).do('approve', P.sam);
      expect(c.ctx.resolution).toMatchObject({ outcome: 'modified', decidedBy: ['mia', 'sam'] });
    });
  });
});

describe('review case: guards and explanations', () => {
  it('every reachable state is reachable and explainCaseRejection is null exactly when a command is accepted', () => {
    const snapshots = reachableSnapshots();
    expect(new Set(snapshots.map((s) => String(s.value)))).toEqual(new Set(stateIds(reviewCaseMachine)));
    let checked = 0;
    for (const s of snapshots) {
      for (const type of COMMANDS) {
        for (const reviewer of REVIEWERS) {
          const event = command(type, reviewer, T0 + 2);
          const why = explainCaseRejection(String(s.value), s.context, event);
          expect(
            why === null,
            `${String(s.value)} / tier ${s.context.tier} / ${type} by ${reviewer.id}: ${why?.rule}`,
          ).toBe(s.can(event));
          checked++;
        }
      }
    }
    expect(checked).toBeGreaterThan(1_000);
  });
});
