import {
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  TraceFlags,
  trace,
  type Attributes,
  type Context,
  type HrTime,
  type Span,
  type Tracer,
} from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { detectResources, envDetector, resourceFromAttributes } from '@opentelemetry/resources';
import {
  BatchSpanProcessor,
  NodeTracerProvider,
  RandomIdGenerator,
  SimpleSpanProcessor,
  type IdGenerator,
  type SpanExporter,
  type SpanProcessor,
} from '@opentelemetry/sdk-trace-node';
import type { TraceContext } from '../contracts/envelope.ts';
import type { AgentContext } from '../machines/agent.ts';
import type { CaseContext } from '../machines/review-case.ts';
import type { TransitionTelemetry } from '../runtime/runtime.ts';
import { caseSpanIdFor, episodeSpanIdFor, traceIdFor } from './ids.ts';

/**
 * Ids for the spans Handoff derives (an episode's root span, a case's span): taken from a slot set
 * just before the span starts; every other span gets random ids. Spans start synchronously, so the
 * slot cannot leak to another span.
 */
class DerivedIds implements IdGenerator {
  #random = new RandomIdGenerator();
  next: { traceId?: string; spanId: string } | null = null;
  generateTraceId(): string {
    const id = this.next?.traceId;
    if (this.next) this.next = null;
    return id ?? this.#random.generateTraceId();
  }
  generateSpanId(): string {
    // The SDK asks for the span id first, then (for a root span only) the trace id.
    if (!this.next) return this.#random.generateSpanId();
    const id = this.next.spanId;
    if (!this.next.traceId) this.next = null;
    return id;
  }
}

const hr = (ms: number): HrTime => [Math.floor(ms / 1000), Math.round((ms % 1000) * 1e6)];

/** A parent context for a span whose id is derived (it may not have been exported yet). */
function parentCtx(traceId: string, spanId: string): Context {
  return trace.setSpanContext(ROOT_CONTEXT, { traceId, spanId, traceFlags: TraceFlags.SAMPLED });
}

const REVIEWER_COMMANDS = new Set(['claim', 'release', 'renew', 'approve', 'modify', 'reject', 'escalate']);

/** Episode outcomes whose root span has status ERROR: nothing ran as planned, or what ran was undone. */
const FAILED_OUTCOMES = new Set(['failed', 'compensated', 'denied']);

function failureOf(a: AgentContext, outcome: string): string {
  if (outcome === 'denied')
    return `denied by the gate: ${a.decision?.reasons.join('; ') ?? a.decision?.ruleId ?? 'policy'}`;
  const cause = a.error ? `${a.error.code}: ${a.error.message}` : 'unknown cause';
  return outcome === 'compensated' ? `compensated after ${cause}` : cause;
}

export interface TracingOptions {
  /**
   * Where spans go. @default an OTLP/HTTP exporter when `OTEL_EXPORTER_OTLP_ENDPOINT` or
   * `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set; without either, {@link setupTracing} returns
   * undefined and nothing is traced.
   */
  exporter?: SpanExporter;
  /** Export each span as it ends (tests); @default batched */
  simple?: boolean;
  /** `service.name` unless `OTEL_SERVICE_NAME` says otherwise. @default 'handoff' */
  serviceName?: string;
  /** The runtime's clock, for the end of reviewer-command spans (durable acknowledgement). @default Date.now */
  now?: () => number;
  /** Also register the provider as the global one, so other instrumentation joins. @default false */
  register?: boolean;
  /** Actors whose current state is remembered (for the state spans' start), at most. @default 200000 */
  maxTracked?: number;
}

/**
 * Spans for episodes, built from the runtime's durable transitions (`RuntimeOptions.telemetry`):
 *
 * ```
 * episode                          (root; trace id and span id derived from the episode id)
 * ├─ agent perceiving              one span per state the episode was in, start → leave
 * ├─ agent planning
 * ├─ gate                          the gate's decision (outcome, rule, tier, risk, confidence)
 * ├─ agent awaitingReview
 * ├─ review case                   one per review case (span id derived from the case id)
 * │  ├─ case queued
 * │  │  └─ reviewer claim          the reviewer's command: accepted → durable acknowledgement
 * │  ├─ case claimed
 * │  │  └─ reviewer approve
 * │  └─ case approved
 * ├─ agent acting
 * └─ agent done
 * ```
 *
 * Each span is created when it ends, with its real start and end times, so nothing is held open in
 * memory across a long review, and parents are referenced by their derived ids before they end. The
 * root span and a case's span are exported when the episode or the case finishes.
 */
export class EpisodeTracing {
  readonly provider: NodeTracerProvider;
  readonly tracer: Tracer;
  #ids: DerivedIds;
  #now: () => number;
  #max: number;
  /** Current state of each actor seen, and since when; the oldest are forgotten past `maxTracked`. */
  #actors = new Map<string, { state: string; since: number; start: number; traceId: string; scopeId: string }>();

  constructor(provider: NodeTracerProvider, ids: DerivedIds, opts: TracingOptions = {}) {
    this.provider = provider;
    this.#ids = ids;
    this.tracer = provider.getTracer('handoff');
    this.#now = opts.now ?? Date.now;
    this.#max = opts.maxTracked ?? 200_000;
  }

  /** The hook for `RuntimeOptions.telemetry` (bound). */
  readonly onTransition = (t: TransitionTelemetry): void => {
    const isCase = t.kind === 'case';
    const episodeId = isCase ? (t.context as CaseContext).episodeId : t.id;
    const known = this.#actors.get(t.id);
    // The episode's trace is in its snapshot (random, or the signal's); actors stored before it was
    // derive it from the episode id. Remembered with the actor's state between transitions.
    const tc = (t.context as { trace?: TraceContext | null }).trace ?? null;
    const rootId = tc?.spanId ?? episodeSpanIdFor(episodeId);
    const traceId = known?.traceId ?? tc?.traceId ?? traceIdFor(episodeId);
    const scopeId = known?.scopeId ?? (isCase ? caseSpanIdFor(t.id) : rootId);
    const scope = parentCtx(traceId, scopeId);
    const base: Attributes = {
      'handoff.actor.id': t.id,
      'handoff.actor.kind': t.kind,
      'handoff.model': t.model,
      'handoff.episode.id': episodeId,
    };

    if (t.from !== null) {
      // The state just left: from when it was entered (if this node saw it) to now.
      const since = known?.state === t.from ? known.since : t.at;
      const state = this.#span(`${t.kind} ${t.from}`, since, t.at, scope, {
        ...base,
        'handoff.state': t.from,
        'handoff.state.left_on': t.event,
        'handoff.state.next': t.state,
        'handoff.seq': t.seq,
        ...(known?.state === t.from ? {} : { 'handoff.state.start_unknown': true }),
      });
      if (isCase && REVIEWER_COMMANDS.has(t.event)) {
        const reviewer = (t.data.reviewer as { id?: string; roles?: string[] } | undefined) ?? {};
        const end = Math.max(t.at, this.#now());
        this.#span(
          `reviewer ${t.event}`,
          t.at,
          end,
          trace.setSpan(ROOT_CONTEXT, state),
          {
            ...base,
            'handoff.reviewer.id': reviewer.id ?? '',
            'handoff.reviewer.roles': reviewer.roles ?? [],
            'handoff.command.id': typeof t.data.commandId === 'string' ? t.data.commandId : '',
            'handoff.case.tier': (t.context as CaseContext).tier,
          },
          SpanKind.SERVER,
        );
      }
      if (!isCase && t.event === 'plan.done') {
        const d = (t.context as AgentContext).decision;
        if (d)
          this.#span('gate', t.at, t.at, scope, {
            ...base,
            'handoff.gate.outcome': d.outcome,
            'handoff.gate.rule': d.ruleId,
            'handoff.gate.tier': d.tier,
            'handoff.gate.risk': d.riskScore,
            'handoff.gate.confidence': d.confidence,
            'handoff.policy.version': d.policyVersion,
          });
      }
    }
    const start =
      known?.start ?? (isCase ? (t.context as CaseContext).openedAt : ((t.context as AgentContext).startedAt ?? t.at));
    if (t.status === 'active') {
      this.#actors.delete(t.id);
      this.#actors.set(t.id, { state: t.state, since: t.at, start: t.from === null ? t.at : start, traceId, scopeId });
      if (this.#actors.size > this.#max) this.#actors.delete(this.#actors.keys().next().value!);
      return;
    }
    // Finished: the final state, then the actor's own span (the episode's root, or the case's).
    this.#actors.delete(t.id);
    this.#span(`${t.kind} ${t.state}`, t.at, t.at, scope, {
      ...base,
      'handoff.state': t.state,
      'handoff.seq': t.seq,
      'handoff.final': true,
    });
    if (isCase) {
      const c = t.context as CaseContext;
      this.#ids.next = { spanId: scopeId };
      this.#end(
        this.tracer.startSpan(
          'review case',
          {
            startTime: hr(start),
            kind: SpanKind.INTERNAL,
            attributes: {
              ...base,
              'handoff.case.id': t.id,
              'handoff.case.outcome': c.resolution?.outcome ?? t.state,
              'handoff.case.tier': c.tier,
              'handoff.case.escalations': c.escalations,
              'handoff.case.decided_by': c.resolution?.decidedBy ?? [],
              'handoff.case.first_claim_ms': c.firstClaimAt === null ? -1 : c.firstClaimAt - c.openedAt,
            },
          },
          parentCtx(traceId, rootId),
        ),
        t.at,
      );
    } else {
      const a = t.context as AgentContext;
      // Continued from a caller's traceparent: the episode is a child of the caller's span.
      const parent = tc?.parentSpanId ? parentCtx(traceId, tc.parentSpanId) : ROOT_CONTEXT;
      this.#ids.next = tc?.parentSpanId ? { spanId: scopeId } : { traceId, spanId: scopeId };
      const outcome = a.outcome ?? t.state;
      const span = this.tracer.startSpan(
        'episode',
        {
          root: !tc?.parentSpanId,
          startTime: hr(start),
          kind: SpanKind.INTERNAL,
          attributes: {
            ...base,
            'handoff.episode.outcome': outcome,
            'handoff.episode.cases': a.caseIds.length,
            'handoff.episode.actions': a.plan?.actions.length ?? 0,
          },
        },
        parent,
      );
      // Semantic conventions: ERROR with the cause when the episode did not do what it set out to.
      if (FAILED_OUTCOMES.has(outcome)) span.setStatus({ code: SpanStatusCode.ERROR, message: failureOf(a, outcome) });
      else span.setStatus({ code: SpanStatusCode.OK });
      this.#end(span, t.at);
    }
  };

  /** The trace and root span of an actor this node has seen (for log lines), if it is still tracked. */
  traceOf(actorId: string): { traceId: string; spanId: string } | undefined {
    const a = this.#actors.get(actorId);
    return a ? { traceId: a.traceId, spanId: a.scopeId } : undefined;
  }

  #span(
    name: string,
    start: number,
    end: number,
    parent: Context,
    attributes: Attributes,
    kind: SpanKind = SpanKind.INTERNAL,
  ): Span {
    const span = this.tracer.startSpan(name, { startTime: hr(start), kind, attributes }, parent);
    span.end(hr(Math.max(start, end)));
    return span;
  }

  #end(span: Span, at: number): void {
    span.end(hr(at));
  }

  forceFlush(): Promise<void> {
    return this.provider.forceFlush();
  }

  /** Flushes what is buffered and stops exporting. */
  shutdown(): Promise<void> {
    return this.provider.shutdown();
  }
}

/** The OTLP endpoint configured in the environment, if any. */
export function otlpEndpoint(env: NodeJS.ProcessEnv = process.env): string | undefined {
  return env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT || env.OTEL_EXPORTER_OTLP_ENDPOINT || undefined;
}

/**
 * Tracing for a runtime: `setupTracing()` exports over OTLP/HTTP when `OTEL_EXPORTER_OTLP_ENDPOINT`
 * (or `..._TRACES_ENDPOINT`) is set and returns undefined otherwise (nothing traced, no cost); with
 * `exporter` it exports there (tests use the SDK's InMemorySpanExporter). Pass `tracing.onTransition`
 * as `RuntimeOptions.telemetry` (or combine it with metrics via `telemetryHook`).
 */
export function setupTracing(opts: TracingOptions = {}): EpisodeTracing | undefined {
  let exporter = opts.exporter;
  if (!exporter) {
    if (!otlpEndpoint()) return undefined;
    exporter = new OTLPTraceExporter();
  }
  const ids = new DerivedIds();
  const processor: SpanProcessor = opts.simple
    ? new SimpleSpanProcessor(exporter)
    : new BatchSpanProcessor(exporter, { maxQueueSize: 65_536, maxExportBatchSize: 2048 });
  const resource = resourceFromAttributes({ 'service.name': opts.serviceName ?? 'handoff' }).merge(
    detectResources({ detectors: [envDetector] }),
  );
  const provider = new NodeTracerProvider({ idGenerator: ids, spanProcessors: [processor], resource });
  if (opts.register) provider.register();
  return new EpisodeTracing(provider, ids, opts);
}
