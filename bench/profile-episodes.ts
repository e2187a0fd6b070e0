/**
 * Durable episodes alone (no raw references), for CPU profiles; `--bytes` also tallies the JSON
 * written per key space (a: records, j: journal, l: live index, x: audit, w: world ledger, ...).
 * `--hitl` counts HITL cycles instead (see hitlCycles below).
 *
 *   node --cpu-prof --import tsx bench/profile-episodes.ts [--inflight 1000] [--seconds 8] [--bytes]
 *   node --import tsx bench/profile-episodes.ts --hitl [--inflight 1] [--cycles 2000] [--show]
 */
import pino from 'pino';
import { LevelStore } from '../src/runtime/level-store.ts';
import { Runtime } from '../src/runtime/runtime.ts';
import { LevelWorld } from '../src/runtime/world.ts';
import { arg, log, round, withTempDir } from './lib/common.ts';
import { LEAD, benchModel, reviewSignals } from './lib/workload.ts';
import { durableEpisodes } from './episodes.ts';

type EncodedOp = { type: string; key: string; value?: string };
const tally = new Map<string, { ops: number; bytes: number }>();

/** Tallies every write the store hands LevelDB (through `_batch`, LevelStore.#write) by key space. */
function countWrites(store: LevelStore, each?: (ops: EncodedOp[]) => void): void {
  const db = store.db as unknown as { _batch: (ops: EncodedOp[], o?: unknown) => Promise<void> };
  const batch = db._batch.bind(db);
  db._batch = (ops, o) => {
    for (const op of ops) {
      const t = tally.get(op.key.slice(0, 2)) ?? { ops: 0, bytes: 0 };
      t.ops++;
      t.bytes += op.type === 'put' ? op.value!.length : 0;
      tally.set(op.key.slice(0, 2), t);
    }
    each?.(ops);
    return batch(ops, o);
  };
}

/**
 * `--hitl`: HITL cycles (agent, review case, claim, approval, two actions) one at a time or
 * `--inflight N` at a time, counted per cycle: commits, LevelDB batches, writes and bytes by key
 * space, reads by kind, and CPU. (`--show` prints the batches of one cycle, key by key.)
 */
async function hitlCycles(): Promise<void> {
  const cycles = arg('cycles', 2000);
  const inflight = arg('inflight', 1);
  const model = await benchModel();
  const signals = await reviewSignals(model);
  await withTempDir('profile-hitl', async (dir) => {
    const store = await LevelStore.open(dir);
    const rt = await Runtime.open({
      store,
      world: new LevelWorld(store),
      models: [model],
      logger: pino({ level: 'silent' }),
      seed: 'bench',
    });
    const db = store.db as unknown as Record<string, (...a: unknown[]) => unknown>;
    const reads = new Map<string, number>();
    const read = (kind: string, key: unknown) =>
      reads.set(`${kind} ${String(key).slice(0, 2)}`, (reads.get(`${kind} ${String(key).slice(0, 2)}`) ?? 0) + 1);
    for (const m of ['get', 'getMany', 'iterator', 'keys', 'values']) {
      const f = db[m]!.bind(store.db);
      db[m] = (...a: unknown[]) => {
        const o = a[0] as { gt?: string; gte?: string } | string | string[];
        read(m, Array.isArray(o) ? o[0] : typeof o === 'object' ? (o?.gt ?? o?.gte ?? '') : o);
        return f(...a);
      };
    }
    let batches = 0;
    let show = false;
    countWrites(store, (ops) => {
      batches++;
      if (show) log(`batch:\n  ${ops.map((op) => `${op.key.slice(0, 50)} ${op.value?.length ?? 'del'}`).join('\n  ')}`);
    });
    const waiting = new Map<string, () => void>();
    let k = 0;
    rt.onTransition((n) => {
      if (n.kind === 'case' && n.seq === 0) {
        const j = ++k;
        const base = { schemaVersion: 1, caseId: n.id, reviewer: LEAD };
        void rt
          .command({ type: 'handoff.case.claim', commandId: `c-${j}`, ...base })
          .then(() => rt.command({ type: 'handoff.case.approve', commandId: `a-${j}`, ...base }));
      }
      if (n.kind === 'agent' && n.status !== 'active') waiting.get(n.id)?.();
    });
    const one = (i: number) =>
      new Promise<void>((resolve) => {
        waiting.set(`ep-${i}`, resolve);
        void rt.startEpisode(model.name, signals[i % signals.length]!.signal, { episodeId: `ep-${i}` });
      });
    // Warm-up, then one cycle shown with --show; counting starts after both.
    for (let i = 0; i < 200; i++) await one(1_000_000 + i);
    if (process.argv.includes('--show')) {
      show = true;
      await one(2_000_000);
      await rt.whenIdle();
      show = false;
    }
    await rt.whenIdle();
    reads.clear();
    tally.clear();
    batches = 0;
    const commits = store.stats.commits;
    const t0 = performance.now();
    const cpu0 = process.cpuUsage();
    let next = 0;
    await Promise.all(
      Array.from({ length: inflight }, async () => {
        while (next < cycles) await one(next++);
      }),
    );
    const cpu = process.cpuUsage(cpu0);
    const ms = performance.now() - t0;
    log(
      `HITL cycles, ${inflight} at a time: ${round((cycles / ms) * 1000)}/s; CPU (main thread and LevelDB's pool) ${round((cpu.user + cpu.system) / cycles)} µs per cycle`,
    );
    log(
      `per cycle: ${round((store.stats.commits - commits) / cycles, 2)} commits, ${round(batches / cycles, 2)} batches, reads: ${[...reads].map(([r, n]) => `${r} ${round(n / cycles, 2)}`).join(', ') || 'none'}`,
    );
    let ops = 0;
    let bytes = 0;
    for (const [space, t] of [...tally].sort((a, b) => b[1].bytes - a[1].bytes)) {
      ops += t.ops;
      bytes += t.bytes;
      log(`  ${space} ${round(t.ops / cycles, 2)} writes, ${round(t.bytes / cycles)} bytes per cycle`);
    }
    log(`  total ${round(ops / cycles, 1)} writes, ${round(bytes / cycles)} bytes per cycle`);
    await rt.close();
    await store.close();
  });
}

if (process.argv.includes('--hitl')) {
  await hitlCycles();
  process.exit(0);
}
let episodes = 0;
let cpu0 = process.cpuUsage();
let cpu = cpu0;
const r = await durableEpisodes({
  inflight: arg('inflight', 1000),
  seconds: arg('seconds', 8),
  attach: (rt) => {
    cpu0 = process.cpuUsage();
    const off = rt.onTransition((n) => {
      if (n.kind === 'agent' && n.status !== 'active') episodes++;
    });
    const counting = () => {
      cpu = process.cpuUsage(cpu0);
      off();
    };
    if (process.argv.includes('--bytes')) countWrites(rt.store as LevelStore);
    return counting;
  },
});
log(
  `CPU (main thread and LevelDB's pool) per episode: ${round((cpu.user + cpu.system) / episodes)} µs over ${episodes} episodes`,
);
log(
  `episodes: ${round(r.episodesPerSecond)}/s · ${round(r.eventsPerEpisode, 1)} events, ${round(r.writesPerEpisode, 1)} writes per episode · ${round(r.opsPerBatch)} writes per batch · p50 ${round(r.p50EpisodeMs, 1)} ms`,
);
if (episodes)
  for (const [space, t] of [...tally].sort((a, b) => b[1].bytes - a[1].bytes))
    log(`  ${space} ${round(t.ops / episodes, 2)} writes, ${round(t.bytes / episodes)} bytes per episode`);
