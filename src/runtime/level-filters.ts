import type { Level } from 'level';
import { KeyFilter } from './key-filter.ts';
import { K } from './level-format.ts';
import { blobGroupKey, blobGroupOf, blobRef, blobRefs, blobsByRef, groupOfBlobRef } from './record-codec.ts';
import type { ActorKind, ActorRecord } from './store.ts';

type SpaceFilter = { filter: KeyFilter; state: 'idle' | 'loading' | 'ready' };

/**
 * Bloom filters of the key spaces that are mostly asked for keys that are not there: actor records
 * (is this id new?), command ids (the replay guard) and the world's ledger (did this effect take
 * place?). Every key written through the store is added when it is queued; the keys already on
 * disk are added by one scan of the space, started the first time the space is read. Until that
 * scan ends, reads go to LevelDB as before; after it, a key the filter has never seen is answered
 * "absent" without a read.
 */
export class SpaceFilters {
  #db: Level<string, unknown>;
  #filters: Map<string, SpaceFilter>;
  #hooked = false;

  constructor(db: Level<string, unknown>, spaces: readonly string[]) {
    this.#db = db;
    this.#filters = new Map(spaces.map((space) => [space, { filter: new KeyFilter(), state: 'idle' }]));
  }

  /** A key written through the store (`<space>:...`). */
  add(key: string): void {
    if (key.charCodeAt(1) === 58) this.#filters.get(key[0]!)?.filter.add(key);
  }

  /** True only if `key` was never written: its space's filter is loaded and has not seen it. */
  absent(key: string, closing: boolean): boolean {
    const f = key.charCodeAt(1) === 58 ? this.#filters.get(key[0]!) : undefined;
    if (!f) return false;
    if (f.state === 'ready') return !f.filter.mightContain(key);
    if (f.state === 'idle' && !closing) {
      this.#hookDirectWrites();
      void this.#scan(key[0]!, f);
    }
    return false;
  }

  /**
   * Keys written to `db` directly rather than through the store (tools, tests) reach the filters
   * too. (The store's own batches do not pass the hook: their keys were added when queued.)
   */
  #hookDirectWrites(): void {
    if (this.#hooked) return;
    this.#hooked = true;
    this.#db.hooks.prewrite.add((op) => {
      if (op.type !== 'put' || typeof op.key !== 'string') return;
      this.add(op.key);
    });
  }

  async #scan(space: string, f: SpaceFilter): Promise<void> {
    f.state = 'loading';
    try {
      for await (const key of this.#db.keys({ gt: `${space}:`, lt: `${space};` })) f.filter.add(key);
      f.state = 'ready';
    } catch {
      // Closed while scanning: reads keep going to LevelDB.
      f.state = 'idle';
    }
  }
}

/**
 * The records of `ids` that exist, in order, each with the blobs it refers to (as `load` reads
 * them): the records with one `getMany`, then the blob groups they refer to, one `getMany` per
 * level of blobs referring to blobs.
 */
export async function loadMany(
  db: Level<string, unknown>,
  ids: string[],
  unpack: (id: string, stored: unknown, blobs: Map<string, unknown>) => ActorRecord,
): Promise<ActorRecord[]> {
  const stored = await db.getMany(ids.map((id) => K.actor(id)));
  // Blob group keys (`a:<id>\u0000<group>`) read so far; blobs may refer to blobs of other groups.
  const read = new Set<string>();
  const byActor = new Map<string, [string, unknown][]>();
  let wanted = new Set<string>();
  const want = (id: string, value: unknown) => {
    for (const ref of blobRefs(value)) {
      const key = blobGroupKey(K.actor(id), groupOfBlobRef(ref));
      if (!read.has(key)) wanted.add(key);
    }
  };
  stored.forEach((value, i) => want(ids[i]!, value));
  while (wanted.size > 0) {
    const keys = [...wanted];
    wanted = new Set();
    const values = await db.getMany(keys);
    for (const key of keys) read.add(key);
    keys.forEach((key, i) => {
      const members = values[i];
      if (members === undefined) return;
      const id = key.slice(2, key.indexOf('\u0000'));
      let mine = byActor.get(id);
      if (!mine) byActor.set(id, (mine = []));
      mine.push([blobGroupOf(key)!, members]);
      if (typeof members === 'object' && members !== null) for (const m of Object.values(members)) want(id, m);
    });
  }
  const out: ActorRecord[] = [];
  ids.forEach((id, i) => {
    if (stored[i] !== undefined) out.push(unpack(id, stored[i], blobsByRef(byActor.get(id) ?? [])));
  });
  return out;
}

/**
 * Every actor record (of `kind`), in key order, each with the blob groups stored right after it; with
 * `after`, a range read from the first id that sorts after it (the blob groups of `after` itself, next
 * in key order, are skipped as they belong to no record read).
 */
export async function* actorsInOrder(
  db: Level<string, unknown>,
  kind: ActorKind | undefined,
  unpack: (id: string, stored: unknown, blobs: Map<string, unknown>) => ActorRecord,
  after?: string,
): AsyncIterable<ActorRecord> {
  let current: { key: string; value: unknown } | undefined;
  let blobs = new Map<string, unknown>();
  const done = (c: { key: string; value: unknown }) => unpack(c.key.slice(2), c.value, blobs);
  for await (const [key, value] of db.iterator({ gt: after === undefined ? 'a:' : K.actor(after), lt: 'a;' })) {
    const group = blobGroupOf(key);
    if (group !== undefined) {
      if (current && key.startsWith(`${current.key}\u0000`)) blobsByRef([[group, value]], blobs);
      continue;
    }
    if (current && (!kind || (current.value as ActorRecord).kind === kind)) yield done(current);
    current = { key, value };
    blobs = new Map();
  }
  if (current && (!kind || (current.value as ActorRecord).kind === kind)) yield done(current);
}

/**
 * The blob groups of a *finished* actor that hold blobs neither its record nor its remaining journal
 * refers to, directly or through another blob (what a redaction or a journal deletion left behind:
 * they may hold the very personal data that was removed), each with what to keep (undefined: delete
 * the group). Active actors are left alone: their next commit may refer to a blob again.
 */
export async function unreferencedBlobs(
  db: Level<string, unknown>,
  id: string,
  groups: Map<string, Record<string, unknown>>,
): Promise<[string, Record<string, unknown> | undefined][]> {
  const record = (await db.get(K.actor(id))) as ActorRecord | undefined;
  if (record?.status === 'active' || groups.size === 0) return [];
  const blobs = blobsByRef(groups);
  const live = blobRefs(record);
  for await (const value of db.values({ gte: K.journal(id, 0), lt: `j:${id};` })) blobRefs(value, live);
  for (const ref of live) blobRefs(blobs.get(ref), live);
  const changes: [string, Record<string, unknown> | undefined][] = [];
  for (const [group, members] of groups) {
    const kept = Object.fromEntries(Object.entries(members).filter(([n]) => live.has(blobRef(group, n))));
    const keptCount = Object.keys(kept).length;
    if (keptCount === Object.keys(members).length) continue;
    changes.push([blobGroupKey(K.actor(id), group), keptCount === 0 ? undefined : kept]);
  }
  return changes;
}
