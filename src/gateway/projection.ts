import type { TierSpec } from '../contracts/review-case.ts';
import type { CaseContext } from '../machines/review-case.ts';
import type { LoadedModel } from '../models/loader.ts';
import type { TransitionNotice } from '../runtime/runtime.ts';
import type { GatewayBackend } from './backend.ts';
import type { Principal } from '../httpkit/auth.ts';

/** One open case as the queue view shows it. */
export interface QueueRow {
  id: string;
  episodeId: string;
  model: string;
  queue: string;
  tier: number;
  tierName: string;
  tierCount: number;
  /** Roles of the current tier: who may see and decide the case. */
  roles: string[];
  priority: number;
  fourEyes: boolean;
  /** Approvals so far at this tier (a four-eyes tier needs two). */
  approvals: number;
  riskScore: number;
  confidence: number;
  /** Gate rule that sent the plan to review. */
  ruleId: string;
  kind: string;
  subject: string;
  /** The proposed actions, in words. */
  summary: string;
  actions: string[];
  requestedBy: string | null;
  openedAt: number;
  enteredTierAt: number;
  ackDueAt: number | null;
  resolveDueAt: number | null;
  /** The next SLA deadline: acknowledge while unclaimed, then resolve. */
  dueAt: number | null;
  claimedBy: string | null;
  modified: boolean;
  /** Escalations so far, oldest first: from which tier, when, and why (a missed deadline or a reviewer). */
  escalations: RowEscalation[];
  /** A deadline was missed at some tier: the case counts against SLA attainment whatever happens next. */
  slaMissed: boolean;
  /** 1 = most urgent: the rank of the tier's priority among all tiers' (a higher `priority` is more urgent). */
  priorityRank: number;
  seq: number;
  state: string;
}

export interface RowEscalation {
  fromTier: number;
  at: number;
  /** `ack`: acknowledge deadline missed; `resolve`: resolve deadline missed; `reviewer`: escalated by hand. */
  cause: 'ack' | 'resolve' | 'reviewer';
  by: string | null;
}

/** A case's escalations, read from its history. */
export function escalationsOf(c: Pick<CaseContext, 'history'>): RowEscalation[] {
  const out: RowEscalation[] = [];
  for (const h of c.history) {
    if (h.kind !== 'escalated') continue;
    const note = h.note ?? '';
    const cause =
      !h.by && note.startsWith('acknowledge deadline missed')
        ? 'ack'
        : !h.by && note.startsWith('resolve deadline missed')
          ? 'resolve'
          : 'reviewer';
    out.push({ fromTier: h.tier, at: h.at, cause, by: h.by ?? null });
  }
  return out;
}

/** Whether a case missed a deadline at any tier (escalated for it, or expired). */
export function missedSla(c: Pick<CaseContext, 'history'>): boolean {
  return c.history.some(
    (h) => h.kind === 'expired' || (h.kind === 'escalated' && !h.by && (h.note ?? '').includes('deadline missed')),
  );
}

export interface QueueFilter {
  queue?: string;
  tier?: number;
  risk?: 'low' | 'medium' | 'high';
  /** Cases at least / at most this old (ms since opened). */
  minAgeMs?: number;
  maxAgeMs?: number;
  status?: 'unclaimed' | 'mine' | 'claimed' | 'breached';
  /** Free text: id, subject, summary. */
  q?: string;
}

export interface QueueDepth {
  queue: string;
  model: string;
  tier: number;
  tierName: string;
  open: number;
  unclaimed: number;
  breached: number;
  oldestOpenedAt: number | null;
}

/** Risk bands of the queue filter. */
export const RISK_BANDS = { low: [0, 0.35], medium: [0.35, 0.6], high: [0.6, 1.01] } as const;

export type RowChange =
  | { op: 'upsert'; row: QueueRow; before: QueueRow | undefined }
  | { op: 'remove'; id: string; before: QueueRow; reason: string };

export function mayView(p: Principal, model: string, roles: readonly string[]): boolean {
  const grant = p.grants[model];
  return !!grant && grant.roles.some((r) => roles.includes(r));
}

function describeAction(a: { type: string; description?: string | undefined }): string {
  return a.description ?? a.type;
}

/** A queue row from a case's context. */
export function rowOf(id: string, seq: number, state: string, c: CaseContext): QueueRow {
  const tier = c.tiers[c.tier - 1] as TierSpec | undefined;
  const ackDueAt = c.timers.ack ?? null;
  const resolveDueAt = c.timers.resolve ?? null;
  const due = [c.claim ? null : ackDueAt, resolveDueAt].filter((x): x is number => x !== null);
  return {
    id,
    episodeId: c.episodeId,
    model: c.model,
    queue: tier?.queue ?? 'unknown',
    tier: c.tier,
    tierName: tier?.name ?? `tier ${c.tier}`,
    tierCount: c.tiers.length,
    roles: tier?.roles ?? [],
    priority: tier?.priority ?? 0,
    fourEyes: tier?.fourEyes ?? false,
    approvals: c.approvals.length,
    riskScore: c.decision.riskScore,
    confidence: c.decision.confidence,
    ruleId: c.decision.ruleId,
    kind: c.observation.kind,
    subject: c.observation.subject,
    summary: c.plan.actions.map(describeAction).join(' · '),
    actions: c.plan.actions.map((a) => a.type),
    requestedBy: c.requestedBy,
    openedAt: c.openedAt,
    enteredTierAt: c.enteredTierAt,
    ackDueAt,
    resolveDueAt,
    dueAt: due.length ? Math.min(...due) : null,
    claimedBy: c.claim?.reviewer ?? null,
    modified: c.modified,
    escalations: escalationsOf(c),
    slaMissed: missedSla(c),
    priorityRank: 1,
    seq,
    state,
  };
}

function compareRows(a: QueueRow, b: QueueRow): number {
  return (
    b.priority - a.priority ||
    (a.dueAt ?? Infinity) - (b.dueAt ?? Infinity) ||
    a.openedAt - b.openedAt ||
    (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)
  );
}

/**
 * The open review cases, kept in memory from the store at start and then from the transport's case
 * notices. Reads are filtered per reviewer (a case is visible to the roles of its current tier) and
 * paged on the server, so the browser never holds more than a page, however long the queue.
 */
export class QueueProjection {
  #rows = new Map<string, QueueRow>();
  #tiers = new Map<string, TierSpec[]>();
  #sorted: QueueRow[] | null = null;
  #listeners = new Set<(c: RowChange) => void>();
  #backend: GatewayBackend;
  #models: Map<string, LoadedModel>;
  #fetching = new Map<string, number>();
  #ready = false;
  #buffer: TransitionNotice[] = [];
  /** Rank of each tier priority: the highest priority of all models' tiers is P1. */
  #ranks = new Map<number, number>();
  /** Bumped on every change; caches key on it. */
  version = 0;

  constructor(backend: GatewayBackend) {
    this.#backend = backend;
    this.#models = new Map(backend.models.map((m) => [m.name, m]));
    const priorities = [...new Set(backend.models.flatMap((m) => m.config.review.tiers.map((t) => t.priority)))].sort(
      (a, b) => b - a,
    );
    priorities.forEach((p, i) => this.#ranks.set(p, i + 1));
  }

  /** P1 = most urgent, whatever the models' priority numbers (higher `priority` sorts first). */
  rankOf(priority: number): number {
    return this.#ranks.get(priority) ?? this.#ranks.size + 1;
  }

  /** Subscribes to case notices, then reads every open case from the store. */
  async start(): Promise<{ unsubscribe(): void }> {
    const sub = this.#backend.onCase((n) => (this.#ready ? this.#onNotice(n) : this.#buffer.push(n)));
    for await (const rec of this.#backend.liveActors()) {
      if (rec.kind !== 'case' || rec.status !== 'active') continue;
      const ctx = (rec.snapshot as { context?: CaseContext }).context;
      if (!ctx) continue;
      this.#set(rowOf(rec.id, rec.seq, rec.state, ctx), ctx.tiers, false);
    }
    this.#ready = true;
    const buffered = this.#buffer;
    this.#buffer = [];
    for (const n of buffered) this.#onNotice(n);
    this.version++;
    return sub;
  }

  get size(): number {
    return this.#rows.size;
  }

  get(id: string): QueueRow | undefined {
    return this.#rows.get(id);
  }

  onChange(listener: (c: RowChange) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Applies a fresh view of a case (after a command, or a notice that needs the whole context). */
  apply(id: string, seq: number, state: string, status: string, ctx: CaseContext | undefined): void {
    const before = this.#rows.get(id);
    if (before && before.seq > seq) return;
    if (status !== 'active' || !ctx) {
      if (before) this.#remove(id, state);
      return;
    }
    this.#set(rowOf(id, seq, state, ctx), ctx.tiers, true);
  }

  #onNotice(n: TransitionNotice): void {
    if (n.kind !== 'case') return;
    const before = this.#rows.get(n.id);
    if (before && before.seq >= n.seq) return;
    if (n.status !== 'active') {
      if (before) this.#remove(n.id, n.state);
      else this.#fetching.delete(n.id);
      return;
    }
    const tiers = this.#tiers.get(n.id);
    // Claims, releases and renewals only change what the notice carries; approvals and modifications
    // (a four-eyes tier's first approval) change the plan and approvers, and an escalation adds to the
    // history the row shows: read the case.
    if (
      !before ||
      !tiers ||
      !n.queue ||
      n.event === 'approve' ||
      n.event === 'modify' ||
      n.queue.tier !== before.tier
    ) {
      this.#fetch(n.id, n.seq);
      return;
    }
    const q = n.queue;
    const tier = tiers[q.tier - 1];
    const ackDueAt = q.ackDueAt ?? null;
    const resolveDueAt = q.resolveDueAt ?? null;
    const due = [q.claimedBy ? null : ackDueAt, resolveDueAt].filter((x): x is number => x !== null);
    const row: QueueRow = {
      ...before,
      queue: q.queue,
      tier: q.tier,
      tierName: tier?.name ?? before.tierName,
      roles: q.roles,
      priority: q.priority,
      fourEyes: tier?.fourEyes ?? before.fourEyes,
      approvals: q.tier !== before.tier ? 0 : before.approvals,
      enteredTierAt: q.tier !== before.tier ? n.at : before.enteredTierAt,
      ackDueAt,
      resolveDueAt,
      dueAt: due.length ? Math.min(...due) : null,
      claimedBy: q.claimedBy,
      seq: n.seq,
      state: n.state,
    };
    this.#set(row, tiers, true);
  }

  #fetch(id: string, seq: number): void {
    const pending = this.#fetching.get(id);
    this.#fetching.set(id, Math.max(seq, pending ?? 0));
    if (pending !== undefined) return;
    void this.#backend
      .get(id)
      .then((view) => {
        const wanted = this.#fetching.get(id);
        this.#fetching.delete(id);
        if (wanted === undefined) return;
        if (view && view.kind === 'case')
          this.apply(id, view.seq, view.state, view.status, view.context as CaseContext);
        // A later notice arrived while reading: read again.
        if (view && view.seq < wanted && view.status === 'active') this.#fetch(id, wanted);
      })
      .catch(() => this.#fetching.delete(id));
  }

  #set(row: QueueRow, tiers: TierSpec[], notify: boolean): void {
    row.priorityRank = this.rankOf(row.priority);
    const before = this.#rows.get(row.id);
    this.#rows.set(row.id, row);
    this.#tiers.set(row.id, tiers);
    this.#sorted = null;
    this.version++;
    if (notify) for (const l of this.#listeners) l({ op: 'upsert', row, before });
  }

  #remove(id: string, reason: string): void {
    const before = this.#rows.get(id);
    if (!before) return;
    this.#rows.delete(id);
    this.#tiers.delete(id);
    this.#sorted = null;
    this.version++;
    for (const l of this.#listeners) l({ op: 'remove', id, before, reason });
  }

  #all(): QueueRow[] {
    if (!this.#sorted) this.#sorted = [...this.#rows.values()].sort(compareRows);
    return this.#sorted;
  }

  /** The page of cases a reviewer may see, best first, with the total that match the filter. */
  list(
    p: Principal,
    f: QueueFilter,
    offset: number,
    limit: number,
    now: number,
  ): { total: number; rows: QueueRow[]; offset: number } {
    const q = f.q?.trim().toLowerCase();
    const band = f.risk ? RISK_BANDS[f.risk] : null;
    const out: QueueRow[] = [];
    let total = 0;
    for (const r of this.#all()) {
      if (!mayView(p, r.model, r.roles)) continue;
      if (f.queue && r.queue !== f.queue) continue;
      if (f.tier !== undefined && r.tier !== f.tier) continue;
      if (band && (r.riskScore < band[0] || r.riskScore >= band[1])) continue;
      const age = now - r.openedAt;
      if (f.minAgeMs !== undefined && age < f.minAgeMs) continue;
      if (f.maxAgeMs !== undefined && age > f.maxAgeMs) continue;
      if (f.status === 'unclaimed' && r.claimedBy !== null) continue;
      if (f.status === 'claimed' && r.claimedBy === null) continue;
      if (f.status === 'mine' && r.claimedBy !== p.id) continue;
      if (f.status === 'breached' && !(r.dueAt !== null && r.dueAt < now)) continue;
      if (
        q &&
        !r.id.toLowerCase().includes(q) &&
        !r.subject.toLowerCase().includes(q) &&
        !r.summary.toLowerCase().includes(q) &&
        !r.kind.toLowerCase().includes(q)
      )
        continue;
      if (total >= offset && out.length < limit) out.push(r);
      total++;
    }
    return { total, rows: out, offset };
  }

  /** Depth of each queue the reviewer may see. */
  depth(p: Principal, now: number): QueueDepth[] {
    const byQueue = new Map<string, QueueDepth>();
    // Queues the reviewer may work, even when empty.
    for (const m of this.#models.values()) {
      if (!p.grants[m.name]) continue;
      m.config.review.tiers.forEach((t, i) => {
        if (mayView(p, m.name, t.roles) && !byQueue.has(t.queue))
          byQueue.set(t.queue, {
            queue: t.queue,
            model: m.name,
            tier: i + 1,
            tierName: t.name,
            open: 0,
            unclaimed: 0,
            breached: 0,
            oldestOpenedAt: null,
          });
      });
    }
    for (const r of this.#rows.values()) {
      if (!mayView(p, r.model, r.roles)) continue;
      let d = byQueue.get(r.queue);
      if (!d)
        byQueue.set(
          r.queue,
          (d = {
            queue: r.queue,
            model: r.model,
            tier: r.tier,
            tierName: r.tierName,
            open: 0,
            unclaimed: 0,
            breached: 0,
            oldestOpenedAt: null,
          }),
        );
      d.open++;
      if (r.claimedBy === null) d.unclaimed++;
      if (r.dueAt !== null && r.dueAt < now) d.breached++;
      d.oldestOpenedAt = d.oldestOpenedAt === null ? r.openedAt : Math.min(d.oldestOpenedAt, r.openedAt);
    }
    return [...byQueue.values()].sort((a, b) => a.model.localeCompare(b.model) || a.tier - b.tier);
  }

  /** Depth of every queue (for the dashboards' sampler). */
  depthAll(): Map<string, number> {
    const out = new Map<string, number>();
    for (const m of this.#models.values()) for (const t of m.config.review.tiers) out.set(t.queue, 0);
    for (const r of this.#rows.values()) out.set(r.queue, (out.get(r.queue) ?? 0) + 1);
    return out;
  }
}
