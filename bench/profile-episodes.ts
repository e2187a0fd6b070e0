/**
 * Durable episodes alone (no raw references), for CPU profiles; `--bytes` also tallies the JSON
 * written per key space (a: records, j: journal, l: live index, x: audit, w: world ledger, ...).
 *
 *   node --cpu-prof --import tsx bench/profile-episodes.ts [--inflight 1000] [--seconds 8] [--bytes]
 */
import { LevelStore } from '../src/runtime/level-store.ts';
import { arg, log, round } from './lib/common.ts';
import { durableEpisodes } from './episodes.ts';

const tally = new Map<string, { ops: number; bytes: number }>();
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
    if (!process.argv.includes('--bytes')) return counting;
    // The store hands LevelDB its batches, values encoded, through `_batch` (LevelStore.#write).
    const db = (rt.store as LevelStore).db as unknown as {
      _batch: (ops: { type: string; key: string; value?: string }[], o?: unknown) => Promise<void>;
    };
    const batch = db._batch.bind(db);
    db._batch = (ops, o) => {
      for (const op of ops) {
        const t = tally.get(op.key.slice(0, 2)) ?? { ops: 0, bytes: 0 };
        t.ops++;
        t.bytes += op.type === 'put' ? op.value!.length : 0;
        tally.set(op.key.slice(0, 2), t);
      }
      return batch(ops, o);
    };
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
