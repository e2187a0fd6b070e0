/**
 * Inspection overhead: durable episodes per second (the auto path of `episodes.ts`) with the
 * inspector's stream on (`RuntimeOptions.inspect` fed to an `InspectionStream` publishing on the
 * runtime's transport) vs off. Runs alternate off / on twice and compare the sums, to spread the
 * noise of a shared machine over both. The same for telemetry: tracing (every span built and handed
 * to a batching processor whose exporter discards it) and HITL metrics on vs off, as episodes/s and
 * as the process's CPU time per episode (bench/telemetry-cpu.ts: fixed episode counts, alternating
 * runs, medians), the steadier figure on a shared machine.
 *
 *   node --import tsx bench/inspection.ts [--quick] [--seconds 6] [--inflight 500]
 */
import { readdir } from 'node:fs/promises';
import { QUICK, arg, log, main, round, row, skipped, type BenchRow } from './lib/common.ts';
import { telemetryCpu } from './telemetry-cpu.ts';

const SECONDS = arg('seconds', QUICK ? 3 : 8);
const INFLIGHT = arg('inflight', 500);

type Durable = typeof import('./episodes.ts').durableEpisodes;

/**
 * Episodes/s, and CPU time per episode, with tracing (spans built and batched to an exporter that
 * discards them) and metrics on, vs off.
 */
async function telemetryOverhead(durableEpisodes: Durable): Promise<BenchRow[]> {
  const { HandoffMetrics, setupTracing, telemetryHook } = await import('../src/telemetry/index.ts');
  let off = 0;
  let on = 0;
  let spans = 0;
  for (let round_ = 0; round_ < 2; round_++) {
    off += (await durableEpisodes({ inflight: INFLIGHT, seconds: SECONDS })).episodesPerSecond;
    const tracing = setupTracing({
      exporter: {
        export: (batch, done) => {
          spans += batch.length;
          done({ code: 0 });
        },
        shutdown: async () => undefined,
      },
    })!;
    const metrics = new HandoffMetrics();
    on += (
      await durableEpisodes({
        inflight: INFLIGHT,
        seconds: SECONDS,
        runtime: { telemetry: telemetryHook(tracing, metrics) },
        attach: (rt) => (metrics.observe(rt), () => undefined),
      })
    ).episodesPerSecond;
    await tracing.shutdown();
    await metrics.shutdown();
  }
  log(`telemetry: off ${round(off / 2)}/s, on ${round(on / 2)}/s · ${spans} spans exported`);
  const episodes = QUICK ? 1000 : 4000;
  const rounds = QUICK ? 3 : 5;
  const cpu = await telemetryCpu({ episodes, rounds, inflight: INFLIGHT });
  log(`telemetry CPU: off ${round(cpu.offUs)} µs/episode, on ${round(cpu.onUs)} µs/episode`);
  return [
    row(
      `telemetry overhead: episodes/s with tracing and metrics on (${INFLIGHT} in flight)`,
      'episodes/s',
      round(on / 2),
      { name: 'the same with telemetry off', value: round(off / 2) },
      { note: `overhead ${round((1 - on / off) * 100, 1)}%; ${spans} spans exported; wall clock, noisy when shared` },
    ),
    row(
      `telemetry overhead: CPU time per episode with tracing and metrics on (${INFLIGHT} in flight)`,
      'µs/episode',
      round(cpu.onUs),
      { name: 'the same with telemetry off', value: round(cpu.offUs) },
      {
        better: 'lower',
        target: 'overhead ≤ 5% at the default sampler (ratio ≤ 1.05)',
        note:
          `overhead ${round(cpu.overhead * 100, 1)}%; process CPU (user + system), medians of ${rounds} ` +
          `alternating runs of ${episodes} episodes; ${round(cpu.spansPerEpisode, 1)} spans per episode`,
      },
    ),
  ];
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await main('inspection', async (): Promise<BenchRow[]> => {
    const files = await readdir(new URL('../src/inspect/', import.meta.url)).catch(() => null);
    const name = `inspection overhead: episodes/s with the inspector stream on (${INFLIGHT} in flight)`;
    const { durableEpisodes } = await import('./episodes.ts');
    const telemetry = await telemetryOverhead(durableEpisodes);
    if (!files)
      return [
        skipped(name, 'episodes/s', 'src/inspect does not exist yet (inspector issue)', 'overhead < 10%'),
        ...telemetry,
      ];
    if (!files.includes('stream.ts'))
      return [
        skipped(name, 'episodes/s', 'src/inspect has no stream.ts (InspectionStream) yet', 'overhead < 10%'),
        ...telemetry,
      ];
    const { InspectionStream } = await import('../src/inspect/stream.ts');
    const { benchModel } = await import('./lib/workload.ts');
    const model = await benchModel();
    let off = 0;
    let on = 0;
    let dropped = 0;
    let published = 0;
    for (let round_ = 0; round_ < 2; round_++) {
      off += (await durableEpisodes({ inflight: INFLIGHT, seconds: SECONDS })).episodesPerSecond;
      const stream = new InspectionStream({ models: [model] });
      on += (
        await durableEpisodes({
          inflight: INFLIGHT,
          seconds: SECONDS,
          runtime: { inspect: stream.inspect },
          attach: (rt) => {
            stream.attach(rt.transport);
            return () => stream.close();
          },
        })
      ).episodesPerSecond;
      dropped += stream.stats.dropped;
      published += stream.stats.published;
    }
    log(
      `inspection: off ${round(off / 2)}/s, on ${round(on / 2)}/s · records published ${published}, dropped ${dropped}`,
    );
    const overhead = 1 - on / off;
    return [
      row(
        name,
        'episodes/s',
        round(on / 2),
        { name: 'the same with the stream off', value: round(off / 2) },
        {
          target: 'overhead < 10% (ratio ≥ 0.9)',
          note: `overhead ${round(overhead * 100, 1)}%; ${published} records published, ${dropped} dropped by the stream's budget`,
        },
      ),
      ...telemetry,
    ];
  });
}
