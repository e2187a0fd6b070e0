/**
 * Acceptance (a): suites generated for both shipped models cover 100% of the reachable states and
 * transitions of the agent and review-case machines, are byte-identical when regenerated, and pass
 * on the real runtime, both plainly and with the runtime restarted from its store before every step.
 */
import { execFile } from 'node:child_process';
import { readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeSuite, type WrittenSuite } from '../../src/testing/index.ts';
import { REPO, runVitest, tempDir, type VitestRun } from './support.ts';

const MODELS = ['refunds', 'incidents', 'access'];
/** The models whose three tiers and sagas the path checks below name. */
const SHIPPED = ['refunds', 'incidents'];
const dirs: string[] = [];
const suites = new Map<string, WrittenSuite>();
let plain: string;
let crash: string;
let run: VitestRun;
let cliSummary: {
  ok: boolean;
  tests: number;
  coverage: Record<string, { states: { percent: number }; transitions: { percent: number } }>;
};
const timings: Record<string, number> = {};

beforeAll(async () => {
  plain = await tempDir('mbt-plain');
  crash = await tempDir('mbt-crash');
  dirs.push(plain, crash);
  let t = performance.now();
  for (const m of MODELS) suites.set(m, await writeSuite(join(REPO, 'models', m), plain));
  timings.generateMs = Math.round(performance.now() - t);
  // The crash-each-step suites through the CLI, as QA would run it.
  t = performance.now();
  for (const m of MODELS) {
    const { stdout } = await promisify(execFile)(
      process.execPath,
      [join(REPO, 'bin/handoff.js'), 'testgen', join('models', m), '--out', crash, '--crash-each-step', '--json'],
      { cwd: REPO },
    );
    if (m === 'refunds') cliSummary = JSON.parse(stdout) as typeof cliSummary;
  }
  timings.cliGenerateMs = Math.round(performance.now() - t);
  run = await runVitest(plain, [
    { name: 'plain', root: plain, include: ['*.test.ts'] },
    { name: 'crash', root: crash, include: ['*.test.ts'] },
  ]);
}, 170_000);

afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

describe('generated suites of the shipped models', () => {
  for (const m of MODELS) {
    it(`${m}: 100% of reachable states and transitions, every refusal rule, unreachable ones named`, () => {
      const cov = suites.get(m)!.coverage;
      for (const machine of [cov.agent, cov.case]) {
        expect(machine.uncoveredStates, `${m} ${machine.machine}`).toEqual([]);
        expect(machine.uncoveredTransitions, `${m} ${machine.machine}`).toEqual([]);
        expect(machine.states.percent).toBe(100);
        expect(machine.transitions.percent).toBe(100);
        expect(machine.states.covered).toBe(machine.states.reachable);
        expect(machine.transitions.covered).toBe(machine.transitions.reachable);
        for (const s of machine.unreachableStates)
          expect(cov.warnings.join('\n')).toContain(`state '${s}' is unreachable`);
        for (const t of machine.unreachableTransitions)
          expect(cov.warnings.join('\n')).toContain(`transition '${t}' is unreachable`);
      }
      expect(cov.case.refusals!.covered).toBe(cov.case.refusals!.reachable);
      // Every review tier is reached by the gate, and a case opens at each of them.
      const tiers = m === 'access' ? ['review:1', 'review:2'] : ['review:1', 'review:2', 'review:3'];
      expect(Object.keys(suites.get(m)!.fixtures.plans).sort()).toEqual(['auto', 'deny', ...tiers]);
      expect(new Set(suites.get(m)!.paths.case.paths.map((p) => p.start))).toEqual(new Set(tiers));
    });
  }

  it('names what the models make unreachable: the refunds expiry fallback never acts, incidents reviews never end "expired"', () => {
    // The freshness transitions depend on how much time passes, which the generator does not vary
    // (test/unit/agent-machine.test.ts and freshness.property.test.ts cover them).
    expect(suites.get('refunds')!.coverage.agent.unreachableTransitions).toEqual([
      'awaitingReview --case.resolved#3--> acting',
      'awaitingReview --case.resolved#5--> gating',
      'gating --always#3--> perceiving',
    ]);
    expect(suites.get('refunds')!.coverage.agent.unreachableStates).toEqual([]);
    expect(suites.get('incidents')!.coverage.agent.unreachableStates).toEqual(['expired']);
    expect(suites.get('incidents')!.coverage.case.unreachableStates).toEqual([]);
  });

  it('paths walk every escalation tier, expiry, lease expiry, four eyes and compensation', () => {
    for (const m of SHIPPED) {
      const all = [...suites.get(m)!.paths.agent.paths, ...suites.get(m)!.paths.case.paths];
      const transitions = new Set([
        ...suites.get(m)!.coverage.agent.coveredTransitions,
        ...suites.get(m)!.coverage.case.coveredTransitions,
      ]);
      for (const t of [
        'queued --timer.ack#0--> queued', // ack deadline: escalation
        '(root) --timer.resolve#0--> queued', // resolve deadline: escalation
        'queued --timer.ack#1--> expired', // past the last tier
        '(root) --timer.resolve#1--> expired',
        'claimed --timer.lease#0--> queued', // lease expiry
        'claimed --approve#0--> queued', // first of two approvals (four eyes)
        'claimed --modify#0--> modified', // an edit on a one-approval tier is that approval
        'claimed --modify#1--> queued', // an edit on a four-eyes tier restarts the approvals
        'compensating --compensation.done#0--> compensating', // saga: several steps undone
        'compensating --compensation.failed#1--> awaitingOperator',
      ])
        expect(transitions, `${m}: ${t}`).toContain(t);
      // A missed deadline escalates out of every tier but the last, where the case expires.
      const escalatedFrom = new Set<number>();
      const expiredAt = new Set<number>();
      for (const p of all) {
        let tier = p.initial.tier;
        for (const s of p.steps) {
          if (s.action.do === 'timer' && tier !== undefined && s.expect.tier !== undefined && s.expect.tier > tier)
            escalatedFrom.add(tier);
          if (s.action.do === 'timer' && s.expect.state === 'expired' && s.expect.tier !== undefined)
            expiredAt.add(s.expect.tier);
          tier = s.expect.tier ?? tier;
        }
      }
      expect([...escalatedFrom].sort(), m).toEqual([1, 2]);
      expect([...expiredAt], m).toEqual([3]);
      // Four eyes after a modification: an approval, then another reviewer's edit, which discards it.
      const fourEyesAfterModify = all.some((p) => {
        let approvedBy: string | null = null;
        return p.steps.some((s) => {
          if (s.action.do === 'approve' && s.expect.state === 'queued') approvedBy = s.action.by;
          return (
            s.action.do === 'modify' &&
            approvedBy !== null &&
            s.action.by !== approvedBy &&
            s.expect.state === 'queued' &&
            JSON.stringify(s.expect.approvals) === JSON.stringify([s.action.by])
          );
        });
      });
      expect(fourEyesAfterModify, `${m}: a path where an edit after a first approval discards it`).toBe(true);
      // The requester may not escalate their own case (separation of duties), asserted as a refusal.
      const refusals = all.flatMap((p) =>
        p.steps.filter((s) => s.action.do === 'escalate' && s.expect.refused?.rule === 'separation-of-duties'),
      );
      expect(refusals.length, `${m}: escalate by the requester refused`).toBeGreaterThan(0);
    }
  });

  it('access (written from docs/authoring.md): manager then security in order, the requester never approves, revocation compensates', () => {
    const s = suites.get('access')!;
    const all = [...s.paths.agent.paths, ...s.paths.case.paths];
    const transitions = new Set([...s.coverage.agent.coveredTransitions, ...s.coverage.case.coveredTransitions]);
    for (const t of [
      'claimed --approve#0--> queued',
      'queued --timer.ack#0--> queued',
      'queued --timer.ack#1--> expired',
      'compensating --compensation.done#1--> compensated',
    ])
      expect(transitions, t).toContain(t);
    // The first approval is the manager's, the second security's; security may not take the first.
    const ordered = s.paths.case.paths.some((p) => {
      const approvals = p.steps
        .filter((st) => st.action.do === 'approve' && !st.expect.refused)
        .map((st) => (st.action as { by: string }).by);
      return approvals.length === 2 && approvals[0]!.startsWith('m-') && approvals[1]!.startsWith('s-');
    });
    expect(ordered, 'a path approved by a manager, then by security').toBe(true);
    const refused = all
      .flatMap((p) => p.steps.filter((st) => st.expect.refused))
      .map((st) => `${st.action.do} ${st.expect.refused!.rule}`);
    expect(refused).toContain('claim step-role');
    expect(refused).toContain('claim separation-of-duties');
    // Revocation is the compensation of a grant: its key lands in the ledger.
    expect(s.paths.agent.paths.some((p) => p.steps.some((st) => st.expect.ledger?.includes('0/compensate')))).toBe(
      true,
    );
    expect(s.coverage.warnings.filter((w) => w.startsWith('oracle:') && !w.includes("'compensation.failed'"))).toEqual(
      [],
    );
  });

  it('readable: business titles, stable ids, lines under 120 characters, coverage.json maps everything to its tests', async () => {
    for (const f of (await readdir(plain)).filter((x) => x.endsWith('.test.ts'))) {
      const text = await readFile(join(plain, f), 'utf8');
      const long = text.split('\n').filter((l) => l.length >= 120);
      expect(long, f).toEqual([]);
    }
    const cov = JSON.parse(await readFile(join(plain, 'coverage.json'), 'utf8')) as {
      models: Record<
        string,
        {
          agent: { tests: Record<string, string[]>; coveredTransitions: string[] };
          case: { tests: Record<string, string[]>; coveredTransitions: string[] };
        }
      >;
    };
    for (const m of MODELS) {
      const s = suites.get(m)!;
      const ids = new Set([...s.paths.agent.paths, ...s.paths.case.paths].map((p) => p.id));
      expect(ids.size, `${m}: ids are unique`).toBe(s.paths.agent.paths.length + s.paths.case.paths.length);
      for (const k of ['agent', 'case'] as const) {
        const tests = cov.models[m]![k].tests;
        for (const t of cov.models[m]![k].coveredTransitions)
          expect(tests[`transition ${t}`]?.length, `${m} ${k}: ${t}`).toBeGreaterThan(0);
        for (const list of Object.values(tests)) for (const id of list) expect(ids.has(id), `${m}: ${id}`).toBe(true);
      }
      expect(Object.keys(cov.models[m]!.agent.tests).some((k) => k.startsWith('gate confidence'))).toBe(true);
      expect(Object.keys(cov.models[m]!.case.tests).some((k) => k.startsWith('refusal '))).toBe(true);
    }
    // The example reads as a title: an acknowledge deadline missed, the next tier, two approvers.
    const titles = (await readFile(join(plain, 'refunds.case.test.ts'), 'utf8'))
      .split('\n')
      .filter((l) => l.startsWith('  it('));
    expect(titles.some((t) => /tier \d ack missed → tier \d/.test(t))).toBe(true);
    expect(titles.some((t) => t.includes('approved by two'))).toBe(true);
  });

  it('regenerating gives byte-identical files', async () => {
    const again = await tempDir('mbt-again');
    dirs.push(again);
    for (const m of MODELS) await writeSuite(join(REPO, 'models', m), again);
    const names = (await readdir(plain))
      .filter((f) => f.endsWith('.ts') || f.endsWith('.json'))
      .filter((f) => !f.startsWith('vitest'));
    expect(names.sort()).toEqual((await readdir(again)).sort());
    for (const f of names)
      expect(await readFile(join(again, f), 'utf8'), f).toBe(await readFile(join(plain, f), 'utf8'));
  });

  it('`handoff testgen --json` prints the coverage summary', () => {
    expect(cliSummary.ok).toBe(true);
    expect(cliSummary.tests).toBe(
      suites.get('refunds')!.coverage.agent.paths + suites.get('refunds')!.coverage.case.paths,
    );
    expect(cliSummary.coverage.agent!.transitions.percent).toBe(100);
    expect(cliSummary.coverage.case!.states.percent).toBe(100);
  });

  it('the suites pass on the real runtime, plainly and restarting it before every step', () => {
    const failed = run.results.filter((r) => r.status !== 'passed');
    expect(
      failed.map((f) => `${f.project}: ${f.name}: ${f.failure}`),
      run.stderr.slice(-2000),
    ).toEqual([]);
    const expected = [...suites.values()].reduce((n, s) => n + s.coverage.agent.paths + s.coverage.case.paths, 0);
    const byProject = (p: string) => run.results.filter((r) => r.file.startsWith(p === 'plain' ? plain : crash)).length;
    // Plain suites also carry the property test (random command sequences against the reference model).
    expect(byProject('plain')).toBe(expected + MODELS.length);
    expect(byProject('crash')).toBe(expected);
    expect(run.results.filter((r) => r.name.includes('agree with the reference model')).length).toBe(MODELS.length);
    const report = MODELS.map((m) => {
      const c = suites.get(m)!.coverage;
      return `${m}: agent ${c.agent.paths} paths, states ${c.agent.states.covered}/${c.agent.states.reachable}, transitions ${c.agent.transitions.covered}/${c.agent.transitions.reachable}; case ${c.case.paths} paths, states ${c.case.states.covered}/${c.case.states.reachable}, transitions ${c.case.transitions.covered}/${c.case.transitions.reachable}, refusals ${c.case.refusals!.covered}/${c.case.refusals!.reachable}`;
    });
    console.log(
      `[model-based] ${report.join(' | ')} | ${expected} tests ×2 ran in ${run.wallMs} ms (generate ${timings.generateMs} ms, CLI crash suites ${timings.cliGenerateMs} ms)`,
    );
  });
});
