/**
 * Observability: OpenTelemetry traces (one trace per episode, spans per state and per review step),
 * HITL metrics (with an optional Prometheus endpoint), and trace ids on log records. See
 * docs/observability.md.
 *
 * ```ts
 * const tracing = setupTracing({ now: () => clock.now() });      // undefined unless OTLP is configured
 * const metrics = new HandoffMetrics({ prometheusPort: 9464 });
 * const rt = await Runtime.open({ ...opts, telemetry: telemetryHook(tracing, metrics) });
 * metrics.observe(rt);
 * await metrics.start();
 * ```
 */
import type { RuntimeOptions, TransitionTelemetry } from '../runtime/runtime.ts';

export { caseSpanIdFor, episodeOf, episodeSpanIdFor, traceIdFor, traceparentFor } from './ids.ts';
export { traceMixin } from './logging.ts';
export { HandoffMetrics, registerGlobalMeterProvider, type HitlSnapshot, type MetricsOptions } from './metrics.ts';
export { samplerFromEnv } from './spans.ts';
export { EpisodeTracing, otlpEndpoint, setupTracing, type TracingOptions } from './tracing.ts';

/** One `RuntimeOptions.telemetry` hook for whichever of tracing and metrics are on (undefined if none). */
export function telemetryHook(
  ...sinks: ({ onTransition: (t: TransitionTelemetry) => void } | undefined | null)[]
): RuntimeOptions['telemetry'] {
  const on = sinks.filter((s): s is { onTransition: (t: TransitionTelemetry) => void } => !!s);
  if (on.length === 0) return undefined;
  if (on.length === 1) return on[0]!.onTransition;
  return (t) => {
    for (const s of on) s.onTransition(t);
  };
}
