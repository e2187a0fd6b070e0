/**
 * Issue 21, item 1: the spans of work that arrives over NATS (a start from the work stream, a
 * reviewer command routed to the owning node) follow the messaging semantic conventions: kind
 * CONSUMER, `messaging.system` nats, `messaging.operation.type` process, the subject; they continue
 * the message's `traceparent`; a failure is status ERROR with `error.type`. Real SDK, in-memory export.
 */
import { SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { InMemorySpanExporter, NodeTracerProvider, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HandoffError } from '../../src/contracts/errors.ts';
import { withSpan } from '../../src/cluster/trace.ts';

const exporter = new InMemorySpanExporter();
const provider = new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });

describe('NATS messaging spans', () => {
  beforeAll(() => {
    trace.setGlobalTracerProvider(provider);
  });
  afterAll(async () => {
    trace.disable();
    await provider.shutdown();
  });

  it('continue the message traceparent as CONSUMER spans with the messaging attributes', async () => {
    const tp = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
    const got = await withSpan(
      'handoff.episode.start',
      tp,
      { 'handoff.episode': 'ep-1' },
      async () => 42,
      'handoff.ns.work.3',
    );
    expect(got).toBe(42);
    const s = exporter.getFinishedSpans().at(-1)!;
    expect(s.kind).toBe(SpanKind.CONSUMER);
    expect(s.spanContext().traceId).toBe('0af7651916cd43dd8448eb211c80319c');
    expect(s.parentSpanContext?.spanId).toBe('b7ad6b7169203331');
    expect(s.attributes).toMatchObject({
      'messaging.system': 'nats',
      'messaging.operation.type': 'process',
      'messaging.destination.name': 'handoff.ns.work.3',
      'handoff.episode': 'ep-1',
    });
    expect(s.status.code).not.toBe(SpanStatusCode.ERROR);
  });

  it('a failure is status ERROR with error.type (the typed code), and the error still reaches the caller', async () => {
    await expect(
      withSpan('handoff.command', undefined, { 'handoff.case': 'ep-1.case-1' }, async () => {
        throw new HandoffError('case.not_claimant', 'only the claimant may approve');
      }),
    ).rejects.toThrow('only the claimant may approve');
    const s = exporter.getFinishedSpans().at(-1)!;
    expect(s.name).toBe('handoff.command');
    expect(s.status).toMatchObject({ code: SpanStatusCode.ERROR, message: 'only the claimant may approve' });
    expect(s.attributes['error.type']).toBe('case.not_claimant');
    expect(s.events.some((e) => e.name === 'exception')).toBe(true);
  });
});
