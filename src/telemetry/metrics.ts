import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  metrics as otelMetrics,
  type Attributes,
  type Counter,
  type Histogram,
  type Meter,
  type UpDownCounter,
} from '@opentelemetry/api';
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import { detectResources, envDetector, resourceFromAttributes } from '@opentelemetry/resources';
import { MeterProvider, type MetricReader } from '@opentelemetry/sdk-metrics';
import type { AgentContext } from '../machines/agent.ts';
import { currentTier, type CaseContext } from '../machines/review-case.ts';
import type { Runtime, TransitionTelemetry } from '../runtime/runtime.ts';

/** A case met its SLA when no deadline was missed at any tier (as in the demo summary and the console). */
function metSla(c: CaseContext): boolean {
  return !c.history.some(
    (h) => h.kind === 'expired' || (h.kind === 'escalated' && !h.by && (h.note ?? '').includes('deadline missed')),
  );
}

const ESCALATING = new Set(['timer.ack', 'timer.resolve', 'escalate']);

export interface MetricsOptions {
  /** Serve `GET /metrics` in the Prometheus text format on this port (0: any free port). */
  prometheusPort?: number;
  /** Address of the Prometheus endpoint. @default '127.0.0.1' */
  prometheusHost?: string;
  /** Other readers (e.g. a PeriodicExportingMetricReader with an OTLP exporter, or an in-memory one in tests). */
  readers?: MetricReader[];
  /** Use this meter provider instead of building one (readers and the Prometheus port are then ignored). */
  meterProvider?: MeterProvider;
  /** `service.name` unless `OTEL_SERVICE_NAME` (or `OTEL_RESOURCE_ATTRIBUTES`) says otherwise. @default 'handoff' */
  serviceName?: string;
}

/**
 * Bucket bounds, in seconds, for the times a human review takes: seconds (an on-call acknowledge)
 * to a week (a four-eyes finance tier over a weekend). The SDK's defaults (0 to 10,000) put every
 * review time measured in ms into `+Inf`.
 */
export const REVIEW_TIME_BUCKETS_S = [
  1, 5, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14_400, 28_800, 86_400, 172_800, 345_600, 604_800,
];

/** What a cluster node tells the lease gauge: who it is, and how many groups it holds now. */
export interface LeaseSource {
  member: string;
  held(): number;
}

/** The HITL figures of one node, since it started (what `snapshot()` returns and the gauges report). */
export interface HitlSnapshot {
  /** Open cases per queue (cases opened, escalated or closed on this node since it started, plus {@link HandoffMetrics.seed}). */
  queueDepth: Record<string, number>;
  /** Mean time to acknowledge (open → first claim), ms. */
  mttaMs: number | null;
  /** Mean time to resolve (open → decision), ms; expired cases excluded. */
  mttrMs: number | null;
  /** Cases closed with no deadline missed at any tier, over those and every case that missed one (counted at the miss, open or closed). */
  slaAttainment: number | null;
  /** Share of gate decisions that let the plan run on its own. */
  autoRate: number | null;
  /** Share of reviewer decisions that changed or refused the plan (modified + rejected over decided). */
  overrideRate: number | null;
  restarts: number;
  deadLetters: number;
  gate: { auto: number; review: number; deny: number };
  cases: { opened: number; approved: number; modified: number; rejected: number; expired: number };
}

/**
 * HITL metrics through OpenTelemetry: queue depth, MTTA, MTTR, SLA attainment, auto-rate, override
 * rate, restarts and dead letters, fed by the runtime's durable transitions (`RuntimeOptions.telemetry`)
 * and its counters ({@link observe}). With `prometheusPort`, `GET http://host:port/metrics` serves
 * them in the Prometheus text format.
 *
 * | instrument | type | attributes |
 * |---|---|---|
 * | `handoff.queue.depth` | up-down counter | `queue`, `model` |
 * | `handoff.case.opened` | counter | `model`, `queue` |
 * | `handoff.case.time_to_acknowledge` | histogram, s (review-time buckets) | `model` |
 * | `handoff.case.time_to_resolve` | histogram, s (review-time buckets) | `model`, `outcome` |
 * | `handoff.episode.duration` | histogram, s (review-time buckets) | `model`, `outcome` |
 * | `handoff.case.escalations` | counter | `model`, `tier` (escalated out of), `cause` |
 * | `handoff.case.sla_misses` | counter | `model` |
 * | `handoff.review.overrides` | counter | `model`, `outcome` (modified, rejected) |
 * | `handoff.effect.retries` | counter | `model`, `step` |
 * | `handoff.case.closed` | counter | `model`, `outcome`, `sla_met` |
 * | `handoff.gate.decisions` | counter | `model`, `outcome` |
 * | `handoff.episodes.finished` | counter | `model`, `outcome` |
 * | `handoff.case.mtta`, `handoff.case.mttr` | gauge, ms: this node's lifetime means; across nodes use the histograms' sum / count | |
 * | `handoff.case.sla_attainment`, `handoff.gate.auto_rate`, `handoff.review.override_rate` | gauge, 0..1 | |
 * | `handoff.actor.restarts`, `handoff.dead_letters` | observable counter | |
 * | `handoff.actors.resident`, `handoff.runtime.busy` | gauge | |
 * | `handoff.cluster.leases.held` | gauge, by `handoff.cluster.member`: actor groups this node holds (cluster) | |
 */
export class HandoffMetrics {
  readonly provider: MeterProvider;
  readonly meter: Meter;
  readonly prometheus: PrometheusExporter | undefined;
  #depth: UpDownCounter;
  #opened: Counter;
  #tta: Histogram;
  #ttr: Histogram;
  #closed: Counter;
  #gate: Counter;
  #episodes: Counter;
  #duration: Histogram;
  #escalations: Counter;
  #slaMisses: Counter;
  #overrides: Counter;
  #retries: Counter;
  #s = {
    depth: new Map<string, number>(),
    ackSum: 0,
    acked: 0,
    resolveSum: 0,
    decided: 0,
    closed: 0,
    slaMet: 0,
    /** Cases that missed a deadline, counted when they first did (escalated or expired). */
    slaMissed: 0,
    gate: { auto: 0, review: 0, deny: 0 },
    cases: { opened: 0, approved: 0, modified: 0, rejected: 0, expired: 0 },
  };
  #runtimes = new Set<Runtime>();
  #leases = new Set<LeaseSource>();
  #ownsProvider: boolean;
  #listen: { host: string; port: number } | undefined;
  #server: Server | undefined;
  #url: string | undefined;
  /** Open cases already counted as SLA misses (an escalation for a missed deadline). */
  #missedOpen = new Set<string>();

  constructor(opts: MetricsOptions = {}) {
    if (opts.meterProvider) {
      this.provider = opts.meterProvider;
      this.#ownsProvider = false;
    } else {
      const readers: MetricReader[] = [...(opts.readers ?? [])];
      if (opts.prometheusPort !== undefined) {
        this.prometheus = new PrometheusExporter({ preventServerStart: true });
        this.#listen = { host: opts.prometheusHost ?? '127.0.0.1', port: opts.prometheusPort };
        readers.push(this.prometheus as unknown as MetricReader);
      }
      const resource = resourceFromAttributes({ 'service.name': opts.serviceName ?? 'handoff' }).merge(
        detectResources({ detectors: [envDetector] }),
      );
      this.provider = new MeterProvider({ readers, resource });
      this.#ownsProvider = true;
    }
    const m = (this.meter = this.provider.getMeter('handoff'));
    this.#depth = m.createUpDownCounter('handoff.queue.depth', { description: 'Open review cases per queue' });
    this.#opened = m.createCounter('handoff.case.opened', { description: 'Review cases opened' });
    const seconds = { unit: 's', advice: { explicitBucketBoundaries: REVIEW_TIME_BUCKETS_S } };
    this.#tta = m.createHistogram('handoff.case.time_to_acknowledge', {
      ...seconds,
      description: 'Case opened → first claim (MTTA = sum / count)',
    });
    this.#ttr = m.createHistogram('handoff.case.time_to_resolve', {
      ...seconds,
      description: 'Case opened → decision (MTTR = sum / count); expired cases excluded',
    });
    this.#duration = m.createHistogram('handoff.episode.duration', {
      ...seconds,
      description: 'Episode first event → end, reviews included',
    });
    this.#escalations = m.createCounter('handoff.case.escalations', {
      description: 'Cases escalated out of a tier, by tier and cause (ack or resolve deadline missed, by a reviewer)',
    });
    this.#slaMisses = m.createCounter('handoff.case.sla_misses', {
      description:
        'Cases that missed an SLA deadline, counted once per case when they first do (escalated for it or expired)',
    });
    this.#overrides = m.createCounter('handoff.review.overrides', {
      description: 'Reviewer decisions that changed (modified) or refused (rejected) the plan',
    });
    this.#retries = m.createCounter('handoff.effect.retries', {
      description: 'Transient failures of a step that are retried (perceive, plan, execute, compensate)',
    });
    this.#closed = m.createCounter('handoff.case.closed', {
      description: 'Review cases closed, by outcome and whether every SLA deadline was met',
    });
    this.#gate = m.createCounter('handoff.gate.decisions', {
      description: 'Gate decisions by outcome (auto-rate = auto / all)',
    });
    this.#episodes = m.createCounter('handoff.episodes.finished', { description: 'Episodes finished, by outcome' });
    const ratio = (n: number, d: number) => (d > 0 ? n / d : null);
    const gauge = (name: string, description: string, unit: string, value: () => number | null) =>
      m.createObservableGauge(name, { description, unit }).addCallback((r) => {
        const v = value();
        if (v !== null) r.observe(v);
      });
    gauge('handoff.case.mtta', 'Mean time to acknowledge since start', 'ms', () =>
      ratio(this.#s.ackSum, this.#s.acked),
    );
    gauge('handoff.case.mttr', 'Mean time to resolve since start', 'ms', () =>
      ratio(this.#s.resolveSum, this.#s.decided),
    );
    gauge(
      'handoff.case.sla_attainment',
      'Cases closed with no SLA deadline missed over those and every case that missed one (counted at the miss)',
      '1',
      () => ratio(this.#s.slaMet, this.#s.slaMet + this.#s.slaMissed),
    );
    gauge('handoff.gate.auto_rate', 'Share of gate decisions that ran on their own', '1', () =>
      ratio(this.#s.gate.auto, this.#s.gate.auto + this.#s.gate.review + this.#s.gate.deny),
    );
    gauge('handoff.review.override_rate', 'Share of reviewer decisions that modified or rejected the plan', '1', () =>
      ratio(
        this.#s.cases.modified + this.#s.cases.rejected,
        this.#s.cases.approved + this.#s.cases.modified + this.#s.cases.rejected,
      ),
    );
    const sum = (f: (rt: Runtime) => number) => [...this.#runtimes].reduce((a, rt) => a + f(rt), 0);
    m.createObservableCounter('handoff.actor.restarts', {
      description: 'Actors restarted by supervision (crash or lost write)',
    }).addCallback((r) => r.observe(sum((rt) => rt.stats.restarts)));
    m.createObservableCounter('handoff.dead_letters', {
      description: 'Events dead-lettered (see handoff deadletters list)',
    }).addCallback((r) => r.observe(sum((rt) => rt.stats.deadLetters)));
    m.createObservableGauge('handoff.actors.resident', {
      description: 'Actors held in memory (passivation keeps it under maxResident)',
    }).addCallback((r) => r.observe(sum((rt) => rt.resident)));
    m.createObservableGauge('handoff.runtime.busy', {
      description: 'Events, effects and deliveries in progress',
    }).addCallback((r) => r.observe(sum((rt) => rt.busy)));
    m.createObservableGauge('handoff.cluster.leases.held', {
      description:
        'Actor-group leases this node holds (cluster only; the groups whose actors it runs). Sum across nodes = groups owned',
    }).addCallback((r) => {
      for (const l of this.#leases) r.observe(l.held(), { 'handoff.cluster.member': l.member });
    });
  }

  /** Reports the leases a cluster node holds (`handoff.cluster.leases.held`); returns a function that stops. */
  observeLeases(source: LeaseSource): () => void {
    this.#leases.add(source);
    return () => this.#leases.delete(source);
  }

  /** Starts the Prometheus endpoint (when configured); resolves with its URL. */
  async start(): Promise<string | undefined> {
    if (!this.prometheus || !this.#listen) return undefined;
    if (this.#server) return this.#url;
    // Our own listener around the exporter's public handler: port 0 (any free port) works, and a port in
    // use fails here with its cause instead of in the exporter's background.
    const exporter = this.prometheus;
    const server = createServer((req, res) => {
      if ((req.url ?? '').split('?')[0] === '/metrics' && req.method === 'GET')
        exporter.getMetricsRequestHandler(req, res);
      else res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found: metrics are at /metrics\n');
    });
    const { host, port } = this.#listen;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve());
    });
    server.unref();
    this.#server = server;
    const addr = server.address() as AddressInfo;
    this.#url = `http://${addr.family === 'IPv6' ? `[${addr.address}]` : addr.address}:${addr.port}/metrics`;
    return this.#url;
  }

  /** Reports this runtime's restarts, dead letters, resident actors and work in progress. */
  observe(rt: Runtime): this {
    this.#runtimes.add(rt);
    return this;
  }

  /**
   * Counts the cases already open in the store into the queue depth (a node starting on existing
   * data). Reads every case record once; call it once, after the runtime has opened.
   */
  async seed(rt: Runtime): Promise<number> {
    let n = 0;
    for await (const rec of rt.store.actors('case')) {
      if (rec.status !== 'active') continue;
      const c = (rec.snapshot as { context: CaseContext }).context;
      this.#queue(currentTier(c).queue, rec.model, +1);
      n++;
    }
    return n;
  }

  /** The hook for `RuntimeOptions.telemetry` (bound). */
  readonly onTransition = (t: TransitionTelemetry): void => {
    if (t.kind === 'agent') {
      const a = t.context as AgentContext;
      if (t.event === 'plan.done' && a.decision) {
        const o = a.decision.outcome;
        this.#s.gate[o]++;
        this.#gate.add(1, { model: t.model, outcome: o });
      }
      if (t.event.endsWith('.failed') && a.timers.retry !== undefined)
        this.#retries.add(1, { model: t.model, step: t.event.split('.')[0]! });
      if (t.status !== 'active') {
        this.#episodes.add(1, { model: t.model, outcome: a.outcome ?? t.state });
        if (a.startedAt !== null)
          this.#duration.record(Math.max(0, (a.endedAt ?? t.at) - a.startedAt) / 1000, {
            model: t.model,
            outcome: a.outcome ?? t.state,
          });
      }
      return;
    }
    const model = { model: t.model };
    const c = t.context as CaseContext;
    const queue = currentTier(c).queue;
    if (t.from === null) {
      this.#s.cases.opened++;
      this.#opened.add(1, { model: t.model, queue });
      this.#queue(queue, t.model, +1);
    } else if (ESCALATING.has(t.event) && t.status === 'active' && c.tier > 1) {
      const before = c.tiers[c.tier - 2]?.queue;
      if (before && before !== queue) {
        this.#queue(before, t.model, -1);
        this.#queue(queue, t.model, +1);
      }
      const cause =
        t.event === 'timer.ack' ? 'ack_missed' : t.event === 'timer.resolve' ? 'resolve_missed' : 'reviewer';
      this.#escalations.add(1, { model: t.model, tier: c.tier - 1, cause });
      // A missed deadline counts against attainment at once, not when (or whether) the case closes.
      if ((t.event === 'timer.ack' || t.event === 'timer.resolve') && !this.#missedOpen.has(t.id)) {
        this.#missedOpen.add(t.id);
        this.#s.slaMissed++;
        this.#slaMisses.add(1, model);
      }
    }
    if (t.event === 'claim' && c.firstClaimAt === t.at) {
      this.#s.ackSum += c.firstClaimAt - c.openedAt;
      this.#s.acked++;
      this.#tta.record((c.firstClaimAt - c.openedAt) / 1000, model);
    }
    if (t.status !== 'active') {
      this.#queue(queue, t.model, -1);
      const outcome = c.resolution?.outcome ?? (t.state as 'expired');
      if (outcome in this.#s.cases) this.#s.cases[outcome as keyof HitlSnapshot['cases']]++;
      const met = metSla(c);
      this.#s.closed++;
      if (met) this.#s.slaMet++;
      else if (!this.#missedOpen.has(t.id)) {
        this.#s.slaMissed++;
        this.#slaMisses.add(1, model);
      }
      if (outcome === 'modified' || outcome === 'rejected') this.#overrides.add(1, { model: t.model, outcome });
      this.#missedOpen.delete(t.id);
      this.#closed.add(1, { model: t.model, outcome, sla_met: met });
      if (outcome !== 'expired' && c.resolution) {
        this.#s.resolveSum += c.resolution.at - c.openedAt;
        this.#s.decided++;
        this.#ttr.record((c.resolution.at - c.openedAt) / 1000, { model: t.model, outcome });
      }
    }
  };

  #queue(queue: string, model: string, delta: number): void {
    this.#s.depth.set(queue, (this.#s.depth.get(queue) ?? 0) + delta);
    const attrs: Attributes = { queue, model };
    this.#depth.add(delta, attrs);
  }

  snapshot(): HitlSnapshot {
    const s = this.#s;
    const ratio = (n: number, d: number) => (d > 0 ? n / d : null);
    const sum = (f: (rt: Runtime) => number) => [...this.#runtimes].reduce((a, rt) => a + f(rt), 0);
    return {
      queueDepth: Object.fromEntries(s.depth),
      mttaMs: ratio(s.ackSum, s.acked),
      mttrMs: ratio(s.resolveSum, s.decided),
      slaAttainment: ratio(s.slaMet, s.slaMet + s.slaMissed),
      autoRate: ratio(s.gate.auto, s.gate.auto + s.gate.review + s.gate.deny),
      overrideRate: ratio(s.cases.modified + s.cases.rejected, s.cases.approved + s.cases.modified + s.cases.rejected),
      restarts: sum((rt) => rt.stats.restarts),
      deadLetters: sum((rt) => rt.stats.deadLetters),
      gate: { ...s.gate },
      cases: { ...s.cases },
    };
  }

  async shutdown(): Promise<void> {
    this.#runtimes.clear();
    const server = this.#server;
    this.#server = undefined;
    if (server) await new Promise((r) => server.close(r));
    if (this.#ownsProvider) await this.provider.shutdown();
  }
}

/** Registers the provider as the global meter provider (other instrumentation then reports through it). */
export function registerGlobalMeterProvider(m: HandoffMetrics): void {
  otelMetrics.setGlobalMeterProvider(m.provider);
}
