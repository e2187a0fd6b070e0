import { randomFillSync } from 'node:crypto';
import {
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  TraceFlags,
  trace,
  type Attributes,
  type HrTime,
  type Link,
  type SpanContext,
  type SpanStatus,
} from '@opentelemetry/api';
import type { Resource } from '@opentelemetry/resources';
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  ParentBasedSampler,
  SamplingDecision,
  TraceIdRatioBasedSampler,
  type ReadableSpan,
  type Sampler,
  type TimedEvent,
} from '@opentelemetry/sdk-trace-node';

type InstrumentationScope = ReadableSpan['instrumentationScope'];

/**
 * The spans Handoff builds from the runtime's transitions, without the SDK's per-span machinery: each
 * is created finished (start and end known), so it needs none of a live span's state (no clock
 * anchors, limits, processor or context, no per-span arrays for links, events and times). What one
 * holds until the batch is exported is its name, ids, two times, its attributes and shared constants;
 * the times, duration and span context are computed when the exporter reads them. Retained bytes per
 * span are what made tracing cost in garbage collection (docs/observability.md, BENCHMARKS.md).
 */
export class HandoffSpan implements ReadableSpan {
  readonly name: string;
  readonly kind: SpanKind;
  readonly traceId: string;
  readonly spanId: string;
  readonly parentSpanContext: SpanContext | undefined;
  readonly startMs: number;
  readonly endMs: number;
  readonly attributes: Attributes;
  readonly status: SpanStatus;
  readonly resource: Resource;
  readonly events: TimedEvent[];

  constructor(
    name: string,
    kind: SpanKind,
    traceId: string,
    spanId: string,
    parent: SpanContext | undefined,
    startMs: number,
    endMs: number,
    attributes: Attributes,
    status: SpanStatus,
    resource: Resource,
    events: TimedEvent[] = NONE,
  ) {
    this.name = name;
    this.kind = kind;
    this.traceId = traceId;
    this.spanId = spanId;
    this.parentSpanContext = parent;
    this.startMs = startMs;
    this.endMs = endMs;
    this.attributes = attributes;
    this.status = status;
    this.resource = resource;
    this.events = events;
  }

  spanContext(): SpanContext {
    return { traceId: this.traceId, spanId: this.spanId, traceFlags: TraceFlags.SAMPLED };
  }
  get startTime(): HrTime {
    return hrTime(this.startMs);
  }
  get endTime(): HrTime {
    return hrTime(this.endMs);
  }
  get duration(): HrTime {
    return hrTime(this.endMs - this.startMs);
  }
  get ended(): boolean {
    return true;
  }
  get links(): Link[] {
    return NONE as unknown as Link[];
  }
  get instrumentationScope(): InstrumentationScope {
    return SCOPE;
  }
  get droppedAttributesCount(): number {
    return 0;
  }
  get droppedEventsCount(): number {
    return 0;
  }
  get droppedLinksCount(): number {
    return 0;
  }
}

const NONE: TimedEvent[] = Object.freeze([]) as unknown as TimedEvent[];
const SCOPE: InstrumentationScope = Object.freeze({ name: 'handoff' });
export const STATUS_UNSET: SpanStatus = Object.freeze({ code: SpanStatusCode.UNSET });
export const STATUS_OK: SpanStatus = Object.freeze({ code: SpanStatusCode.OK });

/** Milliseconds since the epoch (the runtime's clock) as OpenTelemetry's [seconds, nanoseconds]. */
export function hrTime(ms: number): HrTime {
  const s = Math.floor(ms / 1000);
  return [s, Math.round((ms - s * 1000) * 1e6)];
}

/** The span context of a parent, for the spans under it (one object shared by all of them). */
export function parentContext(traceId: string, spanId: string, isRemote = false): SpanContext {
  return isRemote
    ? { traceId, spanId, traceFlags: TraceFlags.SAMPLED, isRemote: true }
    : { traceId, spanId, traceFlags: TraceFlags.SAMPLED };
}

/** Random 8-byte span ids, hex, from a pool refilled 512 ids at a time (one system call per pool). */
export class SpanIds {
  #pool = Buffer.allocUnsafe(4096);
  #at = this.#pool.length;

  next(): string {
    for (;;) {
      if (this.#at >= this.#pool.length) {
        randomFillSync(this.#pool);
        this.#at = 0;
      }
      const id = this.#pool.toString('hex', this.#at, this.#at + 8);
      this.#at += 8;
      if (id !== '0000000000000000') return id;
    }
  }
}

/**
 * The sampler the environment asks for (`OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG`), as the
 * SDK builds it for its own tracers: parent-based always-on unless said otherwise.
 */
export function samplerFromEnv(env: NodeJS.ProcessEnv = process.env): Sampler {
  const name = (env.OTEL_TRACES_SAMPLER ?? '').trim().toLowerCase() || 'parentbased_always_on';
  const ratio = (): number => {
    const raw = (env.OTEL_TRACES_SAMPLER_ARG ?? '').trim();
    const p = raw === '' ? 1 : Number(raw);
    return Number.isFinite(p) && p >= 0 && p <= 1 ? p : 1;
  };
  switch (name) {
    case 'always_on':
      return new AlwaysOnSampler();
    case 'always_off':
      return new AlwaysOffSampler();
    case 'traceidratio':
      return new TraceIdRatioBasedSampler(ratio());
    case 'parentbased_always_off':
      return new ParentBasedSampler({ root: new AlwaysOffSampler() });
    case 'parentbased_traceidratio':
      return new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(ratio()) });
    default:
      return new ParentBasedSampler({ root: new AlwaysOnSampler() });
  }
}

/**
 * One sampling decision for an episode's whole trace: the decision for its root span (a child of the
 * caller's span when the episode continued a `traceparent`, with that span's sampled flag; else a
 * root). Every span of the episode and of its review cases follows it; a ratio sampler decides from
 * the trace id alone, so every node and every case of the episode decides the same.
 */
export function sampleTrace(
  sampler: Sampler,
  traceId: string,
  parent: { spanId: string; sampled: boolean } | undefined,
): boolean {
  const ctx = parent
    ? trace.setSpanContext(ROOT_CONTEXT, {
        traceId,
        spanId: parent.spanId,
        traceFlags: parent.sampled ? TraceFlags.SAMPLED : TraceFlags.NONE,
        isRemote: true,
      })
    : ROOT_CONTEXT;
  return (
    sampler.shouldSample(ctx, traceId, 'episode', SpanKind.INTERNAL, {}, []).decision ===
    SamplingDecision.RECORD_AND_SAMPLED
  );
}
