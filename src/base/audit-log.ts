import { hash } from 'node:crypto';

/** What a component asks to be audited; the log adds sequence, link and hash. */
export interface AuditDraft {
  at: number;
  /** e.g. `gate.decision`, `case.claimed`, `episode.outcome`, `auth.login`. */
  kind: string;
  actor: string;
  /** Who did it: a reviewer id, or `runtime`. */
  by: string;
  data: Record<string, unknown>;
}

export interface AuditEntry extends AuditDraft {
  seq: number;
  prev: string;
  hash: string;
}

export const GENESIS = '0'.repeat(64);

/**
 * Deterministic JSON: keys sorted at every level, so a hash does not depend on insertion order.
 * Keys whose value is `undefined` are left out; other values JSON cannot hold (`undefined` in an
 * array, functions) are written `null`, and a hole in an array is written as nothing. The output
 * is part of every audit entry's hash: it must never change (`test/unit/audit-log.test.ts` holds
 * it to the definition).
 */
export function canonicalJson(value: unknown): string {
  if (typeof value === 'number') return Number.isFinite(value) ? String(value) : 'null';
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) {
    let out = '[';
    for (let i = 0; i < value.length; i++) {
      if (i > 0) out += ',';
      if (i in value) out += canonicalJson(value[i]);
    }
    return `${out}]`;
  }
  const obj = value as Record<string, unknown>;
  const keys = Object.keys(obj);
  // Most objects are built in a fixed order; sort only those that are not already sorted.
  for (let i = 1; i < keys.length; i++) {
    if (keys[i - 1]! > keys[i]!) {
      keys.sort();
      break;
    }
  }
  let out = '{';
  for (const k of keys) {
    const v = obj[k];
    if (v === undefined) continue;
    if (out.length > 1) out += ',';
    out += `${JSON.stringify(k)}:${canonicalJson(v)}`;
  }
  return `${out}}`;
}

/**
 * SHA-256 of the previous hash, a newline and the entry's canonical JSON, in hex. One-shot
 * `crypto.hash` (Node ≥ 21.7) rather than a `createHash` object per entry: the same digest at about
 * half the cost (every committed decision is hashed on the write path).
 */
export function hashEntry(e: Omit<AuditEntry, 'hash'>): string {
  const body = canonicalJson({ seq: e.seq, at: e.at, kind: e.kind, actor: e.actor, by: e.by, data: e.data });
  return hash('sha256', `${e.prev}\n${body}`, 'hex');
}

/** Links drafts into the hash chain. Not thread-safe by design: one chain per store, one writer. */
export class AuditChain {
  #seq: number;
  #prev: string;
  constructor(last?: AuditEntry) {
    this.#seq = last?.seq ?? 0;
    this.#prev = last?.hash ?? GENESIS;
  }
  /** The chain's head, to roll back to if the entries linked after it are not written. */
  head(): { seq: number; prev: string } {
    return { seq: this.#seq, prev: this.#prev };
  }
  reset(head: { seq: number; prev: string }): void {
    this.#seq = head.seq;
    this.#prev = head.prev;
  }

  link(draft: AuditDraft): AuditEntry {
    const base = { ...draft, seq: this.#seq + 1, prev: this.#prev };
    const entry = { ...base, hash: hashEntry(base) };
    this.#seq = entry.seq;
    this.#prev = entry.hash;
    return entry;
  }
}

export type AuditVerification =
  { ok: true; entries: number } | { ok: false; entries: number; firstBroken: number; reason: string };

/** Walks the chain and reports the first entry whose link or hash does not hold. */
export async function verifyAudit(entries: AsyncIterable<AuditEntry>): Promise<AuditVerification> {
  let prev = GENESIS;
  let expected = 1;
  let count = 0;
  for await (const e of entries) {
    count++;
    if (e.seq !== expected)
      return {
        ok: false,
        entries: count,
        firstBroken: expected,
        reason: `entry ${expected} is missing (found ${e.seq})`,
      };
    if (e.prev !== prev)
      return {
        ok: false,
        entries: count,
        firstBroken: e.seq,
        reason: `entry ${e.seq} does not link to the hash of entry ${e.seq - 1}`,
      };
    const { hash, ...rest } = e;
    if (hashEntry(rest) !== hash)
      return {
        ok: false,
        entries: count,
        firstBroken: e.seq,
        reason: `entry ${e.seq} was altered: its content does not match its hash`,
      };
    prev = hash;
    expected++;
  }
  return { ok: true, entries: count };
}
