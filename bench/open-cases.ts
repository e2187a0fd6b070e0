/**
 * Open review cases on one node with passivation: how many a node holds, how fast they open, how
 * quickly a passivated case is rehydrated and decided, and how fast a node restarts with them. Each
 * figure comes with a raw LevelDB reference measured on the same data in the same run.
 *
 *   node --import tsx bench/open-cases.ts [--cases 100000] [--resident 10000] [--samples 2000] [--json] [--quick]
 */
import { cpus } from 'node:os';
import { PerformanceObserver } from 'node:perf_hooks';
import { Level } from 'level';
import pino from 'pino';
import { loadModel } from '../src/models/loader.ts';
import { LevelStore } from '../src/runtime/level-store.ts';
import { Runtime } from '../src/runtime/runtime.ts';
import { LevelWorld } from '../src/runtime/world.ts';
import { QUICK, arg, log, main, pct, round, row, withTempDir, type BenchRow } from './lib/common.ts';

const CASES = arg('cases', QUICK ? 20_000 : 100_000);
const RESIDENT = arg('resident', 10_000);
const SAMPLES = arg('samples', QUICK ? 500 : 2000);
/** Idle time between opening the cases and sampling (LevelDB compacts what the opening wrote). */
const SETTLE_MS = arg('settle-ms', 0);
const json = process.argv.includes('--json');
const rss = () => process.memoryUsage().rss / 2 ** 20;

export async function openCases(opts: { cases: number; resident: number; samples: number }) {
  const model = await loadModel('models/refunds');
  const quiet = pino({ level: 'silent' });
  const tier = model.config.review.tiers[0]!;
  const reviewer = { id: 'bench-lead', roles: tier.roles };
  const caseInput = (i: number, now: number) => {
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
  };

  return withTempDir('open-cases', async (dir) => {
    let store = await LevelStore.open(dir);
    let rt = await Runtime.open({ store, world: new LevelWorld(store), models: [model], logger: quiet, maxResident: opts.resident });
    global.gc?.();
    const baselineMiB = rss();
    const t0 = performance.now();
    const BATCH = 2000;
    for (let i = 0; i < opts.cases; i += BATCH) {
      const now = Date.now();
      await Promise.all(Array.from({ length: Math.min(BATCH, opts.cases - i) }, (_, k) => rt.openCase(caseInput(i + k, now))));
      if ((i / BATCH) % 25 === 0) log(`open-cases: opened ${Math.min(opts.cases, i + BATCH)} / ${opts.cases} · resident ${rt.resident} · rss ${rss().toFixed(0)} MiB`);
    }
    await rt.whenIdle();
    const openSeconds = (performance.now() - t0) / 1000;
    if (SETTLE_MS > 0) await new Promise((r) => setTimeout(r, SETTLE_MS));
    global.gc?.();
    const rssMiB = rss();
    const heapMiB = process.memoryUsage().heapUsed / 2 ** 20;

    // Rehydrate + decide: claim and approve cases that were passivated long ago. Garbage-collection
    // pauses are recorded alongside, to tell how much of the tail they make.
    const gcs: { start: number; end: number; kind: number }[] = [];
    const gcObserver = new PerformanceObserver((list) => {
      for (const e of list.getEntries()) gcs.push({ start: e.startTime, end: e.startTime + e.duration, kind: (e as unknown as { detail?: { kind?: number } }).detail?.kind ?? 0 });
    });
    gcObserver.observe({ entryTypes: ['gc'] });
    // LevelDB reads and batch writes during the sampling, timed (the store's own calls, unchanged).
    const io: { kind: 'get' | 'batch'; start: number; end: number }[] = [];
    const timed = store.db as unknown as Record<'get' | 'batch', (...a: unknown[]) => Promise<unknown>>;
    const orig = { get: timed.get, batch: timed.batch };
    for (const kind of ['get', 'batch'] as const) {
      timed[kind] = function (this: unknown, ...a: unknown[]) {
        const start = performance.now();
        const p = orig[kind].apply(this, a);
        void p.then(() => io.push({ kind, start, end: performance.now() }), () => undefined);
        return p;
      };
    }
    const lat: number[] = [];
    const spans: { start: number; end: number; claimed: number }[] = [];
    for (let k = 0; k < opts.samples; k++) {
      const i = Math.floor((k / opts.samples) * opts.cases * 0.5);
      const caseId = `bench-${i}.case-1`;
      const t = performance.now();
      await rt.command({ type: 'handoff.case.claim', schemaVersion: 1, commandId: `c-${k}`, caseId, reviewer });
      const claimed = performance.now();
      await rt.command({ type: 'handoff.case.approve', schemaVersion: 1, commandId: `a-${k}`, caseId, reviewer });
      const end = performance.now();
      lat.push(end - t);
      spans.push({ start: t, end, claimed });
    }
    await rt.whenIdle();
    await new Promise((r) => setImmediate(r));
    gcObserver.disconnect();
    timed.get = orig.get;
    timed.batch = orig.batch;
    // The slowest 1% of samples: how many overlap a GC pause, and how much of their time it took.
    const p99 = pct(lat, 99);
    const slow = spans.filter((sp) => sp.end - sp.start >= p99);
    const overlap = (sp: { start: number; end: number }, xs: { start: number; end: number }[]) => xs.reduce((ms, g) => ms + Math.max(0, Math.min(sp.end, g.end) - Math.max(sp.start, g.start)), 0);
    const gcIn = (sp: { start: number; end: number }) => overlap(sp, gcs);
    const slowest = [...spans]
      .sort((a, b) => b.end - b.start - (a.end - a.start))
      .slice(0, 8)
      .map((sp) => ({
        ms: round(sp.end - sp.start, 2),
        claimMs: round(sp.claimed - sp.start, 2),
        approveMs: round(sp.end - sp.claimed, 2),
        getMs: round(overlap(sp, io.filter((x) => x.kind === 'get')), 2),
        batchMs: round(overlap(sp, io.filter((x) => x.kind === 'batch')), 2),
        gcMs: round(gcIn(sp), 2),
      }));
    const tail = {
      samples: slow.length,
      withGc: slow.filter((sp) => gcIn(sp) > 0).length,
      gcMs: slow.reduce((ms, sp) => ms + gcIn(sp), 0),
      totalMs: slow.reduce((ms, sp) => ms + sp.end - sp.start, 0),
      gcPauses: gcs.length,
      gcKinds: Object.fromEntries([...new Set(gcs.map((g) => g.kind))].map((k) => [({ 1: 'minor', 2: 'major', 4: 'incremental', 8: 'weak', 16: 'minor-ms' } as Record<number, string>)[k] ?? String(k), round(gcs.filter((g) => g.kind === k).reduce((a, g) => a + g.end - g.start, 0), 1)])),
      gcPauseP99Ms: pct(gcs.map((g) => g.end - g.start), 99),
      getP99Ms: pct(io.filter((x) => x.kind === 'get').map((x) => x.end - x.start), 99),
      batchP99Ms: pct(io.filter((x) => x.kind === 'batch').map((x) => x.end - x.start), 99),
      slowest,
    };
    const stats = { ...rt.stats };
    // Reference: the same I/O with nothing around it: read a passivated case's record, write two
    // small records, each awaited (on the same LevelDB, so the same compaction state).
    const raw: number[] = [];
    for (let k = 0; k < opts.samples; k++) {
      const i = Math.floor(opts.cases * 0.5 + (k / opts.samples) * opts.cases * 0.5);
      const t = performance.now();
      const rec = await store.db.get(`a:bench-${i}.case-1`);
      if (!rec) throw new Error(`no record for bench-${i}.case-1`);
      await store.db.put(`m:raw-${k}-1`, { k, at: Date.now() });
      await store.db.put(`m:raw-${k}-2`, { k, at: Date.now() });
      raw.push(performance.now() - t);
    }
    await rt.close();
    await store.close();

    // Recovery: restart to ready with every case still open on disk.
    const r0 = performance.now();
    store = await LevelStore.open(dir);
    rt = await Runtime.open({ store, world: new LevelWorld(store), models: [model], logger: quiet, maxResident: opts.resident });
    const recoveryMs = performance.now() - r0;
    const probe = performance.now();
    await rt.command({ type: 'handoff.case.claim', schemaVersion: 1, commandId: 'probe', caseId: `bench-${opts.cases - 1}.case-1`, reviewer });
    const firstCommandMs = performance.now() - probe;
    await rt.close();
    await store.close();
    // Reference: open the LevelDB and scan the live index, nothing else.
    const s0 = performance.now();
    const db = new Level<string, unknown>(dir, { valueEncoding: 'json' });
    await db.open();
    let live = 0;
    for await (const _ of db.keys({ gt: 'l:', lt: 'l;' })) live++;
    await db.close();
    const rawRecoveryMs = performance.now() - s0;

    return {
      openCases: opts.cases,
      maxResident: opts.resident,
      casesPerSecondOpened: opts.cases / openSeconds,
      baselineMiB,
      rssMiB,
      heapUsedMiB: heapMiB,
      rssMiBPer100k: (rssMiB / opts.cases) * 100_000,
      rehydrateDecide: { samples: opts.samples, p50Ms: pct(lat, 50), p99Ms: pct(lat, 99), tail },
      rawGetPutPut: { p50Ms: pct(raw, 50), p99Ms: pct(raw, 99) },
      recovery: { readyMs: recoveryMs, firstCommandMs, rawScanMs: rawRecoveryMs, liveKeys: live },
      runtime: { evicted: stats.evicted, rehydrated: stats.rehydrated },
    };
  });
}

if (import.meta.url === `file://${process.argv[1]}`) {
  if (json && !process.argv.includes('--rows')) {
    const r = await openCases({ cases: CASES, resident: RESIDENT, samples: SAMPLES });
    console.log(JSON.stringify({ date: new Date().toISOString().slice(0, 10), machine: { cpu: cpus()[0]?.model, cores: cpus().length, node: process.version }, ...r }, null, 2));
  } else {
    await main('open-cases', async (): Promise<BenchRow[]> => {
      const r = await openCases({ cases: CASES, resident: RESIDENT, samples: SAMPLES });
      const tl = r.rehydrateDecide.tail;
      log(`open-cases: slowest 1% of rehydrate+decide: ${tl.samples} samples, ${tl.withGc} overlap a GC pause, GC ${round(tl.gcMs, 1)} of ${round(tl.totalMs, 1)} ms; ${tl.gcPauses} GC pauses in the sampling (ms by kind: ${JSON.stringify(tl.gcKinds)}), p99 pause ${round(tl.gcPauseP99Ms, 2)} ms`);
      log(`open-cases: LevelDB during the sampling: get p99 ${round(tl.getP99Ms, 2)} ms, batch write p99 ${round(tl.batchP99Ms, 2)} ms; slowest samples (ms): ${tl.slowest.map((x) => `${x.ms} = claim ${x.claimMs} + approve ${x.approveMs} [get ${x.getMs}, batch ${x.batchMs}, gc ${x.gcMs}]`).join('; ')}`);
      log(`open-cases: ${round(r.casesPerSecondOpened)} opened/s · rss ${round(r.rssMiB)} MiB (baseline ${round(r.baselineMiB)}) · rehydrate+decide p50 ${round(r.rehydrateDecide.p50Ms, 2)} p99 ${round(r.rehydrateDecide.p99Ms, 2)} ms · recovery ${round(r.recovery.readyMs)} ms`);
      const n = CASES.toLocaleString('en-US');
      return [
        row(`open cases: RSS with ${n} open (at most ${RESIDENT.toLocaleString('en-US')} resident)`, 'MiB', round(r.rssMiB), { name: 'RSS of the same process before opening any case', value: round(r.baselineMiB) }, { better: 'lower', target: '1,000,000 open < 2 GiB', note: `heap ${round(r.heapUsedMiB)} MiB; ${round(r.casesPerSecondOpened)} cases opened/s` }),
        row(`rehydrate + decide p99, passivated case (${n} open)`, 'ms', round(r.rehydrateDecide.p99Ms, 2), { name: 'raw LevelDB get + 2 awaited puts p99, same data', value: round(r.rawGetPutPut.p99Ms, 2) }, { better: 'lower', target: '< 5 ms', note: `p50 ${round(r.rehydrateDecide.p50Ms, 2)} ms (raw ${round(r.rawGetPutPut.p50Ms, 2)} ms)` }),
        row(`recovery: restart to ready with ${n} open cases`, 'ms', round(r.recovery.readyMs), { name: 'raw LevelDB open + scan of the live index', value: round(r.recovery.rawScanMs) }, { better: 'lower', target: '< 3,000 ms with 100,000', note: `first command after restart ${round(r.recovery.firstCommandMs, 2)} ms` }),
      ];
    });
  }
}
