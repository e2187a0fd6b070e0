import type { Plan } from '../contracts/plan.ts';
import { HandoffError } from '../contracts/errors.ts';
import { SCHEMA_VERSION } from '../contracts/envelope.ts';
import type { LoadedModel } from '../models/loader.ts';
import type { Clock } from '../base/clock.ts';
import type { Rng } from '../base/rng.ts';
import type { TransitionNotice } from '../runtime/runtime.ts';
import { subjects, type Transport } from '../transport/transport.ts';

/** How simulated reviewers behave. Times are in simulated ms. */
export interface ReviewerBehaviour {
  /** Mean time before an idle reviewer picks up a waiting case. @default 2 min */
  thinkMs: number;
  /** Mean time to decide once claimed. @default 8 min */
  workMs: number;
  /** Chance a reviewer goes silent after claiming (the lease expires). @default 0.04 */
  silent: number;
  /** Chance a reviewer takes far longer than the resolve deadline (the case escalates). @default 0.06 */
  slow: number;
  /** Decision mix. @default approve 0.7, modify 0.15, reject 0.15 */
  approve: number;
  modify: number;
}

export const DEFAULT_BEHAVIOUR: ReviewerBehaviour = {
  thinkMs: 2 * 60_000,
  workMs: 8 * 60_000,
  silent: 0.04,
  slow: 0.06,
  approve: 0.7,
  modify: 0.15,
};

interface OpenCase {
  id: string;
  queue: string;
  roles: string[];
  tier: number;
  priority: number;
  claimedBy: string | null;
  resolveDueAt: number;
  seq: number;
}

interface SimReviewer {
  id: string;
  roles: string[];
  busy: boolean;
  /** Cases this reviewer may not take (refused by separation of duties or four eyes). */
  refused: Set<string>;
}

/**
 * Simulated reviewers for the demo and simulations. They watch the queue subjects on the transport,
 * like the console does, and drive cases only through reviewer commands, so every rule (roles,
 * separation of duties, four eyes, leases, optimistic concurrency) applies to them as to people.
 */
export class ReviewerPool {
  #open = new Map<string, OpenCase>();
  #reviewers: SimReviewer[];
  #rt: { command(cmd: unknown): Promise<unknown> };
  #model: LoadedModel;
  #clock: Clock;
  #rng: Rng;
  #b: ReviewerBehaviour;
  #cmd = 0;
  #pendingDispatch = false;
  #unsub: () => void;
  /** Commands the runtime refused, by error code (expected: races and rules at work). */
  readonly refusals: Record<string, number> = {};
  readonly decisions = { approve: 0, modify: 0, reject: 0, silent: 0, slow: 0, operator: 0 };

  constructor(opts: {
    runtime: { command(cmd: unknown): Promise<unknown> };
    transport: Transport;
    namespace: string;
    model: LoadedModel;
    clock: Clock;
    rng: Rng;
    count: number;
    behaviour?: Partial<ReviewerBehaviour>;
    /** Run number (resumes count up), so command ids never repeat across runs. */
    run?: number;
  }) {
    this.#rt = opts.runtime;
    this.#model = opts.model;
    this.#clock = opts.clock;
    this.#rng = opts.rng;
    this.#b = { ...DEFAULT_BEHAVIOUR, ...opts.behaviour };
    this.#reviewers = buildReviewers(opts.model, opts.count);
    this.#run = opts.run ?? 0;
    const sub = opts.transport.subscribe(subjects(opts.namespace).queueAll, (m) =>
      this.#onNotice(m.data as TransitionNotice),
    );
    this.#unsub = () => sub.unsubscribe();
  }

  get reviewers(): readonly { id: string; roles: string[] }[] {
    return this.#reviewers;
  }

  stop(): void {
    this.#unsub();
  }

  /** Commands in flight. */
  get busy(): number {
    return this.#inflight;
  }
  #inflight = 0;

  /** Feeds a queue notice (used on resume, for cases opened before this process started). */
  observe(n: TransitionNotice): void {
    this.#onNotice(n);
  }

  #onNotice(n: TransitionNotice): void {
    if (n.status !== 'active' || !n.queue) this.#open.delete(n.id);
    else {
      const prev = this.#open.get(n.id);
      if (prev && prev.seq > n.seq) return;
      this.#open.set(n.id, {
        id: n.id,
        queue: n.queue.queue,
        roles: n.queue.roles,
        tier: n.queue.tier,
        priority: n.queue.priority,
        claimedBy: n.queue.claimedBy,
        resolveDueAt: n.queue.resolveDueAt ?? Infinity,
        seq: n.seq,
      });
    }
    this.#scheduleDispatch();
  }

  #scheduleDispatch(): void {
    if (this.#pendingDispatch) return;
    this.#pendingDispatch = true;
    queueMicrotask(() => {
      this.#pendingDispatch = false;
      this.#dispatch();
    });
  }

  #exp(mean: number): number {
    return Math.max(1000, Math.round(-Math.log(1 - this.#rng.next()) * mean));
  }

  #dispatch(): void {
    const waiting = [...this.#open.values()]
      .filter((c) => c.claimedBy === null)
      .sort((a, b) => b.priority - a.priority || a.resolveDueAt - b.resolveDueAt);
    const taken = new Set<string>();
    for (const r of this.#reviewers) {
      if (r.busy) continue;
      const c = waiting.find((w) => !taken.has(w.id) && !r.refused.has(w.id) && this.#mayTake(r, w));
      if (!c) continue;
      taken.add(c.id);
      r.busy = true;
      this.#clock.setTimeout(() => void this.#work(r, c.id), this.#exp(this.#b.thinkMs));
    }
  }

  #mayTake(r: SimReviewer, c: OpenCase): boolean {
    return r.roles.some((role) => c.roles.includes(role));
  }

  #isOperatorCase(caseId: string): boolean {
    return this.#open.get(caseId)?.queue === (this.#model.config.operator?.queue ?? 'operators');
  }

  async #command(r: SimReviewer, caseId: string, type: string, extra: Record<string, unknown> = {}): Promise<unknown> {
    this.#inflight++;
    try {
      return await this.#rt.command({
        type,
        schemaVersion: SCHEMA_VERSION,
        commandId: `${r.id}-${this.#run}-${++this.#cmd}`,
        caseId,
        reviewer: { id: r.id, roles: r.roles },
        ...extra,
      });
    } finally {
      this.#inflight--;
    }
  }
  /** Distinguishes command ids of a resumed run from those of the run before it. */
  #run = 0;

  #refused(err: unknown): void {
    const code = err instanceof HandoffError ? err.code : 'internal';
    this.refusals[code] = (this.refusals[code] ?? 0) + 1;
  }

  #idle(r: SimReviewer): void {
    r.busy = false;
    this.#scheduleDispatch();
  }

  async #work(r: SimReviewer, caseId: string): Promise<void> {
    try {
      await this.#command(r, caseId, 'handoff.case.claim');
    } catch (err) {
      this.#refused(err);
      if (err instanceof HandoffError && err.code === 'auth.forbidden') r.refused.add(caseId);
      this.#idle(r);
      return;
    }
    const lease = this.#model.config.review.leaseMs;
    if (this.#rng.chance(this.#b.silent)) {
      this.decisions.silent++;
      // Gone quiet: the lease runs out and the case returns to the queue without this reviewer.
      r.refused.add(caseId);
      this.#clock.setTimeout(() => this.#idle(r), lease * 2);
      return;
    }
    const slow = this.#rng.chance(this.#b.slow);
    if (slow) this.decisions.slow++;
    const tier = this.#open.get(caseId)?.tier ?? 1;
    const resolveMs = this.#isOperatorCase(caseId)
      ? (this.#model.config.operator?.resolveMs ?? 4 * 3600_000)
      : (this.#model.config.review.tiers[tier - 1]?.resolveMs ?? lease);
    const workMs = slow ? resolveMs * 2 : Math.min(this.#exp(this.#b.workMs), Math.round(resolveMs * 0.9));
    // The console renews the lease while the reviewer works.
    for (let t = Math.round(lease * 0.6); t < workMs; t += Math.round(lease * 0.6)) {
      this.#clock.setTimeout(() => void this.#command(r, caseId, 'handoff.case.renew').catch(() => undefined), t);
    }
    this.#clock.setTimeout(() => void this.#decide(r, caseId), workMs);
  }

  async #decide(r: SimReviewer, caseId: string): Promise<void> {
    const roll = this.#rng.next();
    try {
      if (this.#isOperatorCase(caseId)) {
        // Operators retry a failed compensation or resume a crashed actor more often than not.
        if (roll < 0.6) await this.#command(r, caseId, 'handoff.case.approve', { comment: 'retry' });
        else await this.#command(r, caseId, 'handoff.case.reject', { reason: 'stop: handled outside the system' });
        this.decisions.operator++;
        this.#idle(r);
        return;
      }
      if (roll < this.#b.approve) {
        await this.#command(r, caseId, 'handoff.case.approve', { comment: 'checked, fine' });
        this.decisions.approve++;
      } else if (roll < this.#b.approve + this.#b.modify) {
        this.#inflight++;
        const plan = await this.#planOf(caseId).finally(() => this.#inflight--);
        const edited = plan ? editPlan(plan) : null;
        if (edited) {
          await this.#command(r, caseId, 'handoff.case.modify', {
            actions: edited,
            comment: 'reduced to what the evidence supports',
          });
          this.decisions.modify++;
        } else {
          await this.#command(r, caseId, 'handoff.case.approve', {});
          this.decisions.approve++;
        }
      } else {
        await this.#command(r, caseId, 'handoff.case.reject', { reason: 'not supported by the evidence' });
        this.decisions.reject++;
      }
    } catch (err) {
      this.#refused(err);
    }
    this.#idle(r);
  }

  #planOf: (caseId: string) => Promise<Plan | null> = async () => null;
  /** Lets reviewers read a case's plan (the console shows it to them) to edit it. */
  readPlansWith(read: (caseId: string) => Promise<Plan | null>): void {
    this.#planOf = read;
  }
}

/**
 * A reviewer's edit, as the modify command's `actions`: the first numeric argument above 1 scaled
 * down by a fifth (the other arguments as they are).
 */
export function editPlan(plan: Plan): { type: string; args: Record<string, unknown> }[] | null {
  for (const [i, a] of plan.actions.entries()) {
    for (const [k, v] of Object.entries(a.args)) {
      if (typeof v === 'number' && v > 1 && k !== 'from') {
        const scaled = Number.isInteger(v) ? Math.max(1, Math.floor(v * 0.8)) : Math.round(v * 80) / 100;
        return plan.actions.map((x, j) => ({ type: x.type, args: j === i ? { ...x.args, [k]: scaled } : x.args }));
      }
    }
  }
  return null;
}

/** The model's reviewers first, then simulated ones spread over the tiers' roles (lower tiers get more). */
function buildReviewers(model: LoadedModel, count: number): SimReviewer[] {
  const tiers = model.config.review.tiers;
  // People who decide nothing (an engineer who only inspects) do not review in simulations.
  const deciding = new Set([...tiers.flatMap((t) => t.roles), ...(model.config.operator?.roles ?? ['operator'])]);
  const out: SimReviewer[] = model.config.reviewers
    .filter((r) => r.roles.some((x) => deciding.has(x)))
    .slice(0, count)
    .map((r) => ({ id: r.id, roles: [...r.roles], busy: false, refused: new Set() }));
  // Every tier gets two reviewers at least (four-eyes tiers need two distinct approvers).
  for (const [i, tier] of tiers.entries()) {
    for (
      let have = out.filter((r) => r.roles.some((x) => tier.roles.includes(x))).length;
      have < 2 && out.length < count;
      have++
    ) {
      out.push({
        id: `sim-${tier.roles[0]}-t${i + 1}-${have + 1}`,
        roles: [tier.roles[0]!],
        busy: false,
        refused: new Set(),
      });
    }
  }
  // Two operators for operator cases (failed compensations, crashed actors).
  const operatorRole = model.config.operator?.roles[0] ?? 'operator';
  for (let k = 1; k <= 2 && out.length < count; k++)
    out.push({ id: `sim-operator-${k}`, roles: [operatorRole], busy: false, refused: new Set() });
  const weights = tiers.map((_, i) => tiers.length - i);
  const bag = weights.flatMap((w, i) => Array.from({ length: w }, () => i));
  for (let k = 0; out.length < count; k++) {
    const tier = tiers[bag[k % bag.length]!]!;
    out.push({ id: `sim-${tier.roles[0]}-${k + 1}`, roles: [tier.roles[0]!], busy: false, refused: new Set() });
  }
  return out;
}
