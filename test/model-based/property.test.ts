/**
 * Property-based sequences (issue 22, item 3): random reviewer command sequences agree with the
 * reference model on the real runtime, and a disagreement is shrunk to a minimal sequence.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { generateSuite, ReferenceCase, runProperty } from '../../src/testing/index.ts';
import { REPO } from './support.ts';

describe('random command sequences against the reference model', () => {
  it('access (ordered steps) agrees over 40 sequences, and the runs exercise takes, refusals, deadlines and closures', async () => {
    const g = await generateSuite(join(REPO, 'models/access'));
    const r = await runProperty(g.model, g.fixtures, { runs: 40, seed: 7 });
    expect(r.ok, `${r.counterexample?.join(' → ')}: ${r.error}`).toBe(true);
    for (const [k, n] of Object.entries(r.exercised)) expect(n, k).toBeGreaterThanOrEqual(10);
  }, 60_000);

  it('a disagreement (a reference whose lease is 1 ms longer) is shrunk to the minimal sequence: open, claim', async () => {
    class OffByOne extends ReferenceCase {
      override apply(...args: Parameters<ReferenceCase['apply']>): void {
        super.apply(...args);
        if (args[0] === 'claim' || args[0] === 'renew') this.timers = { ...this.timers, lease: this.timers.lease! + 1 };
      }
    }
    const g = await generateSuite(join(REPO, 'models/refunds'));
    const r = await runProperty(g.model, g.fixtures, { runs: 30, seed: 3, reference: OffByOne });
    expect(r.ok).toBe(false);
    expect(r.counterexample).toHaveLength(2);
    expect(r.counterexample![1]).toMatch(/^claim by /);
    expect(r.error).toMatch(/deadlines .* model\.json gives .*"lease":600001/);
  }, 60_000);
});
