import type { Logger } from 'pino';
import { HandoffError } from '../contracts/errors.ts';
import type { Keyring } from '../security/keyring.ts';
import type { TimerEntry } from './store.ts';

/** The LevelDB store's keys, options and errors (the store itself: level-store.ts). */

export type Op = { type: 'put'; key: string; value: unknown } | { type: 'del'; key: string };
export type EncodedOp =
  | { type: 'put'; key: string; value: string; keyEncoding: 'utf8'; valueEncoding: 'utf8' }
  | { type: 'del'; key: string; keyEncoding: 'utf8' };
/** abstract-level's private batch (keys and values encoded, options of the batch). */
export interface PrivateBatch {
  _batch(ops: EncodedOp[], options: { sync: boolean }): Promise<void>;
}
/** Live actors `liveActors()` reads at a time. */
export const LIVE_CHUNK = 256;

export const pad = (n: number, width: number) => String(n).padStart(width, '0');
export const K = {
  actor: (id: string) => `a:${id}`,
  journal: (id: string, seq: number) => `j:${id}:${pad(seq, 10)}`,
  live: (id: string) => `l:${id}`,
  timer: (t: TimerEntry) => `t:${pad(t.dueAt, 15)}:${t.actorId}:${t.name}`,
  outbox: (id: string) => `o:${id}`,
  command: (id: string) => `c:${id}`,
  audit: (seq: number) => `x:${pad(seq, 12)}`,
  meta: (k: string) => `m:${k}`,
};

/** A write failed for want of space (not because of the batch): held and retried, never failed. */
export function noSpace(err: unknown): string | undefined {
  const e = err as { code?: string; message?: string; cause?: { code?: string; message?: string } } | undefined;
  const text = `${e?.message ?? ''} ${e?.cause?.message ?? ''}`;
  if (
    e?.code === 'ENOSPC' ||
    e?.cause?.code === 'ENOSPC' ||
    /No space left on device|ENOSPC|Disk quota exceeded|EDQUOT/i.test(text)
  )
    return (e?.cause?.message ?? e?.message ?? 'no space left').trim();
  return undefined;
}

/** `HANDOFF_STORE_SYNC`: `1`/`true`/`on` fsyncs every batch (the default of `sync`). */
export function syncFromEnv(env: NodeJS.ProcessEnv = process.env): boolean {
  const v = (env.HANDOFF_STORE_SYNC ?? '').trim().toLowerCase();
  if (v === '' || v === '0' || v === 'false' || v === 'off') return false;
  if (v === '1' || v === 'true' || v === 'on') return true;
  throw new HandoffError(
    'config.invalid',
    `HANDOFF_STORE_SYNC must be 1/true/on or 0/false/off, not '${env.HANDOFF_STORE_SYNC}'`,
    { field: 'HANDOFF_STORE_SYNC' },
  );
}

export interface LevelStoreOptions {
  /** Upper bound of operations written in one batch. @default 20000 */
  maxBatchOps?: number;
  /**
   * fsync each batch before its commits are acknowledged (every acknowledged commit survives a power
   * loss, at a cost in throughput; docs/durability.md). @default `HANDOFF_STORE_SYNC`, else false
   */
  sync?: boolean;
  /**
   * A database behind its HANDOFF-HEAD file lost acknowledged writes: `refuse` to open it
   * (`store.damaged`), or `report` it in {@link LevelStore.headCheck} (audit verify, doctor). @default 'refuse'
   */
  lostWrites?: 'refuse' | 'report';
  /** Where the store reports a full disk (bounded: one line when it starts, at most one a minute, one when it ends). */
  logger?: Pick<Logger, 'error' | 'warn'>;
  /** First wait before a write held for want of space is retried (doubling to 30 s). @default 500 */
  noSpaceRetryMs?: number;
  /** Fault injection: probability that a batch write fails (all its commits reject). @default 0 */
  faultRate?: number;
  /** Seed of the fault draws. @default 1 */
  faultSeed?: number;
  /**
   * Data keys: every value is sealed (AES-256-GCM) under the active key, and values under any key of
   * the ring can be read (docs/encryption.md). A store once sealed refuses to open without keys.
   * @default undefined (values stored as plain JSON)
   */
  keyring?: Keyring | undefined;
}

/**
 * The store's disk is full: its writes are held and retried until space returns, and new commands
 * are refused with this error (retryable) meanwhile.
 */
export class StoreUnavailableError extends HandoffError {
  constructor(dir: string, reason: string, since: number) {
    super(
      'store.unavailable',
      `data folder ${dir} cannot be written (${reason}) since ${new Date(since).toISOString()}: new work is refused until space returns; writes in flight are held and retried`,
      { data: dir, reason, since, retryable: true },
    );
  }
}

/** A write to the store failed; nothing of the failed batch was written. Retrying may succeed. */
export class StoreWriteError extends HandoffError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('store.write_failed', message, {}, options);
  }
}
