/**
 * Observability: one episode that crosses a review yields one trace whose spans cover every state of
 * the episode and of its case, and the reviewer's commands, with the right parent/child structure
 * (SDK in-memory exporter); OTLP export happens only when an endpoint is configured; log records
 * carry the episode's trace id; the HITL metrics add up and are served to Prometheus.
 */
import { createServer } from 'node:http';
import { InMemorySpanExporter, type ReadableSpan } from '@opentelemetry/sdk-trace-node';
import pino from 'pino';
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { SpanStatusCode } from '@opentelemetry/api';
import {
  HandoffMetrics,
  episodeSpanIdFor,
  samplerFromEnv,
  setupTracing,
  telemetryHook,
  traceIdFor,
  traceMixin,
  type EpisodeTracing,
} from '../../src/telemetry/index.ts';
import {
  LEAD,
  agentCtx,
  autoSignals,
  cleanup,
  closeEnv,
  cmd,
  drive,
  driveUntilDone,
  journalOf,
  openEnv,
  reviewSignals,
  scanSignals,
  type Env,
} from './helpers.ts';

afterEach(cleanup);

async function reviewedEpisode(env: Env, episodeId: string): Promise<string> {
  const [c] = await reviewSignals();
  await env.rt.startEpisode('refunds', c!.signal, { episodeId });
  const caseId = `${episodeId}.case-1`;
  expect(
    await drive(env.rt, env.clock, async () => agentCtx(await env.rt.get(episodeId)).caseIds.includes(caseId)),
  ).toBe(true);
  env.clock.advance(60_000);
  await env.rt.command(cmd('claim', caseId, LEAD));
  env.clock.advance(120_000);
  await env.rt.command(cmd('approve', caseId, LEAD));
  const view = await driveUntilDone(env, episodeId);
  expect(view.state).toBe('done');
  return caseId;
}

describe('tracing', () => {
  it('one episode across a review is one trace: a span per state, the case, the gate and each reviewer command, correctly nested', async () => {
    const exporter = new InMemorySpanExporter();
    let env: Env | undefined;
    const tracing = setupTracing({ exporter, simple: true, now: () => env!.clock.now() })!;
    env = await openEnv({ runtime: { telemetry: tracing.onTransition } });
    const episodeId = 'ep-traced';
    const caseId = await reviewedEpisode(env, episodeId);
    await tracing.forceFlush();
    const spans = exporter.getFinishedSpans();

    // One trace, the episode's own (random, fixed in its snapshot); one root.
    const stored = agentCtx(await env.rt.get(episodeId)).trace!;
    expect(stored.traceId).toMatch(/^[0-9a-f]{32}$/);
    expect(stored.traceId).not.toBe(traceIdFor(episodeId));
    expect(new Set(spans.map((s) => s.spanContext().traceId))).toEqual(new Set([stored.traceId]));
    const roots = spans.filter((s) => !s.parentSpanContext);
    expect(roots.map((s) => s.name)).toEqual(['episode']);
    const root = roots[0]!;
    expect(root.spanContext().spanId).toBe(stored.spanId);
    expect(root.status.code).toBe(SpanStatusCode.OK);
    expect(root.attributes['handoff.episode.outcome']).toBe('approved');
    const byId = new Map(spans.map((s) => [s.spanContext().spanId, s]));
    const parentOf = (s: ReadableSpan) => byId.get(s.parentSpanContext!.spanId);

    // Every state the agent was in (from its journal) has a span under the root.
    const agentStates = new Set((await journalOf(env.rt, episodeId)).map((j) => j.state));
    expect([...agentStates]).toEqual(
      expect.arrayContaining(['perceiving', 'planning', 'awaitingReview', 'acting', 'done']),
    );
    for (const state of agentStates) {
      const s = spans.filter((x) => x.name === `agent ${state}`);
      expect(s.length, `agent ${state}`).toBeGreaterThan(0);
      for (const x of s) expect(parentOf(x)).toBe(root);
    }
    // The agent's state spans tile the episode: each ends where the next begins.
    const agentSpans = spans
      .filter((s) => s.name.startsWith('agent '))
      .sort((a, b) => a.startTime[0] - b.startTime[0] || a.startTime[1] - b.startTime[1]);
    for (let i = 1; i < agentSpans.length; i++) expect(agentSpans[i]!.startTime).toEqual(agentSpans[i - 1]!.endTime);
    expect(agentSpans[0]!.startTime).toEqual(root.startTime);
    expect(agentSpans.at(-1)!.endTime).toEqual(root.endTime);

    // The gate, under the root.
    const gate = spans.find((s) => s.name === 'gate')!;
    expect(parentOf(gate)).toBe(root);
    expect(gate.attributes['handoff.gate.outcome']).toBe('review');

    // The review case: under the root, with every state of the case under it.
    const review = spans.filter((s) => s.name === 'review case');
    expect(review).toHaveLength(1);
    expect(parentOf(review[0]!)).toBe(root);
    expect(review[0]!.attributes['handoff.case.id']).toBe(caseId);
    expect(review[0]!.attributes['handoff.case.outcome']).toBe('approved');
    const caseStates = new Set((await journalOf(env.rt, caseId)).map((j) => j.state));
    expect([...caseStates]).toEqual(['queued', 'claimed', 'approved']);
    for (const state of caseStates) {
      const s = spans.filter((x) => x.name === `case ${state}`);
      expect(s.length, `case ${state}`).toBe(1);
      expect(parentOf(s[0]!)).toBe(review[0]);
    }
    // The case was queued for the minute before the claim and claimed for the two minutes before the approval.
    const dur = (s: ReadableSpan) => s.duration[0] * 1000 + s.duration[1] / 1e6;
    expect(dur(spans.find((s) => s.name === 'case queued')!)).toBe(60_000);
    expect(dur(spans.find((s) => s.name === 'case claimed')!)).toBe(120_000);

    // The reviewer's actions: each under the state of the case it acted on, with who did it.
    const claim = spans.find((s) => s.name === 'reviewer claim')!;
    const approve = spans.find((s) => s.name === 'reviewer approve')!;
    expect(parentOf(claim)!.name).toBe('case queued');
    expect(parentOf(approve)!.name).toBe('case claimed');
    for (const s of [claim, approve]) {
      expect(s.attributes['handoff.reviewer.id']).toBe(LEAD.id);
      expect(String(s.attributes['handoff.command.id'])).toMatch(/^cmd-/);
    }
    // Nothing dangles: every parent is in the trace.
    for (const s of spans)
      if (s.parentSpanContext) expect(byId.has(s.parentSpanContext.spanId), `${s.name}'s parent`).toBe(true);
    await tracing.shutdown();
  });

  it('exports over OTLP/HTTP only when OTEL_EXPORTER_OTLP_ENDPOINT is set', async () => {
    const saved = { a: process.env.OTEL_EXPORTER_OTLP_ENDPOINT, b: process.env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT };
    delete process.env.OTEL_EXPORTER_OTLP_ENDPOINT;
    delete process.env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT;
    expect(setupTracing()).toBeUndefined();
    const received: { path: string; bytes: number }[] = [];
    const server = createServer((req, res) => {
      let bytes = 0;
      req.on('data', (d: Buffer) => (bytes += d.length));
      req.on('end', () => {
        received.push({ path: req.url ?? '', bytes });
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    let tracing: EpisodeTracing | undefined;
    try {
      process.env.OTEL_EXPORTER_OTLP_ENDPOINT = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
      tracing = setupTracing();
      expect(tracing).toBeDefined();
      const env = await openEnv({ runtime: { telemetry: tracing!.onTransition } });
      const [c] = await autoSignals();
      await env.rt.startEpisode('refunds', c!.signal, { episodeId: 'ep-otlp' });
      expect((await driveUntilDone(env, 'ep-otlp')).state).toBe('done');
      await tracing!.shutdown();
      expect(received.length).toBeGreaterThan(0);
      expect(received[0]!.path).toBe('/v1/traces');
      expect(received.reduce((a, r) => a + r.bytes, 0)).toBeGreaterThan(200);
    } finally {
      if (saved.a === undefined) delete process.env.OTEL_EXPORTER_OTLP_ENDPOINT;
      else process.env.OTEL_EXPORTER_OTLP_ENDPOINT = saved.a;
      if (saved.b !== undefined) process.env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT = saved.b;
      await new Promise((r) => server.close(r));
    }
  });

  it('trace ids are random per episode (two deployments’ ep-1 never share one); a traceparent is continued; failed and denied episodes end in ERROR with the cause', async () => {
    const exporter = new InMemorySpanExporter();
    let env: Env | undefined;
    const tracing = setupTracing({ exporter, simple: true, now: () => env!.clock.now() })!;
    env = await openEnv({ runtime: { telemetry: tracing.onTransition } });
    const other = await openEnv();
    const [auto] = await autoSignals();
    await env.rt.startEpisode('refunds', auto!.signal, { episodeId: 'ep-1' });
    await other.rt.startEpisode('refunds', auto!.signal, { episodeId: 'ep-1' });
    expect(agentCtx(await env.rt.get('ep-1')).trace!.traceId).not.toBe(
      agentCtx(await other.rt.get('ep-1')).trace!.traceId,
    );
    // A caller's trace context, carried with the start: the episode is a child of the caller's span.
    const upstream = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    await env.rt.startEpisode('refunds', auto!.signal, { episodeId: 'ep-joined', traceparent: upstream });
    expect((await driveUntilDone(env, 'ep-joined')).state).toBe('done');
    // ... or carried by the signal itself.
    await env.rt.startEpisode(
      'refunds',
      { ...(auto!.signal as object), traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' },
      { episodeId: 'ep-carried' },
    );
    expect((await driveUntilDone(env, 'ep-carried')).state).toBe('done');
    // A denied episode (the synthesizer makes some the gate refuses).
    const denied = (await scanSignals()).find((c) => c.decision.outcome === 'deny');
    expect(denied, 'a synthesized signal the gate denies').toBeDefined();
    await env.rt.startEpisode('refunds', denied!.signal, { episodeId: 'ep-denied' });
    expect(agentCtx(await driveUntilDone(env, 'ep-denied')).outcome).toBe('denied');
    await tracing.forceFlush();
    const roots = new Map(
      exporter
        .getFinishedSpans()
        .filter((s) => s.name === 'episode')
        .map((s) => [s.attributes['handoff.episode.id'], s]),
    );
    const joined = roots.get('ep-joined')!;
    expect(joined.spanContext().traceId).toBe('4bf92f3577b34da6a3ce929d0e0e4736');
    expect(joined.parentSpanContext?.spanId).toBe('00f067aa0ba902b7');
    expect(roots.get('ep-carried')!.spanContext().traceId).toBe('0af7651916cd43dd8448eb211c80319c');
    const deniedSpan = roots.get('ep-denied')!;
    expect(deniedSpan.status.code).toBe(SpanStatusCode.ERROR);
    expect(deniedSpan.status.message).toMatch(/^denied by the gate: /);
    await closeEnv(other);
  });

  it('one sampling decision per trace: a caller’s unsampled traceparent, or OTEL_TRACES_SAMPLER, drops the whole episode, case included', async () => {
    const exporter = new InMemorySpanExporter();
    let env: Env | undefined;
    // The default sampler (parent-based always-on): a caller's sampled flag decides for its episodes.
    const tracing = setupTracing({ exporter, simple: true, now: () => env!.clock.now() })!;
    env = await openEnv({ runtime: { telemetry: tracing.onTransition } });
    const [auto] = await autoSignals();
    const [review] = await reviewSignals();
    const tp = (flags: string) => `00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-${flags}`;
    await env.rt.startEpisode('refunds', auto!.signal, { episodeId: 'ep-unsampled', traceparent: tp('00') });
    await env.rt.startEpisode('refunds', review!.signal, { episodeId: 'ep-unsampled-review', traceparent: tp('00') });
    await env.rt.startEpisode('refunds', auto!.signal, { episodeId: 'ep-sampled', traceparent: tp('01') });
    expect((await driveUntilDone(env, 'ep-unsampled')).state).toBe('done');
    expect((await driveUntilDone(env, 'ep-sampled')).state).toBe('done');
    const caseId = 'ep-unsampled-review.case-1';
    expect(
      await drive(env.rt, env.clock, async () =>
        agentCtx(await env!.rt.get('ep-unsampled-review')).caseIds.includes(caseId),
      ),
    ).toBe(true);
    await env.rt.command(cmd('claim', caseId, LEAD));
    await env.rt.command(cmd('approve', caseId, LEAD));
    expect((await driveUntilDone(env, 'ep-unsampled-review')).state).toBe('done');
    await tracing.forceFlush();
    const episodes = new Set(exporter.getFinishedSpans().map((s) => s.attributes['handoff.episode.id']));
    expect(episodes).toEqual(new Set(['ep-sampled']));
    await tracing.shutdown();

    // OTEL_TRACES_SAMPLER=always_off: nothing; traceidratio 1: everything.
    expect(samplerFromEnv({ OTEL_TRACES_SAMPLER: 'always_off' }).toString()).toBe('AlwaysOffSampler');
    expect(samplerFromEnv({}).toString()).toMatch(/^ParentBased\{root=AlwaysOnSampler/);
    expect(samplerFromEnv({ OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: '0.25' }).toString()).toBe(
      'TraceIdRatioBased{0.25}',
    );
    for (const [sampler, expected] of [
      ['always_off', 0],
      ['traceidratio', 1],
    ] as const) {
      const out = new InMemorySpanExporter();
      const t = setupTracing({
        exporter: out,
        simple: true,
        sampler: samplerFromEnv({ OTEL_TRACES_SAMPLER: sampler, OTEL_TRACES_SAMPLER_ARG: '1' }),
      })!;
      const e = await openEnv({ runtime: { telemetry: t.onTransition } });
      await e.rt.startEpisode('refunds', auto!.signal, { episodeId: `ep-${sampler}` });
      expect((await driveUntilDone(e, `ep-${sampler}`)).state).toBe('done');
      await t.forceFlush();
      expect(out.getFinishedSpans().length > 0 ? 1 : 0, sampler).toBe(expected);
      await t.shutdown();
    }
  });

  it('log records about an actor carry its episode trace id', () => {
    const lines: string[] = [];
    const sink = new Writable({ write: (chunk, _enc, cb) => (lines.push(String(chunk)), cb()) });
    const log = pino({ mixin: traceMixin() }, sink);
    log.error({ actor: 'ep-7.case-2' }, 'actor crashed');
    log.info('no actor here');
    const [a, b] = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(a!.trace_id).toBe(traceIdFor('ep-7'));
    expect(a!.span_id).toBe(episodeSpanIdFor('ep-7'));
    expect(b!.trace_id).toBeUndefined();
  });
});

describe('metrics', () => {
  it('queue depth, MTTA, MTTR, SLA attainment, auto-rate and override rate add up, and Prometheus serves them', async () => {
    const metrics = new HandoffMetrics({ prometheusPort: 0 });
    const env = await openEnv({ runtime: { telemetry: telemetryHook(metrics) } });
    metrics.observe(env.rt);
    const url = await metrics.start();
    try {
      const [auto] = await autoSignals();
      await env.rt.startEpisode('refunds', auto!.signal, { episodeId: 'ep-auto' });
      await driveUntilDone(env, 'ep-auto');
      // One reviewed episode: open → claim after 1 min → approve after 3 min in all.
      await reviewedEpisode(env, 'ep-review');
      let s = metrics.snapshot();
      expect(s.gate).toEqual({ auto: 1, review: 1, deny: 0 });
      expect(s.autoRate).toBe(0.5);
      expect(s.cases).toMatchObject({ opened: 1, approved: 1 });
      expect(s.mttaMs).toBe(60_000);
      expect(s.mttrMs).toBe(180_000);
      expect(s.slaAttainment).toBe(1);
      expect(s.overrideRate).toBe(0);
      expect(s.queueDepth).toEqual({ refunds: 0 });
      // A second case, still open: the queue holds it.
      const [, second] = await reviewSignals();
      await env.rt.startEpisode('refunds', second!.signal, { episodeId: 'ep-open' });
      await drive(env.rt, env.clock, async () => agentCtx(await env.rt.get('ep-open')).caseIds.length > 0);
      s = metrics.snapshot();
      expect(s.queueDepth).toEqual({ refunds: 1 });
      expect(s.restarts).toBe(0);
      expect(s.deadLetters).toBe(0);

      const text = await (await fetch(url!)).text();
      expect(text).toMatch(/handoff_queue_depth\{[^}]*queue="refunds"[^}]*\} 1/);
      const value = (name: string) => Number(new RegExp(`^${name}(\\{[^}]*\\})? (\\S+)$`, 'm').exec(text)?.[2]);
      expect(value('handoff_case_mtta')).toBe(60_000);
      expect(value('handoff_case_mttr')).toBe(180_000);
      expect(value('handoff_gate_auto_rate')).toBeCloseTo(1 / 3);
      expect(value('handoff_case_sla_attainment')).toBe(1);
      expect(value('handoff_review_override_rate')).toBe(0);
      expect(value('handoff_actor_restarts_total')).toBe(0);
      expect(value('handoff_dead_letters_total')).toBe(0);
      expect(text).toMatch(/handoff_case_time_to_resolve_count\{[^}]*outcome="approved"[^}]*\} 1/);
      // In seconds, with buckets that fit review times: 180 s lands in le="300", not only in +Inf.
      expect(text).toMatch(/handoff_case_time_to_resolve_bucket\{[^}]*outcome="approved"[^}]*le="120"[^}]*\} 0/);
      expect(text).toMatch(/handoff_case_time_to_resolve_bucket\{[^}]*outcome="approved"[^}]*le="300"[^}]*\} 1/);
    } finally {
      await metrics.shutdown();
    }
  });
});
