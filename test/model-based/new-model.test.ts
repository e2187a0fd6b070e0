/**
 * Acceptance (c): a model folder a user writes gets a passing generated suite without any change to
 * the generator, and a model whose configuration makes part of a machine unreachable gets warnings
 * naming exactly what cannot happen.
 *
 * The folders are written by the test: refunds' model.json with a changed policy and tiers, and a
 * handlers.ts that re-exports the refunds handlers (the code half is unchanged).
 */
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadModel } from '../../src/models/loader.ts';
import { writeSuite, type WrittenSuite } from '../../src/testing/index.ts';
import { REPO, runVitest, tempDir, type VitestRun } from './support.ts';

type Json = Record<string, any>;

let root: string;
const suites = new Map<string, WrittenSuite>();
let run: VitestRun;

async function modelFolder(name: string, edit: (config: Json) => Json): Promise<string> {
  const base = JSON.parse(await readFile(join(REPO, 'models/refunds/model.json'), 'utf8')) as Json;
  const dir = join(root, 'models', name);
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'model.json'), `${JSON.stringify(edit({ ...base, name }), null, 2)}\n`);
  await writeFile(
    join(dir, 'handlers.ts'),
    `export { default } from ${JSON.stringify(join(REPO, 'models/refunds/handlers.ts'))};\n`,
  );
  return dir;
}

beforeAll(async () => {
  root = await tempDir('mbt-new-model');
  await writeFile(join(root, 'package.json'), '{ "type": "module" }\n');
  // Two tiers instead of three, four eyes at the second, other thresholds, deadlines, lease and retries,
  // and a safe fallback action when a review expires.
  const lite = await modelFolder('refunds-lite', (c) => ({
    ...c,
    version: '2.0.0',
    policy: {
      ...c.policy,
      version: 'refunds-lite-policy-1',
      minAutoConfidence: 0.9,
      maxAutoRisk: 0.3,
      denyAboveRisk: 0.8,
      tierRiskBounds: [0.55, 1],
      lowConfidenceTier2Below: 0.4,
      limits: [{ action: 'issueRefund', arg: 'amount', reviewAbove: 500, reviewTier: 2, denyAbove: 1500 }],
      onExpiry: {
        fallback: 'safeAction',
        action: {
          type: 'declineRefund',
          args: { orderId: 'ORD-00000000', reason: 'the review expired; a person will follow up' },
        },
      },
    },
    review: {
      tiers: [
        {
          name: 'Support lead',
          queue: 'refunds',
          roles: ['support-lead'],
          ackMs: 600_000,
          resolveMs: 1_800_000,
          priority: 1,
        },
        {
          name: 'Finance controller',
          queue: 'refunds-finance',
          roles: ['finance-controller'],
          ackMs: 1_200_000,
          resolveMs: 7_200_000,
          priority: 2,
          fourEyes: true,
        },
      ],
      leaseMs: 300_000,
    },
    retry: { maxAttempts: 2, backoffMs: 1000, maxBackoffMs: 5000 },
  }));
  // Nothing is ever denied: no risk ceiling, a review limit without a hard limit, every action allowed.
  const noDeny = await modelFolder('refunds-no-deny', (c) => ({
    ...c,
    policy: {
      ...c.policy,
      version: 'no-deny-1',
      denyAboveRisk: 1,
      deniedActions: [],
      limits: [{ action: 'issueRefund', arg: 'amount', reviewAbove: 1000, reviewTier: 2 }],
    },
  }));
  // Tier 1's band is empty and no rule asks for tier 1 otherwise: the gate never opens a case there.
  const noTier1 = await modelFolder('refunds-no-tier1', (c) => ({
    ...c,
    policy: {
      ...c.policy,
      version: 'no-tier1-1',
      maxAutoRisk: 0.4,
      tierRiskBounds: [0.4, 0.6, 1],
      minAutoConfidence: 0.8,
      lowConfidenceTier2Below: 1,
    },
  }));
  for (const [name, dir] of [
    ['refunds-lite', lite],
    ['refunds-no-deny', noDeny],
    ['refunds-no-tier1', noTier1],
  ] as const) {
    await loadModel(dir); // a valid model folder
    suites.set(name, await writeSuite(dir, join(root, 'suites', name)));
  }
  run = await runVitest(
    root,
    [...suites.keys()].map((name) => ({ name, root: join(root, 'suites', name), include: ['*.test.ts'] })),
  );
}, 170_000);

afterAll(async () => {
  if (root) await rm(root, { recursive: true, force: true });
});

describe('a model folder the generator has never seen', () => {
  it('gets full coverage of what its configuration makes reachable', () => {
    for (const [name, s] of suites) {
      for (const c of [s.coverage.agent, s.coverage.case]) {
        expect(c.uncoveredStates, `${name} ${c.machine}`).toEqual([]);
        expect(c.uncoveredTransitions, `${name} ${c.machine}`).toEqual([]);
      }
    }
    const lite = suites.get('refunds-lite')!;
    expect(Object.keys(lite.fixtures.plans).sort()).toEqual(['auto', 'deny', 'review:1', 'review:2']);
    // An expired review falls back to the safe action, so the episode never ends 'expired': named.
    expect(lite.coverage.agent.unreachableStates).toEqual(['expired']);
    // (The freshness transitions depend on elapsed time, which the generator does not vary.)
    expect(lite.coverage.agent.unreachableTransitions).toEqual([
      'awaitingReview --case.resolved#4--> expired',
      'awaitingReview --case.resolved#5--> gating',
      'gating --always#3--> perceiving',
    ]);
    // The machines agree with the oracle (its first finding, a retried compensation reusing the failed
    // attempt's effect id, is fixed: see docs/testing.md).
    expect(lite.coverage.warnings.filter((w) => w.startsWith('oracle:'))).toEqual([]);
    expect(lite.coverage.warnings.filter((w) => !w.startsWith('oracle:'))).toEqual([
      "agent: state 'expired' is unreachable with model refunds-lite",
      "agent: transition 'awaitingReview --case.resolved#4--> expired' is unreachable with model refunds-lite",
      "agent: transition 'awaitingReview --case.resolved#5--> gating' is unreachable with model refunds-lite",
      "agent: transition 'gating --always#3--> perceiving' is unreachable with model refunds-lite",
    ]);
    expect(lite.coverage.agent.states.reachable).toBe(16);
    expect(lite.coverage.case.states.reachable).toBe(6);
    expect(lite.coverage.case.transitions.reachable).toBe(16);
  });

  it('and its generated suite passes on the real runtime', () => {
    expect(
      run.results.filter((r) => r.status !== 'passed').map((r) => `${r.project}: ${r.name}: ${r.failure}`),
      run.stderr.slice(-2000),
    ).toEqual([]);
    for (const [name, s] of suites)
      expect(run.results.filter((r) => r.file.includes(`/suites/${name}/`)).length, name).toBe(
        s.coverage.agent.paths + s.coverage.case.paths + 1,
      ); // + the property test
  });
});

describe('a model that makes part of a machine unreachable', () => {
  it('names the agent state no episode can reach (denied), and the gate branch behind it', () => {
    const w = suites.get('refunds-no-deny')!.coverage.warnings;
    expect(w).toContain("agent: state 'denied' is unreachable with model refunds-no-deny");
    expect(w).toContain("agent: transition 'gating --always#0--> denied' is unreachable with model refunds-no-deny");
    expect(w.some((x) => x.includes("never takes its 'deny' branch"))).toBe(true);
    expect(suites.get('refunds-no-deny')!.coverage.agent.unreachableStates).toEqual(['denied']);
  });

  it('names the review tier the gate never routes to (tier 1 is then reached only by escalation)', () => {
    const s = suites.get('refunds-no-tier1')!;
    expect(
      s.coverage.warnings.some((x) => x.includes("never takes its 'review:1' branch") && x.includes('Support lead')),
    ).toBe(true);
    expect(Object.keys(s.fixtures.plans)).not.toContain('review:1');
    expect(new Set(s.paths.case.paths.map((p) => p.start))).toEqual(new Set(['review:2', 'review:3']));
    // Cases open at tier 2 at the lowest, so escalating out of tier 1 cannot happen either.
    expect(s.coverage.case.branches.names.some((b) => b.startsWith('escalated out of tier 1'))).toBe(false);
  });
});
