import { createHash } from 'node:crypto';
import { context, SpanKind, SpanStatusCode, trace, TraceFlags, type Span } from '@opentelemetry/api';
import { parseTraceparent } from '../contracts/envelope.ts';
import { randomHex } from '../base/random-hex.ts';

/**
 * W3C trace context over NATS. An episode is one trace: its trace id is derived from the namespace
 * and the episode id, so every party (the driver that submits it, the node that runs it, the node
 * that takes it over, the reviewers that act on its case) puts its spans in the same trace without
 * having to pass the id around; each hop sends a `traceparent` header with its own span id.
 */

/** Trace ids of recent episodes: a node stamps every transition notice of an episode with it. */
const traceIds = new Map<string, string>();
const MAX_TRACE_IDS = 4096;

export function episodeTraceId(namespace: string, episodeId: string): string {
  const key = `${namespace}\u0000${episodeId}`;
  let id = traceIds.get(key);
  if (id === undefined) {
    id = createHash('sha256').update(`handoff-trace\u0000${key}`).digest('hex').slice(0, 32);
    if (traceIds.size >= MAX_TRACE_IDS) traceIds.delete(traceIds.keys().next().value!);
    traceIds.set(key, id);
  }
  return id;
}

export function newSpanId(): string {
  return randomHex(8);
}

/** A traceparent in the episode's trace with a new span id. */
export function episodeTraceparent(namespace: string, episodeId: string): string {
  return `00-${episodeTraceId(namespace, episodeId)}-${newSpanId()}-01`;
}

export { parseTraceparent };

/** The traceparent of a child hop: same trace, new span id. */
export function childTraceparent(parent: string | undefined, fallback: () => string): string {
  const p = parseTraceparent(parent);
  return p ? `00-${p.traceId}-${newSpanId()}-${p.sampled ? '01' : '00'}` : fallback();
}

/**
 * Runs `fn` in an OpenTelemetry span whose parent is the incoming `traceparent` (a no-op when no
 * tracer provider is registered). Returns `fn`'s result; the span ends when it settles. The span
 * follows the messaging semantic conventions for processing a NATS message: kind CONSUMER,
 * `messaging.system` = `nats`, `messaging.operation.type` = `process`, `messaging.destination.name`
 * when the subject is given; a failure sets status ERROR with `error.type` (the error's code or name).
 */
export async function withSpan<T>(
  name: string,
  traceparent: string | undefined,
  attributes: Record<string, string | number>,
  fn: (span: Span) => Promise<T>,
  subject?: string,
): Promise<T> {
  const p = parseTraceparent(traceparent);
  const parent = p
    ? trace.setSpanContext(context.active(), {
        traceId: p.traceId,
        spanId: p.spanId,
        traceFlags: p.sampled ? TraceFlags.SAMPLED : TraceFlags.NONE,
        isRemote: true,
      })
    : context.active();
  const span = trace.getTracer('handoff-cluster').startSpan(
    name,
    {
      kind: SpanKind.CONSUMER,
      attributes: {
        'messaging.system': 'nats',
        'messaging.operation.type': 'process',
        ...(subject ? { 'messaging.destination.name': subject } : {}),
        ...attributes,
      },
    },
    parent,
  );
  try {
    return await context.with(trace.setSpan(parent, span), () => fn(span));
  } catch (err) {
    const e = err as Error & { code?: string | number };
    span.recordException(e);
    span.setStatus({ code: SpanStatusCode.ERROR, message: e?.message ?? String(err) });
    span.setAttribute('error.type', typeof e?.code === 'string' ? e.code : (e?.name ?? 'Error'));
    throw err;
  } finally {
    span.end();
  }
}
