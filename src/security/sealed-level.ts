import { Level } from 'level';
import { HandoffError } from '../contracts/errors.ts';
import type { Keyring } from './keyring.ts';
import { DataKeyRequiredError, openMaybe, seal } from './seal.ts';
import { assertOpenable, ensureFolder, StoreDamagedError } from '../base/data-folder.ts';

/**
 * Plaintext marker written into every store opened with data keys, so that opening it without keys
 * fails at once with a clear error instead of a JSON parse error on the first read. It holds only the
 * envelope version and the key id of the first sealing.
 */
export const SEALED_MARKER_KEY = '!sealed';
/** Where a key rotation keeps its progress (sealed like every other value). */
export const ROTATION_CURSOR_KEY = '!rotation';

type Format = 'utf8' | 'buffer' | 'view';
type RawKey = string | Uint8Array;
interface PrivateOptions {
  valueEncoding?: Format;
  keyEncoding?: Format;
  keys?: boolean;
  values?: boolean;
  /** Internal: iterate the stored (sealed) bytes, as `handoff keys` does. */
  sealedRaw?: boolean;
  [k: string | symbol]: unknown;
}
type Entry = [RawKey | undefined, Uint8Array | string | undefined];
interface PrivateIterator {
  _next(): Promise<Entry | undefined>;
  _nextv(size: number, options: unknown): Promise<Entry[]>;
}
interface PrivateOp {
  type: 'put' | 'del';
  key: RawKey;
  value?: unknown;
  valueEncoding?: Format;
  [k: string]: unknown;
}
/** abstract-level's private API, as classic-level implements it (level 10 / abstract-level 3). */
interface LevelInternals {
  _get(this: SealedLevel, key: RawKey, options: PrivateOptions): Promise<Uint8Array | string | undefined>;
  _getSync(this: SealedLevel, key: RawKey, options: PrivateOptions): Uint8Array | string | undefined;
  _getMany(this: SealedLevel, keys: RawKey[], options: PrivateOptions): Promise<(Uint8Array | string | undefined)[]>;
  _put(this: SealedLevel, key: RawKey, value: unknown, options: PrivateOptions): Promise<void>;
  _del(this: SealedLevel, key: RawKey, options: PrivateOptions): Promise<void>;
  _batch(this: SealedLevel, ops: PrivateOp[], options: PrivateOptions): Promise<void>;
  _clear(this: SealedLevel, options: PrivateOptions): Promise<void>;
  _iterator(this: SealedLevel, options: PrivateOptions): PrivateIterator;
}
const base = Level.prototype as unknown as LevelInternals;

const keyText = (k: RawKey) => (typeof k === 'string' ? k : Buffer.from(k).toString('utf8'));
const toBytes = (v: unknown): Uint8Array => (typeof v === 'string' ? Buffer.from(v, 'utf8') : (v as Uint8Array));
function asFormat(bytes: Uint8Array, format: Format | undefined): Uint8Array | string {
  if (format === 'utf8') return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('utf8');
  return format === 'view'
    ? new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length)
    : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
}

/** A chained batch writes encoded values straight to LevelDB, around the sealing: refused. */
export class ChainedBatchUnsupportedError extends HandoffError {
  constructor() {
    super('keys.chained_batch', 'a sealed store does not support chained batches: use db.batch([...operations])');
  }
}

/**
 * LevelDB whose stored values are sealed (AES-256-GCM, see `seal.ts`) under the keyring's active key.
 *
 * Sealing sits *under* the value encoding, in abstract-level's private API, rather than in a custom
 * value encoding: an encoding's `encode(value)` never sees the key, and the envelope binds each
 * value to its LevelDB key (the AAD), so that a value moved to another key fails authentication.
 * Everything above is unchanged: callers keep `valueEncoding: 'json'`, and a value that is still
 * plaintext (written before encryption was turned on) is read as is until a rotation seals it.
 *
 * Writes are tracked so that a background re-sealing (`rotateKeys`) never overwrites a newer value
 * with a re-sealed older one: see {@link resealStep}.
 */
export class SealedLevel extends Level<string, unknown> {
  readonly keyring: Keyring;
  #inflight = new Set<Promise<void>>();
  #inflightKeys = new Map<string, number>();
  /** Keys written since the current re-sealing step began (null: no step running). */
  #touched: Set<string> | null = null;
  #touchedAll = false;
  #barrier: Promise<void> | null = null;

  constructor(
    location: string,
    keyring: Keyring,
    options: ConstructorParameters<typeof Level<string, unknown>>[1] = {},
  ) {
    super(location, options);
    this.keyring = keyring;
  }

  /** The sealed bytes of `value` stored under `key` (the marker stays plaintext). */
  sealValue(key: RawKey, value: unknown): Uint8Array {
    const k = keyText(key);
    return k === SEALED_MARKER_KEY ? toBytes(value) : seal(this.keyring, toBytes(value), k);
  }

  #open(
    key: RawKey,
    raw: Uint8Array | string | undefined,
    format: Format | undefined,
  ): Uint8Array | string | undefined {
    if (raw === undefined) return undefined;
    return asFormat(openMaybe(this.keyring, toBytes(raw), keyText(key)), format);
  }

  async _get(key: RawKey, options: PrivateOptions): Promise<Uint8Array | string | undefined> {
    return this.#open(
      key,
      await base._get.call(this, key, { ...options, valueEncoding: 'buffer' }),
      options.valueEncoding,
    );
  }

  _getSync(key: RawKey, options: PrivateOptions): Uint8Array | string | undefined {
    return this.#open(
      key,
      base._getSync.call(this, key, { ...options, valueEncoding: 'buffer' }),
      options.valueEncoding,
    );
  }

  async _getMany(keys: RawKey[], options: PrivateOptions): Promise<(Uint8Array | string | undefined)[]> {
    const raw = await base._getMany.call(this, keys, { ...options, valueEncoding: 'buffer' });
    return raw.map((v, i) => this.#open(keys[i]!, v, options.valueEncoding));
  }

  _iterator(options: PrivateOptions): PrivateIterator {
    if (options.sealedRaw) return base._iterator.call(this, { ...options, valueEncoding: 'buffer' });
    const format = options.valueEncoding;
    const wantValues = options.values !== false;
    // The key is the value's AAD: fetched even when only values are asked for.
    const it = base._iterator.call(this, {
      ...options,
      keys: options.keys !== false || wantValues,
      valueEncoding: 'buffer',
    });
    const dropKeys = options.keys === false;
    const next = it._next.bind(it);
    const nextv = it._nextv.bind(it);
    const openEntry = (e: Entry): Entry => {
      if (wantValues && e[1] !== undefined) e[1] = this.#open(e[0]!, e[1], format);
      if (dropKeys) e[0] = undefined;
      return e;
    };
    it._next = async () => {
      const e = await next();
      return e === undefined ? e : openEntry(e);
    };
    it._nextv = async (size, opts) => (await nextv(size, opts)).map(openEntry);
    return it;
  }

  _chainedBatch(): never {
    throw new ChainedBatchUnsupportedError();
  }

  async _put(key: RawKey, value: unknown, options: PrivateOptions): Promise<void> {
    const sealed = this.sealValue(key, value);
    return this.#write([keyText(key)], () =>
      base._put.call(this, key, sealed, { ...options, valueEncoding: 'buffer' }),
    );
  }

  async _del(key: RawKey, options: PrivateOptions): Promise<void> {
    return this.#write([keyText(key)], () => base._del.call(this, key, options));
  }

  async _batch(ops: PrivateOp[], options: PrivateOptions): Promise<void> {
    const sealed = ops.map((op): PrivateOp =>
      op.type === 'put' ? { ...op, value: this.sealValue(op.key, op.value), valueEncoding: 'buffer' } : op,
    );
    return this.#write(
      ops.map((op) => keyText(op.key)),
      () => base._batch.call(this, sealed, options),
    );
  }

  async _clear(options: PrivateOptions): Promise<void> {
    this.#touchedAll = true;
    return this.#write([], () => base._clear.call(this, options));
  }

  #write(keys: string[], run: () => Promise<void>): Promise<void> {
    for (const k of keys) {
      this.#inflightKeys.set(k, (this.#inflightKeys.get(k) ?? 0) + 1);
      this.#touched?.add(k);
    }
    const p = this.#barrier ? this.#barrier.then(run, run) : run();
    this.#inflight.add(p);
    const done = () => {
      this.#inflight.delete(p);
      for (const k of keys) {
        const n = (this.#inflightKeys.get(k) ?? 1) - 1;
        if (n === 0) this.#inflightKeys.delete(k);
        else this.#inflightKeys.set(k, n);
      }
    };
    p.then(done, done);
    return p;
  }

  /**
   * One step of a re-sealing pass, safe beside concurrent writers: `read` runs after the step has
   * begun tracking writes (writes in flight count as touched), then, with all earlier writes settled
   * and later ones held back, `write` gets the set of keys written meanwhile (whose values read by
   * the step may be stale and must not be written back) and returns the operations to apply.
   */
  async resealStep<T>(
    read: () => Promise<T>,
    write: (items: T, touched: (key: string) => boolean) => PrivateOp[],
  ): Promise<T> {
    if (this.#touched)
      throw new HandoffError('keys.rotation_running', 'a key rotation is already running on this store');
    this.#touched = new Set(this.#inflightKeys.keys());
    this.#touchedAll = false;
    try {
      const items = await read();
      let release!: () => void;
      // Writes issued from here on wait for the barrier; those already issued settle first.
      const earlier = [...this.#inflight];
      this.#barrier = new Promise<void>((r) => (release = r));
      try {
        await Promise.allSettled(earlier);
        const touched = this.#touched;
        const ops = write(items, (k) => this.#touchedAll || touched.has(k));
        if (ops.length > 0) await base._batch.call(this, ops, {});
      } finally {
        this.#barrier = null;
        release();
      }
      return items;
    } finally {
      this.#touched = null;
    }
  }
}

/**
 * A LevelDB that cannot be opened, as a typed error naming the folder: `store.locked` when another
 * process holds it (LevelDB allows one), `store.open_failed` otherwise.
 */
export function levelOpenFailed(dir: string): (err: unknown) => never {
  return (err) => {
    if (err instanceof HandoffError) throw err;
    const code = (err as { cause?: { code?: string }; code?: string }).cause?.code ?? (err as { code?: string }).code;
    if (code === 'LEVEL_LOCKED')
      throw new HandoffError(
        'store.locked',
        `data folder ${dir} is in use by another process (a running handoff start or demo?): stop it first`,
        { data: dir },
      );
    const cause = ((err as { cause?: Error }).cause ?? (err as Error)).message;
    if (code === 'LEVEL_CORRUPTION' || /corrupt/i.test(cause))
      throw new StoreDamagedError(dir, `LevelDB reports ${cause}`, { check: 'open' });
    throw new HandoffError(
      'store.open_failed',
      `data folder ${dir} cannot be opened: ${((err as { cause?: Error }).cause ?? (err as Error)).message}`,
      { data: dir },
    );
  };
}

/**
 * Opens the LevelDB of a store: sealed when a keyring is given (and marked as such), plain JSON
 * otherwise, exactly as before encryption existed. A store marked as sealed refuses to open without
 * keys (`keys.required`), rather than failing later on its first read.
 */
export async function openStoreLevel(dir: string, keyring: Keyring | undefined): Promise<Level<string, unknown>> {
  // A SealedLevel is a Level; the cast only quiets the variance of abstract-level's self-typed batch.
  // LevelDB files without a usable CURRENT are refused here: LevelDB itself would start an empty
  // database and delete the table files (data-folder.ts). An existing database is never re-created.
  const survey = assertOpenable(dir);
  if (!survey.exists) await ensureFolder(dir);
  const db = keyring
    ? (new SealedLevel(dir, keyring, { valueEncoding: 'json' }) as unknown as Level<string, unknown>)
    : new Level<string, unknown>(dir, { valueEncoding: 'json' });
  await db.open({ createIfMissing: !survey.hasCurrent }).catch(levelOpenFailed(dir));
  const marker = (await db.get(SEALED_MARKER_KEY)) as { v: number; keyId: string } | undefined;
  if (keyring && !marker) await db.put(SEALED_MARKER_KEY, { v: 1, keyId: keyring.active.id });
  if (!keyring && marker) {
    await db.close();
    throw new DataKeyRequiredError(`store ${dir}`, marker.keyId);
  }
  return db;
}
