import { SpanKind, SpanStatusCode, type Attributes, type SpanContext, type SpanStatus } from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { detectResources, envDetector, resourceFromAttributes, type Resource } from '@opentelemetry/resources';
import {
  BatchSpanProcessor,
  NodeTracerProvider,
  SimpleSpanProcessor,
  type Sampler,
  type SpanExporter,
  type SpanProcessor,
} from '@opentelemetry/sdk-trace-node';
import type { TraceContext } from '../contracts/envelope.ts';
import type { AgentContext } from '../machines/agent.ts';
import type { CaseContext } from '../machines/review-case.ts';
import type { TransitionTelemetry } from '../runtime/runtime.ts';
import { caseSpanIdFor, episodeSpanIdFor, traceIdFor } from './ids.ts';
import { HandoffSpan, STATUS_OK, STATUS_UNSET, SpanIds, parentContext, sampleTrace, samplerFromEnv } from './spans.ts';

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
  /** Which traces are recorded. @default the one `OTEL_TRACES_SAMPLER` names (parent-based always-on) */
  sampler?: Sampler;
}

/** What the tracer remembers of an actor between its transitions. */
interface Tracked {
  state: string;
  since: number;
  start: number;
  traceId: string;
  scopeId: string;
  /** The episode's trace is recorded (one sampling decision per trace). */
  sampled: boolean;
  /** The parent of the actor's state spans (its root or case span), shared by them. */
  scope: SpanContext;
}

/**
 * Spans for episodes, built from the runtime's durable transitions (`RuntimeOptions.telemetry`):
 *
 * ```
 * episode                          (root; trace id and span id from the episode's stored trace)
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
 * memory across a long review, and parents are referenced by their known ids before they end. The
 * root span and a case's span are exported when the episode or the case finishes. Spans are built as
 * finished records ({@link HandoffSpan}) and handed to the span processor directly, not through the
 * SDK's tracer: the same spans at a fraction of the allocation (docs/observability.md).
 */
export class EpisodeTracing {
  /** The SDK provider: other instrumentation (gateway, NATS, LLM planner) traces through it. */
  readonly provider: NodeTracerProvider;
  #processor: SpanProcessor;
  #resource: Resource;
  #sampler: Sampler;
  #ids = new SpanIds();
  #now: () => number;
  #max: number;
  /** Current state of each actor seen, and since when; the oldest are forgotten past `maxTracked`. */
  #actors = new Map<string, Tracked>();
  /** Span names (`agent planning`, `reviewer claim`): one string each, not one per span. */
  #names = new Map<string, Map<string, string>>();

  constructor(
    provider: NodeTracerProvider,
    processor: SpanProcessor,
    resource: Resource,
    sampler: Sampler,
    opts: TracingOptions = {},
  ) {
    this.provider = provider;
    this.#processor = processor;
    this.#resource = resource;
    this.#sampler = sampler;
    this.#now = opts.now ?? Date.now;
    this.#max = opts.maxTracked ?? 200_000;
  }

  /** The hook for `RuntimeOptions.telemetry` (bound). */
  readonly onTransition = (t: TransitionTelemetry): void => {
    const isCase = t.kind === 'case';
    const episodeId = isCase ? (t.context as CaseContext).episodeId : t.id;
    // The episode's trace is in its snapshot (random, or the signal's); actors stored before it was
    // derive it from the episode id. Remembered with the actor's state between transitions.
    const known = this.#actors.get(t.id) ?? this.#first(t, isCase, episodeId);
    const { traceId, scope, sampled } = known;
    const seen = known.state !== '';

    if (sampled && t.from !== null) {
      // The state just left: from when it was entered (if this node saw it) to now.
      const fromSeen = seen && known.state === t.from;
      const since = fromSeen ? known.since : t.at;
      const attributes: Attributes = {
        'handoff.actor.id': t.id,
        'handoff.actor.kind': t.kind,
        'handoff.model': t.model,
        'handoff.episode.id': episodeId,
        'handoff.state': t.from,
        'handoff.state.left_on': t.event,
        'handoff.state.next': t.state,
        'handoff.seq': t.seq,
      };
      if (!fromSeen) attributes['handoff.state.start_unknown'] = true;
      const stateId = this.#ids.next();
      this.#emit(this.#name(t.kind, t.from), traceId, stateId, scope, since, t.at, attributes);
      if (isCase && REVIEWER_COMMANDS.has(t.event)) {
        const reviewer = (t.data.reviewer as { id?: string; roles?: string[] } | undefined) ?? {};
        this.#emit(
          this.#name('reviewer', t.event),
          traceId,
          this.#ids.next(),
          parentContext(traceId, stateId),
          t.at,
          Math.max(t.at, this.#now()),
          {
            'handoff.actor.id': t.id,
            'handoff.actor.kind': t.kind,
            'handoff.model': t.model,
            'handoff.episode.id': episodeId,
            'handoff.reviewer.id': reviewer.id ?? '',
            'handoff.reviewer.roles': reviewer.roles ?? [],
            'handoff.command.id': typeof t.data.commandId === 'string' ? t.data.commandId : '',
            'handoff.case.tier': (t.context as CaseContext).tier,
          },
          STATUS_UNSET,
          SpanKind.SERVER,
        );
      }
      if (!isCase && t.event === 'plan.done') {
        const d = (t.context as AgentContext).decision;
        if (d)
          this.#emit('gate', traceId, this.#ids.next(), scope, t.at, t.at, {
            'handoff.actor.id': t.id,
            'handoff.actor.kind': t.kind,
            'handoff.model': t.model,
            'handoff.episode.id': episodeId,
            'handoff.gate.outcome': d.outcome,
            'handoff.gate.rule': d.ruleId,
            'handoff.gate.tier': d.tier,
            'handoff.gate.risk': d.riskScore,
            'handoff.gate.confidence': d.confidence,
            'handoff.policy.version': d.policyVersion,
          });
      }
    }
    if (t.status === 'active') {
      if (!seen) {
        // First seen: its span starts at its creation, or (seen first after a restart) when it started.
        known.start = t.from === null ? t.at : known.start;
        if (this.#actors.size >= this.#max) this.#actors.delete(this.#actors.keys().next().value!);
      } else this.#actors.delete(t.id);
      known.state = t.state;
      known.since = t.at;
      this.#actors.set(t.id, known);
      return;
    }
    // Finished: the final state, then the actor's own span (the episode's root, or the case's).
    this.#actors.delete(t.id);
    if (!sampled) return;
    const base = {
      'handoff.actor.id': t.id,
      'handoff.actor.kind': t.kind,
      'handoff.model': t.model,
      'handoff.episode.id': episodeId,
    };
    this.#emit(this.#name(t.kind, t.state), traceId, this.#ids.next(), scope, t.at, t.at, {
      ...base,
      'handoff.state': t.state,
      'handoff.seq': t.seq,
      'handoff.final': true,
    });
    if (isCase) {
      const c = t.context as CaseContext;
      const tc = c.trace ?? null;
      const root = parentContext(traceId, tc?.spanId ?? episodeSpanIdFor(episodeId));
      this.#emit('review case', traceId, known.scopeId, root, known.start, t.at, {
        ...base,
        'handoff.case.id': t.id,
        'handoff.case.outcome': c.resolution?.outcome ?? t.state,
        'handoff.case.tier': c.tier,
        'handoff.case.escalations': c.escalations,
        'handoff.case.decided_by': c.resolution?.decidedBy ?? [],
        'handoff.case.first_claim_ms': c.firstClaimAt === null ? -1 : c.firstClaimAt - c.openedAt,
      });
    } else {
      const a = t.context as AgentContext;
      const tc = a.trace ?? null;
      // Continued from a caller's traceparent: the episode is a child of the caller's span.
      const parent = tc?.parentSpanId ? parentContext(traceId, tc.parentSpanId, true) : undefined;
      const outcome = a.outcome ?? t.state;
      // Semantic conventions: ERROR with the cause when the episode did not do what it set out to.
      const status: SpanStatus = FAILED_OUTCOMES.has(outcome)
        ? { code: SpanStatusCode.ERROR, message: failureOf(a, outcome) }
        : STATUS_OK;
      this.#emit(
        'episode',
        traceId,
        known.scopeId,
        parent,
        known.start,
        t.at,
        {
          ...base,
          'handoff.episode.outcome': outcome,
          'handoff.episode.cases': a.caseIds.length,
          'handoff.episode.actions': a.plan?.actions.length ?? 0,
        },
        status,
      );
    }
  };

  /** What the tracer takes from an actor's first transition it sees (its state is set by the caller). */
  #first(t: TransitionTelemetry, isCase: boolean, episodeId: string): Tracked {
    const tc = (t.context as { trace?: TraceContext | null }).trace ?? null;
    const traceId = tc?.traceId ?? traceIdFor(episodeId);
    const scopeId = isCase ? caseSpanIdFor(t.id) : (tc?.spanId ?? episodeSpanIdFor(episodeId));
    const parent = tc?.parentSpanId ? { spanId: tc.parentSpanId, sampled: tc.sampled !== false } : undefined;
    const start = isCase ? (t.context as CaseContext).openedAt : ((t.context as AgentContext).startedAt ?? t.at);
    return {
      state: '',
      since: t.at,
      start,
      traceId,
      scopeId,
      sampled: sampleTrace(this.#sampler, traceId, parent),
      scope: parentContext(traceId, scopeId),
    };
  }

  #name(prefix: string, what: string): string {
    let names = this.#names.get(prefix);
    if (!names) this.#names.set(prefix, (names = new Map()));
    let name = names.get(what);
    if (name === undefined) names.set(what, (name = `${prefix} ${what}`));
    return name;
  }

  #emit(
    name: string,
    traceId: string,
    spanId: string,
    parent: SpanContext | undefined,
    start: number,
    end: number,
    attributes: Attributes,
    status: SpanStatus = STATUS_UNSET,
    kind: SpanKind = SpanKind.INTERNAL,
  ): void {
    const span = new HandoffSpan(
      name,
      kind,
      traceId,
      spanId,
      parent,
      start,
      Math.max(start, end),
      attributes,
      status,
      this.#resource,
    );
    this.#processor.onEnd(span);
  }

  /** The trace and root span of an actor this node has seen (for log lines), if it is still tracked. */
  traceOf(actorId: string): { traceId: string; spanId: string } | undefined {
    const a = this.#actors.get(actorId);
    return a ? { traceId: a.traceId, spanId: a.scopeId } : undefined;
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
  const processor: SpanProcessor = opts.simple
    ? new SimpleSpanProcessor(exporter)
    : new BatchSpanProcessor(exporter, { maxQueueSize: 65_536, maxExportBatchSize: 2048 });
  const resource = resourceFromAttributes({ 'service.name': opts.serviceName ?? 'handoff' }).merge(
    detectResources({ detectors: [envDetector] }),
  );
  const sampler = opts.sampler ?? samplerFromEnv();
  const provider = new NodeTracerProvider({ spanProcessors: [processor], resource, sampler });
  if (opts.register) provider.register();
  return new EpisodeTracing(provider, processor, resource, sampler, opts);
}
