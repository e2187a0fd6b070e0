import { setFlagsFromString } from 'node:v8';

/**
 * Process-wide V8 settings that Handoff's own processes (the `handoff` CLI, the benchmarks) apply at
 * start, and that an application embedding the runtime should apply too (call this before opening
 * a runtime, or start node with the same flags). Both can be set in a running process.
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
 * `HANDOFF_V8_PRETENURING=1` keeps V8's default.
 *
 * `--fast-properties-soft-limit=32` (V8's default is 12): XState builds every new context with
 * `Object.assign({}, context, update)`, which adds the properties one by one, as keyed stores; from
 * the 20th property added that way, V8 turns the object into a hash table ("dictionary mode"). The
 * agent machine's context has 21 to 24 properties and the review case's 24, so every context of
 * every actor was a hash table: each assign copied it property by property, and every read of it
 * (guards, actions, snapshots, JSON) went through the slow path. `Object.assign` alone was 28 % of
 * the CPU of the model's work driven through the agent machine (bench/lib/workload.ts,
 * machineWorkPerSecond), which ran 40 to 70 % faster with the limit raised; the durable runtime
 * spent 3 to 10 % less CPU per episode (2026-12-06, BENCHMARKS.md). 32 leaves room for the contexts
 * to grow, while objects that code fills as maps (keyed stores of many distinct keys) still become
 * hash tables soon after.
 * `HANDOFF_V8_FAST_PROPERTIES=0` keeps V8's default.
 *
 * Returns the flags set.
 */
export function tuneGc(env: NodeJS.ProcessEnv = process.env): string[] {
  const flags: string[] = [];
  if (env.HANDOFF_V8_PRETENURING !== '1') flags.push('--no-allocation-site-pretenuring');
  if (env.HANDOFF_V8_FAST_PROPERTIES !== '0') flags.push(`--fast-properties-soft-limit=${FAST_PROPERTIES_SOFT_LIMIT}`);
  for (const f of flags) setFlagsFromString(f);
  return flags;
}

/** See {@link tuneGc}: above the number of properties of the machines' contexts. */
export const FAST_PROPERTIES_SOFT_LIMIT = 32;
