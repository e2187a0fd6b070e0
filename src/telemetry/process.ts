import type { Runtime, RuntimeOptions } from '../runtime/runtime.ts';
import { telemetryHook } from './index.ts';
import { traceMixin } from './logging.ts';
import { HandoffMetrics } from './metrics.ts';
import { otlpEndpoint, setupTracing, type EpisodeTracing } from './tracing.ts';

/**
 * The telemetry of one long-running process (`handoff start`, `start --nats`, `demo`, `simulate`),
 * switched on by configuration only:
 *
 * - traces over OTLP/HTTP when the standard `OTEL_EXPORTER_OTLP_ENDPOINT` (or
 *   `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set; the exporter and SDK read the other `OTEL_*`
 *   variables themselves (headers, timeout, `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`,
 *   `OTEL_TRACES_SAMPLER` and its argument);
 * - metrics in the Prometheus text format on `--metrics <host:port>` (off by default).
 *
 * With neither, nothing is set up and the runtime pays nothing.
 */
export interface ProcessTelemetryOptions {
  /** `--metrics`: `host:port`, `:port` or `port` (port 0: any free port). @default undefined (no listener) */
  metrics?: string | undefined;
  /** `service.name` when `OTEL_SERVICE_NAME` is not set. @default 'handoff' */
  serviceName?: string;
  env?: NodeJS.ProcessEnv;
}

export class ProcessTelemetry {
  readonly tracing: EpisodeTracing | undefined;
  readonly metrics: HandoffMetrics | undefined;
  #clock: { now(): number } = { now: () => Date.now() };
  #url: string | undefined;

  constructor(opts: ProcessTelemetryOptions = {}) {
    const env = opts.env ?? process.env;
    const serviceName = opts.serviceName ?? 'handoff';
    // Registered globally, so the spans other parts start with the OpenTelemetry API (NATS messaging,
    // LLM planner calls) are exported too, in the episode's trace.
    this.tracing = otlpEndpoint(env)
      ? setupTracing({ serviceName, register: true, now: () => this.#clock.now() })
      : undefined;
    const listen = opts.metrics === undefined ? undefined : parseListen(opts.metrics);
    this.metrics = listen
      ? new HandoffMetrics({ prometheusPort: listen.port, prometheusHost: listen.host, serviceName })
      : undefined;
  }

  get enabled(): boolean {
    return !!(this.tracing || this.metrics);
  }

  /** The `RuntimeOptions.telemetry` hook, or undefined when nothing is on. */
  get hook(): RuntimeOptions['telemetry'] {
    return telemetryHook(this.tracing, this.metrics);
  }

  /** A pino mixin putting each record's trace and span ids on it (the episode's stored trace when known). */
  logMixin(): (merge: object) => Record<string, string> {
    const tracing = this.tracing;
    return traceMixin(tracing ? (id) => tracing.traceOf(id) : undefined);
  }

  /** Follows a runtime: its clock for the reviewer spans, its counters for the gauges, its open cases for the queue depth. */
  async attach(rt: Runtime): Promise<void> {
    this.#clock = rt.clock;
    if (this.metrics) {
      this.metrics.observe(rt);
      await this.metrics.seed(rt);
    }
  }

  /** Starts the Prometheus listener (if configured); resolves with its URL. */
  async start(): Promise<string | undefined> {
    if (this.metrics && !this.#url) this.#url = await this.metrics.start();
    return this.#url;
  }

  get metricsUrl(): string | undefined {
    return this.#url;
  }

  /** Exports what is buffered and stops. */
  async shutdown(): Promise<void> {
    await Promise.allSettled([this.tracing?.shutdown(), this.metrics?.shutdown()]);
  }
}

/** `host:port`, `[v6]:port`, `:port` or `port` → host and port (host 127.0.0.1 unless given). */
export function parseListen(spec: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*))?:?(\d+)$/.exec(spec.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || !Number.isInteger(port) || port < 0 || port > 65_535)
    throw new Error(`--metrics must be host:port, :port or port (0-65535), got '${spec}'`);
  return { host: m[1] ?? (m[2] || '127.0.0.1'), port };
}
