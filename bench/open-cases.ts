/**
 * Open review cases on one node with passivation: how many a node holds, how fast they open, how
 * quickly a passivated case is rehydrated and decided, and how fast a node restarts with them. Each
 * figure comes with a raw LevelDB reference measured on the same data in the same run.
 *
 *   node --import tsx bench/open-cases.ts [--cases 100000] [--resident 10000] [--samples 2000] [--json] [--quick]
 */
import { PerformanceObserver } from 'node:perf_hooks';
import { Level } from 'level';
import pino from 'pino';
import { loadModel } from '../src/models/loader.ts';
import { LevelStore } from '../src/runtime/level-store.ts';
import { Runtime } from '../src/runtime/runtime.ts';
import { LevelWorld } from '../src/runtime/world.ts';
import { QUICK, arg, log, machine, main, pct, round, row, withTempDir, type BenchRow } from './lib/common.ts';

const CASES = arg('cases', QUICK ? 20_000 : 100_000);
const RESIDENT = arg('resident', 10_000);
const SAMPLES = arg('samples', QUICK ? 500 : 2000);
/**
 * Decisions of each kind made before the sampling, on other passivated cases, not measured: the
 * sampled code paths (rehydration, claim, approval) are not the opening's, and until V8 has compiled
 * them the first samples run interpreted and compete with the compiler threads for the two cores.
 */
const WARMUP = arg('warmup', Math.floor(SAMPLES / 2));
/** Idle time between opening the cases and sampling (LevelDB compacts what the opening wrote). */
const SETTLE_MS = arg('settle-ms', 0);
const json = process.argv.includes('--json');
const rss = () => process.memoryUsage().rss / 2 ** 20;

export async function openCases(opts: { cases: number; resident: number; samples: number; warmup?: number }) {
  const warmup = opts.warmup ?? 0;
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
      decision: {
        outcome: 'review',
        ruleId: 'confidence-threshold',
        reasons: ['confidence 0.6 below 0.8'],
        tier: 1,
        riskScore: 0.4,
        confidence: 0.6,
        policyVersion: model.config.policy.version,
        rules: [],
      },
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

  // Sample sets, both in the first half of the cases (passivated long before the sampling):
  // `decide` cases are claimed by a reviewer right after they open, as a reviewer takes a case and
  // works on it while the node evicts it; the sampling then approves them (rehydrate + one durable
  // decision). `claimDecide` cases are the next ones, never claimed: claim + approve (two commands).
  const decideIndex = (k: number) => 2 * Math.floor((k / opts.samples) * opts.cases * 0.25);
  // Warm-up cases are spread over the same first half (the passivated part), between the sampled
  // ones, claimed as they open like the `decide` set; the one after each is a warm-up claim + approve.
  const sampled = new Set(Array.from({ length: opts.samples }, (_, k) => [decideIndex(k), decideIndex(k) + 1]).flat());
  const free: number[] = [];
  for (let j = 0; j < opts.cases / 2; j += 2) if (!sampled.has(j) && !sampled.has(j + 1)) free.push(j);
  if (free.length < warmup)
    throw new Error(`room for ${free.length} of ${warmup} warm-up cases: raise --cases or lower --warmup`);
  const warmIndices = Array.from({ length: warmup }, (_, w) => free[Math.floor((w * free.length) / warmup)]!);
  const decideSet = new Set([...Array.from({ length: opts.samples }, (_, k) => decideIndex(k)), ...warmIndices]);
  const caseIdOf = (i: number) => `bench-${i}.case-1`;

  return withTempDir('open-cases', async (dir) => {
    let store = await LevelStore.open(dir);
    let rt = await Runtime.open({
      store,
      world: new LevelWorld(store),
      models: [model],
      logger: quiet,
      maxResident: opts.resident,
    });
    global.gc?.();
    const baselineMiB = rss();
    const t0 = performance.now();
    const BATCH = 2000;
    for (let i = 0; i < opts.cases; i += BATCH) {
      const now = Date.now();
      const ids = Array.from({ length: Math.min(BATCH, opts.cases - i) }, (_, k) => i + k);
      await Promise.all(ids.map((j) => rt.openCase(caseInput(j, now))));
      await Promise.all(
        ids
          .filter((j) => decideSet.has(j))
          .map((j) =>
            rt.command({
              type: 'handoff.case.claim',
              schemaVersion: 1,
              commandId: `c0-${j}`,
              caseId: caseIdOf(j),
              reviewer,
            }),
          ),
      );
      if ((i / BATCH) % 25 === 0)
        log(
          `open-cases: opened ${Math.min(opts.cases, i + BATCH)} / ${opts.cases} · resident ${rt.resident} · rss ${rss().toFixed(0)} MiB`,
        );
    }
    await rt.whenIdle();
    const openSeconds = (performance.now() - t0) / 1000;
    if (SETTLE_MS > 0) await new Promise((r) => setTimeout(r, SETTLE_MS));
    global.gc?.();
    const rssMiB = rss();
    const heapMiB = process.memoryUsage().heapUsed / 2 ** 20;

    // Garbage-collection pauses and the store's LevelDB reads and batch writes are recorded during
    // the sampling, to tell what the tail is made of.
    const gcs: { start: number; end: number; kind: number }[] = [];
    const gcObserver = new PerformanceObserver((list) => {
      for (const e of list.getEntries())
        gcs.push({
          start: e.startTime,
          end: e.startTime + e.duration,
          kind: (e as unknown as { detail?: { kind?: number } }).detail?.kind ?? 0,
        });
    });
    gcObserver.observe({ entryTypes: ['gc'] });
    // The store's reads of records (`load`: one LevelDB range read) and its LevelDB batch writes.
    const io: { kind: 'get' | 'batch'; start: number; end: number }[] = [];
    const timing = <F extends (...a: never[]) => Promise<unknown>>(kind: 'get' | 'batch', f: F): F =>
      function (this: unknown, ...a: never[]) {
        const start = performance.now();
        const p = f.apply(this, a);
        void p.then(
          () => io.push({ kind, start, end: performance.now() }),
          () => undefined,
        );
        return p;
      } as F;
    // (The store hands its batches to abstract-level's private `_batch`: see LevelStore.#write.)
    const level = store.db as unknown as { _batch: (...a: never[]) => Promise<unknown> };
    const orig = { load: store.load, batch: level._batch };
    store.load = timing('get', orig.load);
    level._batch = timing('batch', orig.batch);
    const sample = async (name: string, run: (k: number) => Promise<void>) => {
      const g0 = gcs.length;
      const io0 = io.length;
      const spans: { k: number; start: number; end: number }[] = [];
      for (let k = 0; k < opts.samples; k++) {
        const start = performance.now();
        await run(k);
        spans.push({ k, start, end: performance.now() });
      }
      await rt.whenIdle();
      await new Promise((r) => setImmediate(r));
      return { name, spans, gcs: gcs.slice(g0), io: io.slice(io0) };
    };
    const approve = (i: number, tag: string) =>
      rt
        .command({
          type: 'handoff.case.approve',
          schemaVersion: 1,
          commandId: `${tag}-${i}`,
          caseId: caseIdOf(i),
          reviewer,
        })
        .then(() => undefined);
    for (const j of warmIndices) {
      await approve(j, 'wa');
      const i = j + 1;
      await rt.command({
        type: 'handoff.case.claim',
        schemaVersion: 1,
        commandId: `wc-${i}`,
        caseId: caseIdOf(i),
        reviewer,
      });
      await approve(i, 'wca');
    }
    await rt.whenIdle();
    const rehydrated0 = rt.stats.rehydrated;
    const decide = await sample('rehydrate + decide', (k) => approve(decideIndex(k), 'a'));
    const claimDecide = await sample('rehydrate + claim + decide', async (k) => {
      const i = decideIndex(k) + 1;
      await rt.command({
        type: 'handoff.case.claim',
        schemaVersion: 1,
        commandId: `c-${i}`,
        caseId: caseIdOf(i),
        reviewer,
      });
      await approve(i, 'ca');
    });
    const rehydrated = rt.stats.rehydrated - rehydrated0;
    if (rehydrated < 2 * opts.samples)
      throw new Error(
        `only ${rehydrated} of ${2 * opts.samples} sampled cases were passivated: raise --cases or lower --resident`,
      );
    gcObserver.disconnect();
    store.load = orig.load;
    level._batch = orig.batch;
    const stats = { ...rt.stats };
    // Reference: the same I/O with nothing around it: read a passivated case's record and write
    // one small record, awaited (on the same LevelDB, so the same compaction state).
    const raw: number[] = [];
    for (let k = 0; k < opts.samples; k++) {
      const i = Math.floor(opts.cases * 0.5 + (k / opts.samples) * opts.cases * 0.5);
      const t = performance.now();
      const rec = await store.db.get(`a:${caseIdOf(i)}`);
      if (!rec) throw new Error(`no record for ${caseIdOf(i)}`);
      await store.db.put(`m:raw-${k}`, { k, at: Date.now() });
      raw.push(performance.now() - t);
    }
    await rt.close();
    await store.close();

    // Recovery: restart to ready with every case still open on disk.
    const r0 = performance.now();
    store = await LevelStore.open(dir);
    rt = await Runtime.open({
      store,
      world: new LevelWorld(store),
      models: [model],
      logger: quiet,
      maxResident: opts.resident,
    });
    const recoveryMs = performance.now() - r0;
    const probe = performance.now();
    await rt.command({
      type: 'handoff.case.claim',
      schemaVersion: 1,
      commandId: 'probe',
      caseId: `bench-${opts.cases - 1}.case-1`,
      reviewer,
    });
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
      warmup,
      casesPerSecondOpened: opts.cases / openSeconds,
      baselineMiB,
      rssMiB,
      heapUsedMiB: heapMiB,
      rssMiBPer100k: (rssMiB / opts.cases) * 100_000,
      rehydrateDecide: describe(decide),
      rehydrateClaimDecide: describe(claimDecide),
      rawGetPut: { p50Ms: pct(raw, 50), p99Ms: pct(raw, 99) },
      recovery: { readyMs: recoveryMs, firstCommandMs, rawScanMs: rawRecoveryMs, liveKeys: live },
      runtime: { evicted: stats.evicted, rehydrated: stats.rehydrated },
    };
  });
}

const GC_KINDS: Record<number, string> = { 1: 'minor', 2: 'major', 4: 'incremental', 8: 'weak', 16: 'minor-ms' };
type Interval = { start: number; end: number };
const overlap = (sp: Interval, xs: Interval[]) =>
  xs.reduce((ms, g) => ms + Math.max(0, Math.min(sp.end, g.end) - Math.max(sp.start, g.start)), 0);

/** Latency percentiles of a sample set, and what its slowest 1% overlapped: GC pauses, LevelDB reads and writes. */
function describe(set: {
  spans: ({ k: number } & Interval)[];
  gcs: ({ kind: number } & Interval)[];
  io: ({ kind: 'get' | 'batch' } & Interval)[];
}) {
  const lat = set.spans.map((sp) => sp.end - sp.start);
  const p99 = pct(lat, 99);
  const slow = set.spans.filter((sp) => sp.end - sp.start >= p99);
  const gets = set.io.filter((x) => x.kind === 'get');
  const batches = set.io.filter((x) => x.kind === 'batch');
  return {
    samples: set.spans.length,
    p50Ms: pct(lat, 50),
    p99Ms: p99,
    p999Ms: pct(lat, 99.9),
    maxMs: Math.max(...lat),
    tail: {
      samples: slow.length,
      withGc: slow.filter((sp) => overlap(sp, set.gcs) > 0).length,
      gcMs: slow.reduce((ms, sp) => ms + overlap(sp, set.gcs), 0),
      totalMs: slow.reduce((ms, sp) => ms + sp.end - sp.start, 0),
      gcPauses: set.gcs.length,
      gcKinds: Object.fromEntries(
        [...new Set(set.gcs.map((g) => g.kind))].map((k) => [
          GC_KINDS[k] ?? String(k),
          round(
            set.gcs.filter((g) => g.kind === k).reduce((a, g) => a + g.end - g.start, 0),
            1,
          ),
        ]),
      ),
      gcPauseP99Ms: pct(
        set.gcs.map((g) => g.end - g.start),
        99,
      ),
      getP99Ms: pct(
        gets.map((x) => x.end - x.start),
        99,
      ),
      batchP99Ms: pct(
        batches.map((x) => x.end - x.start),
        99,
      ),
      slowest: [...set.spans]
        .sort((a, b) => b.end - b.start - (a.end - a.start))
        .slice(0, 8)
        .map((sp) => ({
          sample: sp.k,
          ms: round(sp.end - sp.start, 2),
          getMs: round(overlap(sp, gets), 2),
          batchMs: round(overlap(sp, batches), 2),
          gcMs: round(overlap(sp, set.gcs), 2),
        })),
    },
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  if (json && !process.argv.includes('--rows')) {
    const r = await openCases({ cases: CASES, resident: RESIDENT, samples: SAMPLES, warmup: WARMUP });
    const { date, ...m } = machine();
    console.log(JSON.stringify({ date, machine: m, ...r }, null, 2));
  } else {
    await main('open-cases', async (): Promise<BenchRow[]> => {
      const r = await openCases({ cases: CASES, resident: RESIDENT, samples: SAMPLES, warmup: WARMUP });
      for (const [name, d] of [
        ['rehydrate + decide', r.rehydrateDecide],
        ['rehydrate + claim + decide', r.rehydrateClaimDecide],
      ] as const) {
        const tl = d.tail;
        log(
          `open-cases: ${name} (after ${r.warmup} unmeasured of each kind): p50 ${round(d.p50Ms, 2)} p99 ${round(d.p99Ms, 2)} p99.9 ${round(d.p999Ms, 2)} max ${round(d.maxMs, 2)} ms; slowest 1% (${tl.samples} samples): ${tl.withGc} overlap a GC pause, GC ${round(tl.gcMs, 1)} of ${round(tl.totalMs, 1)} ms; ${tl.gcPauses} GC pauses (ms by kind: ${JSON.stringify(tl.gcKinds)}), p99 pause ${round(tl.gcPauseP99Ms, 2)} ms; record reads p99 ${round(tl.getP99Ms, 2)} ms, LevelDB batch p99 ${round(tl.batchP99Ms, 2)} ms`,
        );
        log(
          `open-cases: ${name}: slowest samples (ms): ${tl.slowest.map((x) => `#${x.sample} ${x.ms} [read ${x.getMs}, batch ${x.batchMs}, gc ${x.gcMs}]`).join('; ')}`,
        );
      }
      log(
        `open-cases: ${round(r.casesPerSecondOpened)} opened/s · rss ${round(r.rssMiB)} MiB (baseline ${round(r.baselineMiB)}) · rehydrate+decide p50 ${round(r.rehydrateDecide.p50Ms, 2)} p99 ${round(r.rehydrateDecide.p99Ms, 2)} ms · recovery ${round(r.recovery.readyMs)} ms`,
      );
      const n = CASES.toLocaleString('en-US');
      return [
        row(
          `open cases: RSS with ${n} open (at most ${RESIDENT.toLocaleString('en-US')} resident)`,
          'MiB',
          round(r.rssMiB),
          { name: 'RSS of the same process before opening any case', value: round(r.baselineMiB) },
          {
            better: 'lower',
            target: '1,000,000 open < 2 GiB',
            note: `heap ${round(r.heapUsedMiB)} MiB; ${round(r.casesPerSecondOpened)} cases opened/s`,
          },
        ),
        row(
          `rehydrate + decide p99: approve a claimed, passivated case (${n} open)`,
          'ms',
          round(r.rehydrateDecide.p99Ms, 2),
          { name: 'raw LevelDB get + awaited put p99, same data', value: round(r.rawGetPut.p99Ms, 2) },
          {
            better: 'lower',
            target: '< 5 ms',
            note: `p50 ${round(r.rehydrateDecide.p50Ms, 2)} ms (raw ${round(r.rawGetPut.p50Ms, 2)} ms), p99.9 ${round(r.rehydrateDecide.p999Ms, 2)} ms, after ${r.warmup} unmeasured decisions; claim + approve of an unclaimed passivated case: p50 ${round(r.rehydrateClaimDecide.p50Ms, 2)}, p99 ${round(r.rehydrateClaimDecide.p99Ms, 2)} ms`,
          },
        ),
        row(
          `recovery: restart to ready with ${n} open cases`,
          'ms',
          round(r.recovery.readyMs),
          { name: 'raw LevelDB open + scan of the live index', value: round(r.recovery.rawScanMs) },
          {
            better: 'lower',
            target: '< 3,000 ms with 100,000',
            note: `first command after restart ${round(r.recovery.firstCommandMs, 2)} ms`,
          },
        ),
      ];
    });
  }
}
