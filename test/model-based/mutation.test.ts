/**
 * Acceptance (b): the generated suites catch bugs. Suites are generated once, from the ORIGINAL
 * machines, for both shipped models; then they run against each mutant of `mutants.ts` (a dropped
 * transition, an inverted guard, a removed escalation tier, a skipped compensation, ...), the mutant
 * swapped in for the real machine module with `vi.mock`, so the real runtime hosts it. A mutant is
 * killed when at least one generated test fails. Prints the mutation score.
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeSuite } from '../../src/testing/index.ts';
import { MUTANTS } from './mutants.ts';
import { REPO, runVitest, tempDir, writeMutantSetup, type VitestRun } from './support.ts';

let dir: string;
let run: VitestRun;

beforeAll(async () => {
  dir = await tempDir('mbt-mutants');
  for (const m of ['refunds', 'incidents']) await writeSuite(join(REPO, 'models', m), dir);
  const setup = await writeMutantSetup(dir);
  run = await runVitest(dir, [
    { name: 'original', include: ['*.test.ts'], setupFiles: [setup], env: { HANDOFF_MUTANT: '' } },
    ...MUTANTS.map((m) => ({ name: m.name, include: ['*.test.ts'], setupFiles: [setup], env: { HANDOFF_MUTANT: m.name } })),
  ]);
}, 175_000);

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('mutation testing of the generated suites', () => {
  it('the suites pass against the original machines', () => {
    const original = run.results.filter((r) => r.project === 'original');
    expect(original.length).toBeGreaterThan(0);
    expect(original.filter((r) => r.status !== 'passed').map((r) => `${r.name}: ${r.failure}`), run.stderr.slice(-2000)).toEqual([]);
  });

  it('every mutant is killed by a suite generated from the original machines', () => {
    const models = ['refunds', 'incidents'];
    const rows = MUTANTS.map((m) => {
      const failed = run.results.filter((r) => r.project === m.name && r.status === 'failed');
      // The test (path id) of each model's suite that caught the mutant first.
      const by = models.map((model) => {
        const f = failed.find((r) => r.name.startsWith(`${model} ·`));
        return f ? `${model} ${/ (A|C)\d+ /.exec(f.name)?.[0].trim() ?? '?'}` : null;
      });
      const first = failed[0]?.failure.replace(/^HarnessError: /, '') ?? '';
      return { mutant: m.name, kind: m.kind, killed: failed.length > 0, perModel: by, by: `${by.filter(Boolean).join(', ')}: ${first.slice(0, 160)}` };
    });
    const killed = rows.filter((r) => r.killed).length;
    const score = Math.round((killed / rows.length) * 1000) / 10;
    const perModel = models.map((model, i) => `${model} ${rows.filter((r) => r.perModel[i]).length}/${rows.length}`).join(', ');
    console.log(
      `[mutation] score ${killed}/${rows.length} = ${score}% (killed by: ${perModel}; vitest ${run.wallMs} ms)\n${rows.map((r) => `  ${r.killed ? 'killed  ' : 'SURVIVED'} ${r.kind.padEnd(22)} ${r.mutant.padEnd(34)} ${r.by}`).join('\n')}`,
    );
    expect(rows.filter((r) => !r.killed).map((r) => r.mutant)).toEqual([]);
    // Every kind of bug the issue names is among them.
    expect(new Set(MUTANTS.map((m) => m.kind))).toEqual(new Set(['drop-transition', 'invert-guard', 'remove-escalation-tier', 'skip-compensation', 'weaken-guard', 'wrong-action']));
  });
});
