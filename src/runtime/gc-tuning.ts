import { setFlagsFromString } from 'node:v8';

/**
 * Process-wide V8 settings that Handoff's own processes (the `handoff` CLI, the benchmarks) apply at
 * start, and that an application embedding the runtime should apply too (call this before opening
 * a runtime, or start node with the same flags).
 *
 * `--no-allocation-site-pretenuring`: after a burst in which many objects of one allocation site
 * live a while (thousands of cases opened at once, a recovery), V8 decides to allocate that site's
 * objects directly in the old generation from then on. The runtime's per-command objects come from
 * the same sites (containers of a batch, snapshots, records), so after the burst each command's
 * young objects are reachable from dead old ones, survive every scavenge and are copied and
 * promoted: about 2 MB per scavenge, pauses of 6 to 16 ms instead of 2 to 4. Measured on
 * `bench/open-cases.ts` (100,000 open cases, four interleaved rounds, 2026-12-03): rehydrate +
 * decide p99 3.4 to 3.8 ms with the flag against 4.5 to 5.1 ms without, claim + approve 3.7 to 4.6
 * against 7.9 to 8.9 ms (BENCHMARKS.md). Episodes/s and HITL cycles/s were unchanged within noise.
 *
 * `HANDOFF_V8_PRETENURING=1` keeps V8's default (to measure the difference). Returns the flags set.
 */
export function tuneGc(env: NodeJS.ProcessEnv = process.env): string[] {
  if (env.HANDOFF_V8_PRETENURING === '1') return [];
  const flags = ['--no-allocation-site-pretenuring'];
  for (const f of flags) setFlagsFromString(f);
  return flags;
}
