/**
 * Telemetry's cost in CPU time: the process's CPU time (user + system, every thread: GC helpers too)
 * per durable auto episode, with telemetry off and on, a fixed number of episodes per run, runs
 * alternating (off-on, on-off, ...) after one unmeasured run of each, medians compared. CPU time
 * rather than throughput because the machines these run on are shared: wall-clock episodes/s swing
 * 3x with the neighbours' load, CPU per episode far less.
 *
 * "on" is tracing (every span built and handed to a batching exporter that counts and discards it)
 * plus HITL metrics, at the default sampler; `--variant tracing|metrics|hook` measures one part
 * (`hook`: an empty `RuntimeOptions.telemetry`, the runtime's own share).
 *
 *   node --import tsx bench/telemetry-cpu.ts [--episodes 4000] [--rounds 3] [--inflight 500] [--variant on]
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { PerformanceObserver, constants } from 'node:perf_hooks';
import { join } from 'node:path';
import pino from 'pino';
import { HandoffMetrics, setupTracing, telemetryHook } from '../src/telemetry/index.ts';
import { LevelStore } from '../src/runtime/level-store.ts';
import { Runtime } from '../src/runtime/runtime.ts';
import type { RuntimeOptions } from '../src/runtime/runtime-types.ts';
import { LevelWorld } from '../src/runtime/world.ts';
import { arg, log, round } from './lib/common.ts';
import { autoSignals, benchModel } from './lib/workload.ts';

export type Variant = 'off' | 'on' | 'tracing' | 'metrics' | 'hook';

/** CPU µs per episode for one run of `episodes` auto episodes, `inflight` at a time. */
export async function cpuPerEpisode(
  variant: Variant,
  episodes: number,
  inflight: number,
): Promise<{ us: number; spans: number; gcUs: number; majorGcs: number }> {
  const model = await benchModel();
  const signals = await autoSignals(model);
  const dir = await mkdtemp(join(tmpdir(), 'telemetry-cpu-'));
  const store = await LevelStore.open(dir);
  let spans = 0;
  const tracing =
    variant === 'on' || variant === 'tracing'
      ? setupTracing({
          exporter: {
            export: (batch, done) => {
              spans += batch.length;
              done({ code: 0 });
            },
            shutdown: async () => undefined,
          },
        })!
      : undefined;
  const metrics = variant === 'on' || variant === 'metrics' ? new HandoffMetrics() : undefined;
  const telemetry: RuntimeOptions['telemetry'] = variant === 'hook' ? () => undefined : telemetryHook(tracing, metrics);
  const rt = await Runtime.open({
    store,
    world: new LevelWorld(store),
    models: [model],
    logger: pino({ level: 'silent' }),
    seed: 'bench',
    ...(telemetry ? { telemetry } : {}),
  });
  metrics?.observe(rt);
  const done = new Map<string, () => void>();
  rt.onTransition((n) => {
    if (n.kind === 'agent' && n.status !== 'active') done.get(n.id)?.();
  });
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < episodes) {
      const id = `ep-${next++}`;
      const finished = new Promise<void>((resolve) => done.set(id, resolve));
      await rt.startEpisode(model.name, signals[next % signals.length]!.signal, { episodeId: id });
      await finished;
      done.delete(id);
    }
  };
  // Garbage collection pauses of the main thread (the helper threads' marking is in the CPU time only).
  let gcMs = 0;
  let majorGcs = 0;
  const gc = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      gcMs += e.duration;
      const kind = (e as unknown as { detail?: { kind?: number } }).detail?.kind;
      if (kind === constants.NODE_PERFORMANCE_GC_MAJOR) majorGcs++;
    }
  });
  gc.observe({ entryTypes: ['gc'] });
  const c0 = process.cpuUsage();
  await Promise.all(Array.from({ length: inflight }, worker));
  await tracing?.forceFlush();
  const c = process.cpuUsage(c0);
  gc.disconnect();
  await rt.whenIdle();
  await rt.close();
  await store.close();
  await tracing?.shutdown();
  await metrics?.shutdown();
  await rm(dir, { recursive: true, force: true });
  return { us: (c.user + c.system) / episodes, spans, gcUs: (gcMs * 1000) / episodes, majorGcs };
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** Runs off and `variant` alternately, `rounds` times each (after one unmeasured run of each), and compares medians. */
export async function telemetryCpu(opts: {
  episodes: number;
  rounds: number;
  inflight: number;
  variant?: Variant;
}): Promise<{ offUs: number; onUs: number; overhead: number; spansPerEpisode: number }> {
  const variant = opts.variant ?? 'on';
  // The JIT's warm-up, of both paths.
  await cpuPerEpisode('off', opts.episodes, opts.inflight);
  await cpuPerEpisode(variant, opts.episodes, opts.inflight);
  const off: number[] = [];
  const on: number[] = [];
  let spans = 0;
  for (let r = 0; r < opts.rounds; r++) {
    // off, on, then on, off: a drift of the machine's load does not favour either.
    for (const v of r % 2 === 0 ? (['off', variant] as const) : ([variant, 'off'] as const)) {
      const run = await cpuPerEpisode(v, opts.episodes, opts.inflight);
      (v === 'off' ? off : on).push(run.us);
      spans += run.spans;
    }
    log(
      `telemetry cpu round ${r + 1}: off ${round(off.at(-1)!)} µs/episode, ${variant} ${round(on.at(-1)!)} µs/episode`,
    );
  }
  const offUs = median(off);
  const onUs = median(on);
  return { offUs, onUs, overhead: onUs / offUs - 1, spansPerEpisode: spans / (opts.rounds * opts.episodes) };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const i = process.argv.indexOf('--variant');
  const variant = (i < 0 ? 'on' : process.argv[i + 1]) as Variant;
  if (!['on', 'tracing', 'metrics', 'hook'].includes(variant))
    throw new Error(`--variant: on, tracing, metrics or hook`);
  const r = await telemetryCpu({
    episodes: arg('episodes', 4000),
    rounds: arg('rounds', 3),
    inflight: arg('inflight', 500),
    variant,
  });
  console.log(
    `median off ${round(r.offUs)} µs/episode, ${variant} ${round(r.onUs)} µs/episode, ` +
      `overhead ${round(r.overhead * 100, 1)}%, ${round(r.spansPerEpisode, 2)} spans/episode`,
  );
}
