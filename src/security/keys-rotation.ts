import type { Level } from 'level';
import { HandoffError } from '../contracts/errors.ts';
import { KEY_ENV } from './keyring.ts';
import { openMaybe, seal, sealedKeyId } from './seal.ts';
import { ROTATION_CURSOR_KEY, SEALED_MARKER_KEY, SealedLevel } from './sealed-level.ts';

/** Progress of a rotation, stored (sealed) in the store at `!rotation`, atomically with each re-sealed batch. */
export interface RotationCursor {
  v: 1;
  /** The key everything is being re-sealed under. */
  target: string;
  /** Last LevelDB key handled; the next step continues after it. `null`: from the start. */
  after: string | null;
  scanned: number;
  resealed: number;
  startedAt: number;
  /** Passes that worked on this rotation (a resumed one counts again). */
  runs: number;
}

export interface RotationProgress {
  target: string;
  scanned: number;
  resealed: number;
  /** Values in the store when this pass began (an estimate: the store changes meanwhile). */
  total: number;
  after: string | null;
}

export interface RotationResult extends RotationProgress {
  /** Where this pass began: the cursor of a rotation that was interrupted, or null for a fresh one. */
  resumedFrom: string | null;
  complete: boolean;
  /** Values written by the store meanwhile, left alone (already sealed under the active key). */
  skippedConcurrent: number;
}

export interface RotationOptions {
  /** Values read and re-sealed per atomic batch. @default 500 */
  batchSize?: number;
  /** Pause between batches, to bound the load a rotation adds to a busy store. @default 0 */
  pauseMs?: number;
  /** Stops after the current batch (the cursor keeps the place). */
  signal?: AbortSignal;
  onProgress?: (p: RotationProgress) => void;
  /** @default Date.now */
  now?: () => number;
}

/** Rotation needs a store opened with data keys. */
export class RotationUnavailableError extends HandoffError {
  constructor(reason: string) {
    super('keys.rotation_unavailable', `cannot rotate data keys: ${reason}`);
  }
}

const reserved = (k: string) => k === SEALED_MARKER_KEY || k === ROTATION_CURSOR_KEY;

function sealedLevelOf(db: Level<string, unknown>): SealedLevel {
  if (!(db instanceof SealedLevel))
    throw new RotationUnavailableError(
      `the store was opened without data keys (set ${KEY_ENV.keys} and ${KEY_ENV.activeId})`,
    );
  return db;
}

/**
 * Re-seals every value of a store under the keyring's active key, one atomic batch at a time,
 * beside a running runtime or offline. Each batch also writes the cursor, so a pass that is killed
 * or stopped continues where it stopped. Values the store writes meanwhile are already sealed
 * under the active key and are never overwritten (see `SealedLevel.resealStep`). Yields after each batch;
 * breaking out of the iteration stops after the batch written.
 */
export async function* rotationSteps(
  store: { db: Level<string, unknown> },
  opts: RotationOptions = {},
): AsyncGenerator<RotationProgress, RotationResult> {
  const db = sealedLevelOf(store.db);
  const keyring = db.keyring;
  const target = keyring.active.id;
  const batchSize = opts.batchSize ?? 500;
  const now = opts.now ?? Date.now;
  const stored = (await db.get(ROTATION_CURSOR_KEY)) as RotationCursor | undefined;
  const resumedFrom = stored && stored.target === target ? stored.after : null;
  let cursor: RotationCursor =
    stored && stored.target === target
      ? { ...stored, runs: stored.runs + 1 }
      : { v: 1, target, after: null, scanned: 0, resealed: 0, startedAt: now(), runs: 1 };
  let total = 0;
  // Counted as the scan counts: the store's reserved keys (the sealing marker, this cursor) are not.
  for await (const key of db.keys({ keyEncoding: 'utf8' } as never) as AsyncIterable<string>)
    if (!reserved(key)) total++;
  let skippedConcurrent = 0;
  const progress = (): RotationProgress => ({
    target,
    scanned: cursor.scanned,
    resealed: cursor.resealed,
    total,
    after: cursor.after,
  });
  for (;;) {
    if (opts.signal?.aborted) return { ...progress(), resumedFrom, complete: false, skippedConcurrent };
    let last: string | null = null;
    let done = false;
    await db.resealStep(
      async () => {
        const batch: { key: string; value: Uint8Array }[] = [];
        const range = cursor.after === null ? {} : { gt: cursor.after };
        let read = 0;
        let counted = 0;
        for await (const [key, raw] of db.iterator({
          ...range,
          limit: batchSize,
          keyEncoding: 'utf8',
          valueEncoding: 'buffer',
          sealedRaw: true,
        } as never) as AsyncIterable<[string, Buffer]>) {
          read++;
          last = key;
          if (reserved(key)) continue;
          counted++;
          if (sealedKeyId(raw) === target) continue;
          // Opening checks the old key is still configured and the value is intact.
          batch.push({ key, value: seal(keyring, openMaybe(keyring, raw, key), key) });
        }
        done = read < batchSize;
        cursor = { ...cursor, scanned: cursor.scanned + counted };
        return batch;
      },
      (batch, touched) => {
        const ops: {
          type: 'put' | 'del';
          key: string;
          value?: Uint8Array;
          keyEncoding: 'utf8';
          valueEncoding: 'buffer';
        }[] = [];
        for (const b of batch) {
          if (touched(b.key)) skippedConcurrent++;
          else ops.push({ type: 'put', key: b.key, value: b.value, keyEncoding: 'utf8', valueEncoding: 'buffer' });
        }
        cursor = { ...cursor, after: last ?? cursor.after, resealed: cursor.resealed + ops.length };
        if (done) {
          ops.push({ type: 'del', key: ROTATION_CURSOR_KEY, keyEncoding: 'utf8', valueEncoding: 'buffer' });
          ops.push({
            type: 'put',
            key: SEALED_MARKER_KEY,
            value: db.sealValue(SEALED_MARKER_KEY, JSON.stringify({ v: 1, keyId: target })),
            keyEncoding: 'utf8',
            valueEncoding: 'buffer',
          });
        } else
          ops.push({
            type: 'put',
            key: ROTATION_CURSOR_KEY,
            value: db.sealValue(ROTATION_CURSOR_KEY, JSON.stringify(cursor)),
            keyEncoding: 'utf8',
            valueEncoding: 'buffer',
          });
        return ops;
      },
    );
    opts.onProgress?.(progress());
    if (done) return { ...progress(), resumedFrom, complete: true, skippedConcurrent };
    yield progress();
    if (opts.pauseMs) await new Promise((r) => setTimeout(r, opts.pauseMs));
  }
}

/** Runs {@link rotationSteps} to the end (or until `signal` aborts). */
export async function rotateKeys(
  store: { db: Level<string, unknown> },
  opts: RotationOptions = {},
): Promise<RotationResult> {
  const steps = rotationSteps(store, opts);
  for (;;) {
    const r = await steps.next();
    if (r.done) return r.value;
  }
}

export interface SealingStatus {
  /** Values per data key id; `plaintext` counts values not sealed (written before encryption). */
  byKey: Record<string, number>;
  values: number;
  plaintext: number;
  /** The key id the store's marker names (the last completed rotation's target), if sealed. */
  markerKeyId: string | null;
  /** A rotation was interrupted and will continue from its cursor. */
  rotationPending: boolean;
}

/**
 * Counts the stored values per data key id by reading the envelopes' headers; needs no keys, so it
 * works on a store opened without them (a raw `Level` with any value encoding) or a sealed one.
 */
export async function sealingStatus(db: Level<string, unknown>): Promise<SealingStatus> {
  const byKey: Record<string, number> = {};
  let values = 0;
  let plaintext = 0;
  let markerKeyId: string | null = null;
  let rotationPending = false;
  for await (const [key, raw] of db.iterator({
    keyEncoding: 'utf8',
    valueEncoding: 'buffer',
    sealedRaw: true,
  } as never) as AsyncIterable<[string, Buffer]>) {
    if (key === SEALED_MARKER_KEY) {
      markerKeyId = (JSON.parse(raw.toString('utf8')) as { keyId?: string }).keyId ?? null;
      continue;
    }
    if (key === ROTATION_CURSOR_KEY) {
      rotationPending = true;
      continue;
    }
    values++;
    const id = sealedKeyId(raw);
    if (id === undefined) plaintext++;
    else byKey[id] = (byKey[id] ?? 0) + 1;
  }
  return { byKey, values, plaintext, markerKeyId, rotationPending };
}

/**
 * Whether the store's values may not all be under the keyring's active key: an interrupted rotation
 * left its cursor, or the last completed rotation (the marker) targeted another key. Two reads.
 */
export async function rotationNeeded(store: { db: Level<string, unknown> }): Promise<boolean> {
  const db = sealedLevelOf(store.db);
  if ((await db.get(ROTATION_CURSOR_KEY)) !== undefined) return true;
  const marker = (await db.get(SEALED_MARKER_KEY)) as { keyId?: string } | undefined;
  return (marker?.keyId ?? null) !== db.keyring.active.id;
}

/** A rotation running beside a live runtime (see {@link backgroundRotation}). */
export interface BackgroundRotation {
  /** Resolves when the pass ends: complete, stopped, or failed (then `error` is set). */
  readonly done: Promise<RotationResult | null>;
  /** Stops after the current batch; the cursor keeps the place for the next start. */
  stop(): Promise<void>;
}

/**
 * Re-seals the store under the active key in the background of a running node, when
 * {@link rotationNeeded} says so: batches of `batchSize` with `pauseMs` between them, so the node's
 * own writes keep the disk. Progress and the end go to `onProgress` / `onDone`; an error to `onError`
 * (the cursor stays, the next start continues).
 */
export function backgroundRotation(
  store: { db: Level<string, unknown> },
  opts: RotationOptions & { onDone?: (r: RotationResult) => void; onError?: (err: unknown) => void } = {},
): BackgroundRotation {
  const stop = new AbortController();
  const done = (async () => {
    try {
      if (!(await rotationNeeded(store))) return null;
      const r = await rotateKeys(store, { batchSize: 200, pauseMs: 25, ...opts, signal: stop.signal });
      opts.onDone?.(r);
      return r;
    } catch (err) {
      opts.onError?.(err);
      return null;
    }
  })();
  return {
    done,
    async stop() {
      stop.abort();
      await done;
    },
  };
}
