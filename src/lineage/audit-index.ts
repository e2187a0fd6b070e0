import type { AuditEntry } from '../base/audit-log.ts';

/** Where the index reads audit entries from: a store, or a console's backend (local or cluster). */
export interface AuditSource {
  audit(from?: number): AsyncIterable<AuditEntry>;
}

/** A query of the audit log; every given field must match. */
export interface AuditQuery {
  /** An actor id; an episode id also matches its cases (`<episode>.case-<n>`, `<episode>.operator-…`). */
  actor?: string;
  /** Who did it (`by`; a reviewer id, `runtime`, or one of several joined by commas). */
  reviewer?: string;
  /** A gate rule (`freshness.stale`, `limit:issueRefund.amount`...) or any rule an entry names. */
  rule?: string;
  /** Epoch ms, inclusive. */
  since?: number;
  /** Epoch ms, inclusive. */
  until?: number;
  /** Most recent entries kept. @default 10000 */
  limit?: number;
}

/** The episode an actor belongs to: its own id, or the episode of a case. */
export function episodeOf(actor: string): string {
  return actor.replace(/\.(case|operator)-[^.]*$/, '');
}

/** The rule ids an entry names: a gate decision's deciding rule, a `rule` field, a `rules` list. */
export function rulesOf(e: AuditEntry): string[] {
  const d = e.data;
  const out: string[] = [];
  for (const k of ['ruleId', 'rule']) if (typeof d[k] === 'string') out.push(d[k] as string);
  if (Array.isArray(d.rules))
    for (const r of d.rules) out.push(typeof r === 'string' ? r : String((r as { ruleId?: unknown })?.ruleId ?? ''));
  return [...new Set(out.filter(Boolean))];
}

function push(map: Map<string, number[]>, key: string, seq: number): void {
  let list = map.get(key);
  if (!list) map.set(key, (list = []));
  if (list.at(-1) !== seq) list.push(seq);
}

/**
 * Which audit entries concern which actor, episode, reviewer and rule: sequence numbers by key, built
 * from the log and caught up on demand (the log only grows). Entries themselves are read back from
 * the store. The console's case page and `handoff audit query` / `handoff lineage` both use it.
 */
export class AuditIndex {
  #byActor = new Map<string, number[]>();
  #byEpisode = new Map<string, number[]>();
  #byReviewer = new Map<string, number[]>();
  #byRule = new Map<string, number[]>();
  #at = new Map<number, number>();
  #last = 0;
  #catchingUp: Promise<void> | null = null;
  #backend: AuditSource;

  constructor(backend: AuditSource) {
    this.#backend = backend;
  }

  get indexed(): number {
    return this.#last;
  }

  /** Reads entries appended since the last call. Concurrent callers share one pass. */
  catchUp(): Promise<void> {
    if (!this.#catchingUp) {
      this.#catchingUp = (async () => {
        for await (const e of this.#backend.audit(this.#last + 1)) {
          push(this.#byActor, e.actor, e.seq);
          push(this.#byEpisode, episodeOf(e.actor), e.seq);
          for (const by of e.by.split(',')) if (by) push(this.#byReviewer, by, e.seq);
          for (const rule of rulesOf(e)) push(this.#byRule, rule, e.seq);
          this.#at.set(e.seq, e.at);
          this.#last = e.seq;
        }
      })().finally(() => {
        this.#catchingUp = null;
      });
    }
    return this.#catchingUp;
  }

  /** Entries of these actors, oldest first. */
  async entries(actors: readonly string[], limit = 500): Promise<AuditEntry[]> {
    await this.catchUp();
    const seqs = [...new Set(actors.flatMap((a) => this.#byActor.get(a) ?? []))].sort((a, b) => a - b).slice(-limit);
    return this.#read(seqs);
  }

  /** Entries matching every field of `q`, oldest first (the most recent `limit` of them). */
  async query(q: AuditQuery): Promise<AuditEntry[]> {
    await this.catchUp();
    const sets: number[][] = [];
    if (q.actor !== undefined)
      sets.push([...new Set([...(this.#byActor.get(q.actor) ?? []), ...(this.#byEpisode.get(q.actor) ?? [])])]);
    if (q.reviewer !== undefined) sets.push(this.#byReviewer.get(q.reviewer) ?? []);
    if (q.rule !== undefined) sets.push(this.#byRule.get(q.rule) ?? []);
    let seqs: number[];
    if (sets.length === 0) seqs = [...this.#at.keys()];
    else {
      const [first, ...rest] = sets.sort((a, b) => a.length - b.length);
      const others = rest.map((s) => new Set(s));
      seqs = first!.filter((s) => others.every((o) => o.has(s)));
    }
    seqs = seqs.filter((s) => {
      const at = this.#at.get(s) ?? 0;
      return (q.since === undefined || at >= q.since) && (q.until === undefined || at <= q.until);
    });
    return this.#read(seqs.sort((a, b) => a - b).slice(-(q.limit ?? 10_000)));
  }

  async #read(seqs: number[]): Promise<AuditEntry[]> {
    const out: AuditEntry[] = [];
    // Runs of consecutive sequence numbers are read with one scan.
    for (let i = 0; i < seqs.length;) {
      let j = i;
      while (j + 1 < seqs.length && seqs[j + 1] === seqs[j]! + 1) j++;
      const want = new Set(seqs.slice(i, j + 1));
      for await (const e of this.#backend.audit(seqs[i]!)) {
        if (want.has(e.seq)) out.push(e);
        if (e.seq >= seqs[j]!) break;
      }
      i = j + 1;
    }
    return out;
  }
}
