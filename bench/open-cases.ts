/**
 * Open review cases on one node with passivation: how many a node holds, how fast they open, how
 * quickly a passivated case is rehydrated and decided, and how fast a node restarts with them.
 *
 *   node --import tsx bench/open-cases.ts [--cases 1000000] [--resident 10000] [--json]
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { loadModel } from '../src/models/loader.ts';
import { LevelStore } from '../src/runtime/level-store.ts';
import { Runtime } from '../src/runtime/runtime.ts';
import { LevelWorld } from '../src/runtime/world.ts';

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const CASES = arg('cases', 1_000_000);
const RESIDENT = arg('resident', 10_000);
const SAMPLES = arg('samples', 2000);
const json = process.argv.includes('--json');
const log = (s: string) => process.stderr.write(`${s}\n`);

const model = await loadModel('models/refunds');
const dir = await mkdtemp(join(tmpdir(), 'handoff-open-cases-'));
const quiet = pino({ level: 'silent' });
const tier = model.config.review.tiers[0]!;
const reviewer = { id: 'bench-lead', roles: tier.roles };

function caseInput(i: number, now: number) {
  const id = `bench-${i}`;
  return {
    caseId: `${id}.case-1`,
    episodeId: id,
    model: model.name,
    tier: 1,
    tiers: model.config.review.tiers,
    leaseMs: model.config.review.leaseMs,
    plan: {
      id: `${id}.plan-1`,
      planner: 'bench',
      actions: [{ type: 'declineRefund', args: { orderId: `ORD-${i}`, reason: 'outside return window' } }],
      confidence: 0.6,
      rationale: 'order delivered 95 days ago; return window is 30 days',
      risk: { score: 0.4, factors: [] },
      citedInputs: [],
    },
    decision: { outcome: 'review', ruleId: 'confidence-threshold', reasons: ['confidence 0.6 below 0.8'], tier: 1, riskScore: 0.4, confidence: 0.6, policyVersion: model.config.policy.version, rules: [] },
    observation: {
      id: `${id}.obs`,
      kind: 'refund.request',
      subject: `ORD-${i}`,
      provenance: { source: 'bench', observedAt: new Date(now).toISOString(), transforms: [] },
      classification: 'internal',
      dataClasses: ['internal'],
      fields: { orderId: `ORD-${i}` },
    },
    openedAt: now,
  };
}

const pct = (xs: number[], p: number) => xs.sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;

try {
  let store = await LevelStore.open(dir);
  let rt = await Runtime.open({ store, world: new LevelWorld(store), models: [model], logger: quiet, maxResident: RESIDENT });
  const t0 = performance.now();
  const BATCH = 2000;
  for (let i = 0; i < CASES; i += BATCH) {
    const now = Date.now();
    await Promise.all(Array.from({ length: Math.min(BATCH, CASES - i) }, (_, k) => rt.openCase(caseInput(i + k, now))));
    if ((i / BATCH) % 25 === 0) log(`opened ${i + BATCH} / ${CASES} · resident ${rt.resident} · rss ${(process.memoryUsage().rss / 2 ** 20).toFixed(0)} MiB`);
  }
  await rt.whenIdle();
  const openSeconds = (performance.now() - t0) / 1000;
  global.gc?.();
  const rssMiB = process.memoryUsage().rss / 2 ** 20;
  const heapMiB = process.memoryUsage().heapUsed / 2 ** 20;
  log(`opened ${CASES} in ${openSeconds.toFixed(1)} s · resident ${rt.resident} · rss ${rssMiB.toFixed(0)} MiB`);

  // Rehydrate + decide: claim and approve cases that were passivated long ago.
  const lat: number[] = [];
  for (let k = 0; k < SAMPLES; k++) {
    const i = Math.floor((k / SAMPLES) * CASES * 0.5);
    const caseId = `bench-${i}.case-1`;
    const t = performance.now();
    await rt.command({ type: 'handoff.case.claim', schemaVersion: 1, commandId: `c-${k}`, caseId, reviewer });
    await rt.command({ type: 'handoff.case.approve', schemaVersion: 1, commandId: `a-${k}`, caseId, reviewer });
    lat.push(performance.now() - t);
  }
  await rt.whenIdle();
  const stats = { ...rt.stats };
  await rt.close();
  await store.close();

  // Recovery: restart to ready with every case still open on disk.
  const r0 = performance.now();
  store = await LevelStore.open(dir);
  rt = await Runtime.open({ store, world: new LevelWorld(store), models: [model], logger: quiet, maxResident: RESIDENT });
  const recoveryMs = performance.now() - r0;
  const probe = performance.now();
  await rt.command({ type: 'handoff.case.claim', schemaVersion: 1, commandId: 'probe', caseId: `bench-${CASES - 1}.case-1`, reviewer });
  const firstCommandMs = performance.now() - probe;
  await rt.close();
  await store.close();

  const result = {
    date: new Date().toISOString().slice(0, 10),
    machine: { cpu: cpus()[0]?.model, cores: cpus().length, node: process.version },
    openCases: CASES,
    maxResident: RESIDENT,
    casesPerSecondOpened: Math.round(CASES / openSeconds),
    rssMiB: Math.round(rssMiB),
    heapUsedMiB: Math.round(heapMiB),
    rssMiBPer100k: Math.round((rssMiB / CASES) * 100_000),
    rehydrateDecide: { samples: SAMPLES, p50Ms: +pct(lat, 50).toFixed(2), p99Ms: +pct(lat, 99).toFixed(2), note: 'claim + approve of a passivated case, both durable' },
    recovery: { readyMs: Math.round(recoveryMs), firstCommandMs: +firstCommandMs.toFixed(2) },
    runtime: { evicted: stats.evicted, rehydrated: stats.rehydrated },
  };
  if (json) console.log(JSON.stringify(result, null, 2));
  else {
    console.log(`open cases · ${result.date} · ${result.machine.cpu} × ${result.machine.cores} · node ${result.machine.node}`);
    console.log(`  ${CASES} cases opened at ${result.casesPerSecondOpened}/s, max ${RESIDENT} resident`);
    console.log(`  RSS ${result.rssMiB} MiB (heap ${result.heapUsedMiB} MiB)`);
    console.log(`  rehydrate + decide: p50 ${result.rehydrateDecide.p50Ms} ms, p99 ${result.rehydrateDecide.p99Ms} ms (${SAMPLES} samples)`);
    console.log(`  restart to ready: ${result.recovery.readyMs} ms; first command after restart ${result.recovery.firstCommandMs} ms`);
  }
} finally {
  await rm(dir, { recursive: true, force: true });
}
