import type { AgentContext } from '../machines/agent.ts';
import type { CaseContext } from '../machines/review-case.ts';
import type { TransitionNotice } from '../runtime/runtime.ts';
import type { ActorRecord } from '../runtime/store.ts';
import type { Principal } from '../httpkit/auth.ts';
import type { GatewayBackend } from './backend.ts';
import { escalationsOf, mayView, missedSla } from './projection.ts';

interface Bucket {
  auto: number;
  review: number;
  deny: number;
  /** Cases closed (decided or expired) in the bucket. */
  closed: number;
  /** Cases closed in the bucket with no deadline missed at any tier. */
  slaMet: number;
  /** Cases that missed a deadline, counted once, when they first missed one (open or closed since). */
  slaMissed: number;
  /** Escalations in the bucket, by cause. */
  escAck: number;
  escResolve: number;
  escReviewer: number;
  acked: number;
  ackSum: number;
  decided: number;
  resolveSum: number;
}

const emptyBucket = (): Bucket => ({
  auto: 0,
  review: 0,
  deny: 0,
  closed: 0,
  slaMet: 0,
  slaMissed: 0,
  escAck: 0,
  escResolve: 0,
  escReviewer: 0,
  acked: 0,
  ackSum: 0,
  decided: 0,
  resolveSum: 0,
});

export interface DashboardSeries {
  from: number;
  to: number;
  stepMs: number;
  /** Rates and means are over this trailing window. */
  windowMs: number;
  /** Bucket end times, epoch ms. */
  t: number[];
  autoRate: (number | null)[];
  mttaMs: (number | null)[];
  mttrMs: (number | null)[];
  /**
   * Cases with no deadline missed over cases judged: closed with none missed, plus every case that
   * missed one (counted when it first did, open or not). An escalated case counts as a miss at once.
   */
  slaAttainment: (number | null)[];
  /** Escalations in each bucket (not rolled), by cause: acknowledge / resolve deadline missed, by a reviewer. */
  escalations: { ack: number[]; resolve: number[]; reviewer: number[] };
  /** Open cases at the end of each bucket, per queue. */
  depth: Record<string, number[]>;
  totals: {
    episodes: number;
    auto: number;
    review: number;
    deny: number;
    closed: number;
    autoRate: number | null;
    mttaMs: number | null;
    mttrMs: number | null;
    slaAttainment: number | null;
    slaMissed: number;
    escalations: { ack: number; resolve: number; reviewer: number };
  };
  queues: { queue: string; model: string; tier: number; tierName: string }[];
}

/** When a case first missed a deadline (an escalation for it, or expiry), or null. */
function firstMiss(c: CaseContext): number | null {
  const h = c.history.find(
    (e) => e.kind === 'expired' || (e.kind === 'escalated' && !e.by && (e.note ?? '').includes('deadline missed')),
  );
  return h ? h.at : null;
}

/**
 * Time series for the dashboards, in one-minute buckets per model: gate outcomes (auto-rate), case
 * closes with their time to acknowledge and to resolve and whether they met the SLA, and queue depth
 * (from each case's time in each queue). Built from the store at start, then kept up to date from
 * the transport's notices.
 */
export class Metrics {
  readonly bucketMs: number;
  #buckets = new Map<string, Map<number, Bucket>>();
  /** Depth changes per queue by bucket; their running sum is the depth. */
  #depth = new Map<string, Map<number, number>>();
  #countedAgents = new Set<string>();
  #closedCases = new Set<string>();
  /** Cases counted as SLA misses (once each). */
  #missed = new Set<string>();
  /** Escalations counted, by case: how many of its history's. */
  #escalated = new Map<string, number>();
  /** Where each open case sits now (queue, and the version that says so). */
  #open = new Map<string, { queue: string; seq: number }>();
  #backend: GatewayBackend;
  #ready = false;
  #buffer: TransitionNotice[] = [];
  #first = Infinity;
  #last = 0;
  #queues: { queue: string; model: string; tier: number; tierName: string; roles: string[] }[] = [];
  #loading: Promise<void> | null = null;

  constructor(backend: GatewayBackend, opts: { bucketMs?: number } = {}) {
    this.#backend = backend;
    this.bucketMs = opts.bucketMs ?? 60_000;
    for (const m of backend.models)
      m.config.review.tiers.forEach((t, i) => {
        if (!this.#queues.some((q) => q.queue === t.queue))
          this.#queues.push({ queue: t.queue, model: m.name, tier: i + 1, tierName: t.name, roles: t.roles });
      });
  }

  get ready(): boolean {
    return this.#ready;
  }

  /** Subscribes, then reads the history in the background; `loaded` resolves when it is in. */
  start(): { unsubscribe(): void; loaded: Promise<void> } {
    const onNotice = (n: TransitionNotice) => (this.#ready ? this.#onNotice(n) : this.#buffer.push(n));
    const a = this.#backend.onAgent(onNotice);
    const c = this.#backend.onCase(onNotice);
    this.#loading = this.#load();
    return {
      unsubscribe: () => {
        a.unsubscribe();
        c.unsubscribe();
      },
      loaded: this.#loading,
    };
  }

  async #load(): Promise<void> {
    for await (const rec of this.#backend.actors()) this.#scan(rec);
    this.#ready = true;
    const buffered = this.#buffer;
    this.#buffer = [];
    for (const n of buffered) this.#onNotice(n);
  }

  #bucket(model: string, at: number): Bucket {
    let m = this.#buckets.get(model);
    if (!m) this.#buckets.set(model, (m = new Map()));
    const k = Math.floor(at / this.bucketMs);
    let b = m.get(k);
    if (!b) m.set(k, (b = emptyBucket()));
    this.#first = Math.min(this.#first, at);
    this.#last = Math.max(this.#last, at);
    return b;
  }

  #shift(queue: string, at: number, delta: number): void {
    let m = this.#depth.get(queue);
    if (!m) this.#depth.set(queue, (m = new Map()));
    const k = Math.floor(at / this.bucketMs);
    m.set(k, (m.get(k) ?? 0) + delta);
    this.#first = Math.min(this.#first, at);
    this.#last = Math.max(this.#last, at);
  }

  #gate(model: string, id: string, outcome: string | undefined, at: number): void {
    if (!outcome || this.#countedAgents.has(id)) return;
    this.#countedAgents.add(id);
    const b = this.#bucket(model, at);
    if (outcome === 'auto') b.auto++;
    else if (outcome === 'review') b.review++;
    else if (outcome === 'deny') b.deny++;
  }

  /** Counts a case's misses and escalations from its history, each once whatever the path it came by. */
  #history(model: string, id: string, c: CaseContext): void {
    const miss = firstMiss(c);
    if (miss !== null && !this.#missed.has(id)) {
      this.#missed.add(id);
      this.#bucket(model, miss).slaMissed++;
    }
    const esc = escalationsOf(c);
    const seen = this.#escalated.get(id) ?? 0;
    for (const e of esc.slice(seen)) {
      const b = this.#bucket(model, e.at);
      if (e.cause === 'ack') b.escAck++;
      else if (e.cause === 'resolve') b.escResolve++;
      else b.escReviewer++;
    }
    if (esc.length > seen) this.#escalated.set(id, esc.length);
  }

  #close(model: string, id: string, c: CaseContext): void {
    if (this.#closedCases.has(id) || !c.resolution) return;
    this.#closedCases.add(id);
    this.#history(model, id, c);
    this.#escalated.delete(id);
    const b = this.#bucket(model, c.resolution.at);
    b.closed++;
    if (!missedSla(c)) b.slaMet++;
    this.#missed.delete(id);
    if (c.firstClaimAt !== null) {
      b.acked++;
      b.ackSum += c.firstClaimAt - c.openedAt;
    }
    if (c.resolution.outcome !== 'expired') {
      b.decided++;
      b.resolveSum += c.resolution.at - c.openedAt;
    }
  }

  /** Adds one case's time in each queue, from its history, to the depth series. */
  #segments(id: string, seq: number, c: CaseContext, open: boolean): void {
    let tier = c.history[0]?.tier ?? c.tier;
    let from = c.openedAt;
    const queueOf = (t: number) => c.tiers[t - 1]?.queue ?? 'unknown';
    this.#shift(queueOf(tier), from, +1);
    for (const h of c.history) {
      if (h.kind !== 'escalated') continue;
      this.#shift(queueOf(tier), h.at, -1);
      tier = h.tier + 1;
      from = h.at;
      this.#shift(queueOf(tier), from, +1);
    }
    if (open) this.#open.set(id, { queue: queueOf(tier), seq });
    else this.#shift(queueOf(tier), c.resolution?.at ?? from, -1);
  }

  #scan(rec: ActorRecord): void {
    const ctx = (rec.snapshot as { context?: AgentContext | CaseContext }).context;
    if (!ctx) return;
    if (rec.kind === 'agent') {
      const a = ctx as AgentContext;
      if (a.decision) this.#gate(rec.model, rec.id, a.decision.outcome, a.startedAt ?? rec.updatedAt);
      return;
    }
    const c = ctx as CaseContext;
    if (rec.status === 'active') {
      this.#segments(rec.id, rec.seq, c, true);
      this.#history(rec.model, rec.id, c);
    } else if (rec.status === 'done') {
      this.#segments(rec.id, rec.seq, c, false);
      this.#close(rec.model, rec.id, c);
    }
  }

  #onNotice(n: TransitionNotice): void {
    if (n.kind === 'agent') {
      if (n.event !== 'plan.done') return;
      const outcome =
        n.state === 'acting'
          ? 'auto'
          : n.state === 'awaitingReview'
            ? 'review'
            : n.state === 'denied'
              ? 'deny'
              : undefined;
      this.#gate(n.model, n.id, outcome, n.at);
      return;
    }
    const known = this.#open.get(n.id);
    if (known && known.seq >= n.seq) return;
    if (this.#closedCases.has(n.id)) return;
    if (n.status !== 'active') {
      if (known) this.#shift(known.queue, n.at, -1);
      this.#open.delete(n.id);
      // Closing figures need the whole case (first claim, history): read it.
      void this.#backend
        .get(n.id)
        .then((v) => {
          if (v && v.kind === 'case') this.#close(v.model, v.id, v.context as CaseContext);
        })
        .catch(() => undefined);
      return;
    }
    if (!n.queue) return;
    // An escalation: a miss counts at once, not when (or whether) the case closes.
    if (n.event === 'timer.ack' || n.event === 'timer.resolve' || n.event === 'escalate') {
      void this.#backend
        .get(n.id)
        .then((v) => {
          if (v && v.kind === 'case' && !this.#closedCases.has(n.id))
            this.#history(v.model, v.id, v.context as CaseContext);
        })
        .catch(() => undefined);
    }
    if (!known) {
      this.#shift(n.queue.queue, n.queue.openedAt, +1);
    } else if (known.queue !== n.queue.queue) {
      this.#shift(known.queue, n.at, -1);
      this.#shift(n.queue.queue, n.at, +1);
    }
    this.#open.set(n.id, { queue: n.queue.queue, seq: n.seq });
    this.#last = Math.max(this.#last, n.at);
  }

  /** Series for what a reviewer may see (their models; the queues of their tiers), over a range. */
  series(p: Principal, rangeMs: number | null, now: number, maxPoints = 180): DashboardSeries {
    const models = Object.keys(p.grants);
    const queues = this.#queues.filter((q) => models.includes(q.model) && mayView(p, q.model, q.roles));
    const end = Math.max(now, this.#last);
    // 'All' covers the whole history, and at least the last hour.
    const start =
      rangeMs === null ? Math.min(Number.isFinite(this.#first) ? this.#first : end, end - 3600_000) : end - rangeMs;
    const endK = Math.floor(end / this.bucketMs);
    const startK = Math.min(Math.floor(start / this.bucketMs), endK - 1);
    const per = Math.max(1, Math.ceil((endK - startK + 1) / maxPoints));
    const n = Math.ceil((endK - startK + 1) / per);
    const t: number[] = [];
    const sums: Bucket[] = [];
    for (let i = 0; i < n; i++) {
      t.push((startK + (i + 1) * per) * this.bucketMs);
      sums.push(emptyBucket());
    }
    const total = emptyBucket();
    for (const model of models) {
      const m = this.#buckets.get(model);
      if (!m) continue;
      for (const [k, b] of m) {
        if (k < startK || k > endK) continue;
        const s = sums[Math.floor((k - startK) / per)]!;
        for (const key of Object.keys(b) as (keyof Bucket)[]) {
          s[key] += b[key];
          total[key] += b[key];
        }
      }
    }
    const depth: Record<string, number[]> = {};
    for (const q of queues) {
      const m = this.#depth.get(q.queue);
      const deltas = new Array<number>(n).fill(0);
      let base = 0;
      if (m)
        for (const [k, d] of m) {
          if (k < startK) base += d;
          else if (k <= endK) deltas[Math.floor((k - startK) / per)]! += d;
        }
      let running = base;
      depth[q.queue] = deltas.map((d) => (running = Math.max(0, running + d)));
    }
    const ratio = (a: number, b: number) => (b > 0 ? a / b : null);
    const gated = (b: Bucket) => b.auto + b.review + b.deny;
    // Rates over a trailing window (a twelfth of the range, at least one point), so a point with
    // two closed cases does not swing the line from 0% to 100%.
    const stepMs = per * this.bucketMs;
    const windowPoints = Math.max(1, Math.round((n * stepMs) / 12 / stepMs));
    const rolled: Bucket[] = sums.map((_, i) => {
      const acc = emptyBucket();
      for (let j = Math.max(0, i - windowPoints + 1); j <= i; j++)
        for (const key of Object.keys(acc) as (keyof Bucket)[]) acc[key] += sums[j]![key];
      return acc;
    });
    return {
      from: startK * this.bucketMs,
      to: (endK + 1) * this.bucketMs,
      stepMs,
      windowMs: windowPoints * stepMs,
      t,
      autoRate: rolled.map((b) => ratio(b.auto, gated(b))),
      mttaMs: rolled.map((b) => ratio(b.ackSum, b.acked)),
      mttrMs: rolled.map((b) => ratio(b.resolveSum, b.decided)),
      slaAttainment: rolled.map((b) => ratio(b.slaMet, b.slaMet + b.slaMissed)),
      escalations: {
        ack: sums.map((b) => b.escAck),
        resolve: sums.map((b) => b.escResolve),
        reviewer: sums.map((b) => b.escReviewer),
      },
      depth,
      totals: {
        episodes: gated(total),
        auto: total.auto,
        review: total.review,
        deny: total.deny,
        closed: total.closed,
        autoRate: ratio(total.auto, gated(total)),
        mttaMs: ratio(total.ackSum, total.acked),
        mttrMs: ratio(total.resolveSum, total.decided),
        slaAttainment: ratio(total.slaMet, total.slaMet + total.slaMissed),
        slaMissed: total.slaMissed,
        escalations: { ack: total.escAck, resolve: total.escResolve, reviewer: total.escReviewer },
      },
      queues: queues.map(({ roles: _r, ...q }) => q),
    };
  }
}
