import { statfs } from 'node:fs/promises';
import type { Level } from 'level';
import type { Logger } from 'pino';
import { HandoffError } from '../contracts/errors.ts';
import { K, noSpace, StoreUnavailableError, StoreWriteError, type Op } from './level-format.ts';
import { blobGroupKey } from './record-codec.ts';

/**
 * Every read of the database (get, getMany, iterators) reports LevelDB's corruption as
 * `store.corrupt` naming the folder, and the first one marks the store damaged (`readError`).
 * Without this a timer of an actor whose record sits in a damaged block was read, failed and read
 * again for ever.
 */
export function watchReads(level: Level<string, unknown>, readError: (err: unknown) => unknown): void {
  type Fn = (...a: unknown[]) => Promise<unknown>;
  const db = level as unknown as Record<string, unknown>;
  const guard =
    (fn: Fn): Fn =>
    (...a) =>
      fn(...a).catch((err: unknown) => {
        throw readError(err);
      });
  for (const m of ['get', 'getMany']) db[m] = guard((db[m] as Fn).bind(level));
  for (const m of ['iterator', 'keys', 'values']) {
    const make = (db[m] as (...a: unknown[]) => Record<string, unknown>).bind(level);
    db[m] = (...a: unknown[]) => {
      const it = make(...a);
      for (const f of ['next', 'nextv', 'all']) if (typeof it[f] === 'function') it[f] = guard((it[f] as Fn).bind(it));
      return it;
    };
  }
}

/** What {@link writeWhenSpace} needs of the store. */
export interface SpaceRetry {
  dir: string;
  db: Level<string, unknown>;
  log: Pick<Logger, 'error' | 'warn'>;
  /** First wait before a retry (doubling to 30 s). */
  retryMs: number;
  closing(): boolean;
  write(ops: Op[]): Promise<void>;
  /** Sets (or clears) the error new commands are refused with meanwhile. */
  unavailable(err: StoreUnavailableError | undefined): void;
}

/**
 * Retries a batch that failed for want of space, with back-off (doubling to 30 s), until it is
 * written (returns undefined) or the store closes (returns the error). Before each attempt LevelDB
 * is closed and opened again: its write-ahead log may end in a partly written record, and an error
 * of its background work (a compaction out of space) stays until it is reopened. The log is
 * bounded: one line when writes stop, at most one a minute while they fail, one when they resume.
 */
export async function writeWhenSpace(s: SpaceRetry, ops: Op[], reason: string): Promise<unknown> {
  const { dir, db, log } = s;
  const since = Date.now();
  s.unavailable(new StoreUnavailableError(dir, reason, since));
  log.error(
    { data: dir, reason, code: 'store.unavailable' },
    `storage full: data folder ${dir} cannot be written (${reason}); new commands are refused, writes in flight are held and retried with back-off; Handoff resumes by itself when space returns`,
  );
  const need =
    ops.reduce((n, op) => n + op.key.length + (op.type === 'put' ? JSON.stringify(op.value).length : 0), 0) + (1 << 20);
  let delay = s.retryMs;
  let attempts = 0;
  let lastLog = since;
  let last: unknown = reason;
  for (;;) {
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 30_000);
    if (s.closing()) {
      s.unavailable(undefined);
      return new StoreWriteError(
        `data folder ${dir} was closed while full (${reason}): the batch held was not written`,
      );
    }
    attempts++;
    const free = await statfs(dir).then(
      (st) => st.bavail * st.bsize,
      () => undefined,
    );
    if (free === undefined || free >= need) {
      try {
        if (db.status === 'open') await db.close();
        await db.open({ createIfMissing: false });
        await s.write(ops);
        s.unavailable(undefined);
        log.warn(
          { data: dir, attempts, heldMs: Date.now() - since },
          `storage writable again: data folder ${dir} resumed after ${Math.round((Date.now() - since) / 1000)} s (${attempts} attempts)`,
        );
        return undefined;
      } catch (err) {
        last = err;
        if (noSpace(err) === undefined && db.status === 'open') {
          // No longer a question of space: fail the batch as any failed write.
          s.unavailable(undefined);
          return err;
        }
      }
    }
    if (Date.now() - lastLog >= 60_000) {
      lastLog = Date.now();
      log.warn(
        { data: dir, attempts, freeBytes: free, needBytes: need, heldMs: Date.now() - since },
        `storage still full: data folder ${dir} (${noSpace(last) ?? reason}); ${attempts} attempts so far`,
      );
    }
  }
}

/** LevelDB's corruption as `store.corrupt`, naming the folder and pointing at `handoff doctor`; undefined for other errors. */
export function corruptError(dir: string, err: unknown): HandoffError | undefined {
  const e = err as { code?: string; message?: string; cause?: { code?: string; message?: string } };
  if (e?.code !== 'LEVEL_CORRUPTION' && e?.cause?.code !== 'LEVEL_CORRUPTION') return undefined;
  return new HandoffError(
    'store.corrupt',
    `data folder ${dir}: LevelDB reports ${e.cause?.message ?? e.message} (a damaged table or log file). Run \`handoff doctor --data ${dir}\``,
    { data: dir, cause: e.cause?.message ?? e.message },
    { cause: err },
  );
}

/**
 * A record that refers to a blob not found: LevelDB's iterators skip a block they cannot read and
 * report it only at their end, so the real cause may be a damaged block. Asks LevelDB again for the
 * actor's keys (a read that reports corruption), and returns that error instead when there is one.
 */
export async function corruptionBehind(
  db: Level<string, unknown>,
  dir: string,
  err: unknown,
  id: string | undefined,
  readError: (err: unknown) => unknown,
): Promise<unknown> {
  if (
    !(err instanceof HandoffError && err.code === 'store.corrupt') ||
    id === undefined ||
    err.details.cause !== undefined
  )
    return readError(err);
  try {
    await db.iterator({ gte: K.actor(id), lte: blobGroupKey(K.actor(id), '\uffff') }).all();
    for await (const _ of db.keys({ gte: K.journal(id, 0), lt: `j:${id};` }));
    for await (const _ of db.keys());
  } catch (probe) {
    const real = readError(probe);
    if (real !== probe) return real;
  }
  return new HandoffError(
    'store.corrupt',
    `${err.message}. Run \`handoff doctor --data ${dir}\``,
    { ...err.details, data: dir },
    { cause: err },
  );
}
