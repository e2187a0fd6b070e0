/**
 * Unit tests of the review case machine, driven event by event through `createActor`. Time exists only
 * as the `at` / `dueAt` fields of the events sent.
 *
 * The tests are in review-case-machine/, by topic; this file runs them all, in this order, then asserts
 * that together they entered every state and took every declared transition of the machine (every actor
 * is created with `cov.inspect`). Run the whole file; a `-t` filter makes those two coverage tests fail
 * by design.
 */
import './review-case-machine/open-claim-decide.ts';
import './review-case-machine/escalation.ts';
import './review-case-machine/four-eyes.ts';
import './review-case-machine/integrity-guards.ts';
import { describe, expect, it } from 'vitest';
import { reviewCaseMachine } from '../../src/machines/review-case.ts';
import { declaredTransitions, stateIds } from './fixtures.ts';
import { cov } from './review-case-machine/harness.ts';

describe('review case: coverage', () => {
  it('the machine has exactly the states these tests were written for', () => {
    expect(stateIds(reviewCaseMachine)).toEqual(['approved', 'claimed', 'expired', 'modified', 'queued', 'rejected']);
  });

  it('the tests above entered every state of the machine', () => {
    expect(cov.missingStates(reviewCaseMachine)).toEqual([]);
  });

  it('the tests above took every declared transition of the machine', () => {
    expect(cov.missingTransitions(reviewCaseMachine)).toEqual([]);
    expect([...cov.transitions].filter((t) => !declaredTransitions(reviewCaseMachine).includes(t))).toEqual([]);
  });
});
