import type { ActorRecord } from './store.ts';

/**
 * The stored form of actor records and journal entries in the LevelDB store.
 *
 * An episode's large objects (the observation, the plan, the gate's decision, a case's tiers and
 * resolution: 0.4 to 1.4 KB of JSON each) are written many times over if every value carries them:
 * the journal entry that brings them (`perceive.done`, `plan.done`, a case's `xstate.init`), then
 * every checkpoint of the actor's record, and a case's record at each claim, renewal and decision.
 * A HITL cycle wrote 38 KB that way, of which the same four objects made up more than half.
 *
 * So an object found under one of {@link BLOB_FIELDS} (a finished case's `output` is its resolution)
 * is stored once per actor, as a *blob* next to the actor's record (see {@link blobGroupKey}), and
 * every value that holds it stores a marker `{ "$blob": "<ref>" }` instead. Whether an object is
 * already stored is known by identity: XState keeps unchanged context objects as they are from one
 * snapshot to the next (`assign` copies the context shallowly, `getPersistedSnapshot` copies only
 * what holds actor refs), so the observation in an agent's checkpoint is the very object of the
 * `perceive.done` event that brought it, and a case's plan at its claim the very object of its
 * input. An object changed since (a modified plan) is a new object and gets a blob of its own. Objects read
 * back from the store are registered under the blob they came from, so a rehydrated actor does not
 * write its blobs again.
 *
 * Identity only saves writes; it is never trusted for reads: a marker always names the blob it
 * stands for, and {@link BlobPacker.unpack} fails loudly if that blob is missing. What identity does
 * rely on is that an object under a blob field is not changed in place once stored: contexts and
 * events are immutable (every change goes through `assign` to a new object; redaction copies), as
 * XState requires of them anyway.
 */
export const BLOB_FIELDS: ReadonlySet<string> = new Set([
  'observation',
  'plan',
  'proposedPlan',
  'decision',
  'tiers',
  'resolution',
  'output',
]);

/** Marker of a blob. */
const BLOB = '$blob';
/** Marker of a value stored once elsewhere in the same record, written by an earlier version (read only). */
const SAME = '$same';
/** Blob fields are looked for this deep (record → snapshot → context → resolution → plan). */
const MAX_DEPTH = 5;

/**
 * Blobs first written by the same commit are stored together, as one value `{ "<n>": blob, ... }`
 * under the key of their *group* (`a:<id>\u0000<group>`: right after the actor's record, before any
 * other actor's keys). A blob's ref is `<group>.<n>`.
 */
export const blobGroupKey = (actorKey: string, group: string): string => `${actorKey}\u0000${group}`;
/** The group of a blob group's key, or undefined for a record's key. */
export const blobGroupOf = (key: string): string | undefined => {
  const i = key.indexOf('\u0000');
  return i < 0 ? undefined : key.slice(i + 1);
};

/** A blob's ref: its group and its number in the group. */
export const blobRef = (group: string, n: number | string): string => `${group}.${n}`;
/** The group of a blob's ref. */
export const groupOfBlobRef = (ref: string): string => ref.slice(0, ref.lastIndexOf('.'));

/** Blob groups by group, flattened to blobs by ref. */
export function blobsByRef(
  groups: Iterable<[string, unknown]>,
  out = new Map<string, unknown>(),
): Map<string, unknown> {
  for (const [group, members] of groups) {
    if (typeof members !== 'object' || members === null) continue;
    for (const [n, value] of Object.entries(members)) out.set(blobRef(group, n), value);
  }
  return out;
}

/** What packing values of one commit adds: its blob group (already packed), and objects registered for it. */
export interface PackSink {
  group: string;
  n: number;
  /** The group's members by number. */
  members: Record<string, unknown>;
  registered: object[];
}

export const newSink = (group: string): PackSink => ({ group, n: 0, members: {}, registered: [] });

const isPlain = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const markerRef = (v: unknown): string | undefined =>
  isPlain(v) && typeof v[BLOB] === 'string' && Object.keys(v).length === 1 ? (v[BLOB] as string) : undefined;

export class BlobError extends Error {}

/** Packs values into their stored form and back, remembering which objects each actor has stored. */
export class BlobPacker {
  #stored = new WeakMap<object, { actor: string; ref: string }>();

  /**
   * The stored form of `value` for actor `actor`: objects under blob fields become markers; those
   * not stored yet are added to `sink` (to be written in the same batch as the value).
   */
  pack(actor: string, value: unknown, sink: PackSink): unknown {
    return this.#pack(actor, value, sink, 0);
  }

  #pack(actor: string, value: unknown, sink: PackSink, depth: number): unknown {
    if (!isPlain(value) || depth >= MAX_DEPTH) return value;
    let copy: Record<string, unknown> | undefined;
    for (const key in value) {
      const v = value[key];
      if (typeof v !== 'object' || v === null) continue;
      let packed: unknown;
      if (BLOB_FIELDS.has(key) && markerRef(v) === undefined) packed = { [BLOB]: this.#blob(actor, v, sink) };
      else if (!Array.isArray(v)) packed = this.#pack(actor, v, sink, depth + 1);
      else continue;
      if (packed !== v) (copy ??= { ...value })[key] = packed;
    }
    return copy ?? value;
  }

  #blob(actor: string, obj: object, sink: PackSink): string {
    const known = this.#stored.get(obj);
    if (known && known.actor === actor) return known.ref;
    const n = sink.n++;
    const ref = blobRef(sink.group, n);
    // Registered before packing its content, so that a blob never refers to itself.
    this.#stored.set(obj, { actor, ref });
    sink.registered.push(obj);
    sink.members[n] = this.#pack(actor, obj, sink, 1);
    return ref;
  }

  /** Forgets objects registered for blobs that were not written (a failed batch). */
  forget(objects: Iterable<object>): void {
    for (const o of objects) this.#stored.delete(o);
  }

  /**
   * `value` as it was before packing, with each marker replaced by its blob (read with `blob(ref)`,
   * itself unpacked; one object per ref within `cache`). Objects read are registered as stored.
   * Throws {@link BlobError} if a blob is missing.
   */
  unpack(actor: string, value: unknown, blob: (ref: string) => unknown, cache = new Map<string, unknown>()): unknown {
    return this.#unpack(actor, value, blob, cache, 0);
  }

  #unpack(
    actor: string,
    value: unknown,
    blob: (ref: string) => unknown,
    cache: Map<string, unknown>,
    depth: number,
  ): unknown {
    if (!isPlain(value) || depth >= MAX_DEPTH) return value;
    let copy: Record<string, unknown> | undefined;
    for (const key in value) {
      const v = value[key];
      if (typeof v !== 'object' || v === null || Array.isArray(v)) continue;
      const ref = BLOB_FIELDS.has(key) ? markerRef(v) : undefined;
      let out: unknown;
      if (ref !== undefined) {
        out = cache.get(ref);
        if (out === undefined) {
          const raw = blob(ref);
          if (raw === undefined) throw new BlobError(`${actor}: blob ${ref} (${key}) is missing from the store`);
          out = this.#unpack(actor, raw, blob, cache, 1);
          cache.set(ref, out);
          if (typeof out === 'object' && out !== null) this.#stored.set(out, { actor, ref });
        }
      } else out = this.#unpack(actor, v, blob, cache, depth + 1);
      if (out !== v) (copy ??= { ...value })[key] = out;
    }
    return copy ?? value;
  }
}

/** Every blob ref that `value` (a stored form) refers to, directly. */
export function blobRefs(value: unknown, out = new Set<string>(), depth = 0): Set<string> {
  if (!isPlain(value) || depth >= MAX_DEPTH) return out;
  for (const key in value) {
    const v = value[key];
    const ref = BLOB_FIELDS.has(key) ? markerRef(v) : undefined;
    if (ref !== undefined) out.add(ref);
    else if (isPlain(v)) blobRefs(v, out, depth + 1);
  }
  return out;
}

/** True if `value` (a stored form) holds a marker. */
export const hasBlobRefs = (value: unknown): boolean => blobRefs(value).size > 0;

const isSameMarker = (v: unknown, path: string): boolean => isPlain(v) && v[SAME] === path;

/**
 * Records written by an earlier version stored a case's unmodified proposed plan and its output as
 * `{ "$same": "<path>" }` markers; this puts the shared object back (other records pass through).
 */
export function unpackLegacyRecord(rec: ActorRecord | undefined): ActorRecord | undefined {
  if (!rec || rec.kind !== 'case' || !rec.snapshot) return rec;
  const snap = rec.snapshot as { context?: Record<string, unknown>; output?: unknown };
  const ctx = snap.context;
  if (!ctx) return rec;
  const plan = isSameMarker(ctx.proposedPlan, 'plan');
  const output = isSameMarker(snap.output, 'context.resolution');
  if (!plan && !output) return rec;
  const context = plan ? { ...ctx, proposedPlan: ctx.plan } : ctx;
  return { ...rec, snapshot: { ...snap, context, ...(output ? { output: context.resolution } : {}) } };
}
