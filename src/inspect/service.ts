import type { LoadedModel } from '../models/loader.ts';
import type { TransitionNotice } from '../runtime/runtime.ts';
import type { ActorKind, ActorRecord, JournalEntry } from '../runtime/store.ts';
import type { Subscription } from '../transport/transport.ts';
import type { InspectorBackend } from './backend.ts';
import { chartOf } from './graph.ts';
import { layoutChart, type LaidOutChart } from './layout.ts';
import { Redactor } from './redact.ts';
import { machineFor, replayJournal, type Replay } from './replay.ts';
import type { InspectionRecord, InspectionStats } from './stream.ts';

/** One actor in the inspector's list. */
export interface ActorRow {
  id: string;
  kind: ActorKind;
  model: string;
  node: string;
  state: string;
  status: string;
  seq: number;
  updatedAt: number;
  /** A case's episode. */
  episodeId: string | null;
  /** An episode's cases, oldest first. */
  cases: string[];
}

export interface ActorFilter {
  kind?: ActorKind;
  model?: string;
  state?: string;
  node?: string;
  status?: 'live' | 'finished' | 'all';
  q?: string;
}

const CASE_ID = /^(.+)\.(?:case|operator)-[^.]+$/;
/** Finished actors kept in the list (the newest); any actor can still be opened by id. */
const KEEP_FINISHED = 500;
const MAX_JOURNAL = 5000;

async function collect<T>(it: AsyncIterable<T>, max = Infinity): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) {
    out.push(x);
    if (out.length >= max) break;
  }
  return out;
}

/**
 * The inspector's model of the node: every live actor (and the most recent finished ones) with its
 * state and links, kept current from the transport; charts laid out once per machine; journals
 * replayed on demand. Independent of HTTP, so the CLI and tests use it too.
 */
export class InspectorService {
  readonly backend: InspectorBackend;
  readonly redactor: Redactor;
  #models: Map<string, LoadedModel>;
  #rows = new Map<string, ActorRow>();
  /** Case ids by episode id, so that an agent's row finds its cases without a scan of every row. */
  #casesOf = new Map<string, Set<string>>();
  #charts = new Map<string, Promise<LaidOutChart>>();
  #subs: Subscription[] = [];
  #listeners = new Set<(row: ActorRow) => void>();
  #recordListeners = new Set<(r: InspectionRecord) => void>();
  #noticeListeners = new Set<(n: TransitionNotice) => void>();
  #statsListeners = new Set<(s: InspectionStats) => void>();
  lastStats: InspectionStats | null = null;

  constructor(backend: InspectorBackend) {
    this.backend = backend;
    this.redactor = new Redactor(backend.models);
    this.#models = new Map(backend.models.map((m) => [m.name, m]));
  }

  get models(): ReadonlyMap<string, LoadedModel> {
    return this.#models;
  }

  /** Subscribes to live data, then loads the live actors (and, in the background, recent finished ones). */
  async start(): Promise<void> {
    this.#subs.push(
      this.backend.onNotice((n) => this.#onNotice(n)),
      this.backend.onRecord((r) => this.#onRecord(r)),
      this.backend.onStats((s) => {
        this.lastStats = s;
        for (const l of this.#statsListeners) l(s);
      }),
    );
    for await (const rec of this.backend.liveActors()) if (!this.#rows.has(rec.id)) this.#put(this.#fromRecord(rec));
    void this.#loadFinished().catch(() => undefined);
  }

  close(): void {
    for (const s of this.#subs) s.unsubscribe();
    this.#subs = [];
  }

  async #loadFinished(): Promise<void> {
    const finished: ActorRow[] = [];
    for await (const rec of this.backend.actors()) {
      if (rec.status === 'active' || this.#rows.has(rec.id)) continue;
      finished.push(this.#fromRecord(rec));
      if (finished.length > KEEP_FINISHED * 2) {
        finished.sort((a, b) => b.updatedAt - a.updatedAt);
        finished.length = KEEP_FINISHED;
      }
    }
    finished.sort((a, b) => b.updatedAt - a.updatedAt);
    for (const r of finished.slice(0, KEEP_FINISHED)) if (!this.#rows.has(r.id)) this.#put(r);
  }

  #fromRecord(rec: ActorRecord): ActorRow {
    const ctx = ((rec.snapshot as { context?: Record<string, unknown> } | undefined)?.context ?? {}) as {
      episodeId?: unknown;
      caseIds?: unknown;
    };
    return {
      id: rec.id,
      kind: rec.kind,
      model: rec.model,
      node: this.backend.node,
      state: rec.state,
      status: rec.status,
      seq: rec.seq,
      updatedAt: rec.updatedAt,
      episodeId:
        rec.kind === 'case'
          ? typeof ctx.episodeId === 'string'
            ? ctx.episodeId
            : (CASE_ID.exec(rec.id)?.[1] ?? null)
          : null,
      cases:
        rec.kind === 'agent' && Array.isArray(ctx.caseIds)
          ? ctx.caseIds.filter((x): x is string => typeof x === 'string')
          : [],
    };
  }

  #put(row: ActorRow): void {
    this.#rows.set(row.id, row);
    if (row.kind === 'case' && row.episodeId) {
      let cases = this.#casesOf.get(row.episodeId);
      if (!cases) this.#casesOf.set(row.episodeId, (cases = new Set()));
      cases.add(row.id);
      const agent = this.#rows.get(row.episodeId);
      if (agent && !agent.cases.includes(row.id)) agent.cases.push(row.id);
    }
    if (row.kind === 'agent') {
      for (const id of this.#casesOf.get(row.id) ?? [])
        if (this.#rows.has(id) && !row.cases.includes(id)) row.cases.push(id);
    }
  }

  #onNotice(n: TransitionNotice): void {
    let row = this.#rows.get(n.id);
    if (!row) {
      row = {
        id: n.id,
        kind: n.kind,
        model: n.model,
        node: this.backend.node,
        state: n.state,
        status: n.status,
        seq: n.seq,
        updatedAt: n.at,
        episodeId: n.kind === 'case' ? (CASE_ID.exec(n.id)?.[1] ?? null) : null,
        cases: [],
      };
      this.#put(row);
    } else if (n.seq >= row.seq) {
      row.state = n.state;
      row.status = n.status;
      row.seq = n.seq;
      row.updatedAt = n.at;
    }
    this.#trim();
    for (const l of this.#noticeListeners) l(n);
    for (const l of this.#listeners) l(row);
  }

  #onRecord(r: InspectionRecord): void {
    const row = this.#rows.get(r.id);
    // Records run ahead of durability: they light the state at once; notices confirm it.
    if (row && r.type === 'snapshot' && r.state && row.status === 'active') {
      row.state = r.state;
      if (r.status === 'done') row.status = 'done';
      for (const l of this.#listeners) l(row);
    }
    for (const l of this.#recordListeners) l(r);
  }

  #trim(): void {
    if (this.#rows.size < 50_000) return;
    const finished = [...this.#rows.values()]
      .filter((r) => r.status !== 'active')
      .sort((a, b) => a.updatedAt - b.updatedAt);
    for (const r of finished.slice(0, finished.length - KEEP_FINISHED)) {
      this.#rows.delete(r.id);
      const cases = r.kind === 'case' && r.episodeId ? this.#casesOf.get(r.episodeId) : undefined;
      if (cases?.delete(r.id) && cases.size === 0) this.#casesOf.delete(r.episodeId!);
    }
  }

  onRow(l: (row: ActorRow) => void): () => void {
    this.#listeners.add(l);
    return () => this.#listeners.delete(l);
  }

  onRecord(l: (r: InspectionRecord) => void): () => void {
    this.#recordListeners.add(l);
    return () => this.#recordListeners.delete(l);
  }

  onNotice(l: (n: TransitionNotice) => void): () => void {
    this.#noticeListeners.add(l);
    return () => this.#noticeListeners.delete(l);
  }

  onStats(l: (s: InspectionStats) => void): () => void {
    this.#statsListeners.add(l);
    return () => this.#statsListeners.delete(l);
  }

  row(id: string): ActorRow | undefined {
    return this.#rows.get(id);
  }

  /** Actors matching a filter, newest change first, among `models`. */
  list(
    filter: ActorFilter,
    models: ReadonlySet<string>,
    limit = 200,
  ): {
    rows: ActorRow[];
    total: number;
    facets: {
      kinds: Record<string, number>;
      models: Record<string, number>;
      states: Record<string, number>;
      nodes: Record<string, number>;
    };
  } {
    const q = filter.q?.toLowerCase();
    const status = filter.status ?? 'all';
    const facets = {
      kinds: {} as Record<string, number>,
      models: {} as Record<string, number>,
      states: {} as Record<string, number>,
      nodes: {} as Record<string, number>,
    };
    const rows: ActorRow[] = [];
    for (const r of this.#rows.values()) {
      if (!models.has(r.model)) continue;
      if (status === 'live' && r.status !== 'active') continue;
      if (status === 'finished' && r.status === 'active') continue;
      if (q && !r.id.toLowerCase().includes(q)) continue;
      const inKind = !filter.kind || r.kind === filter.kind;
      const inModel = !filter.model || r.model === filter.model;
      const inState = !filter.state || r.state === filter.state;
      const inNode = !filter.node || r.node === filter.node;
      if (inModel && inState && inNode) facets.kinds[r.kind] = (facets.kinds[r.kind] ?? 0) + 1;
      if (inKind && inState && inNode) facets.models[r.model] = (facets.models[r.model] ?? 0) + 1;
      if (inKind && inModel && inNode) facets.states[r.state] = (facets.states[r.state] ?? 0) + 1;
      if (inKind && inModel && inState) facets.nodes[r.node] = (facets.nodes[r.node] ?? 0) + 1;
      if (inKind && inModel && inState && inNode) rows.push(r);
    }
    rows.sort((a, b) => b.updatedAt - a.updatedAt || (a.id < b.id ? -1 : 1));
    return { rows: rows.slice(0, limit), total: rows.length, facets };
  }

  /** The statechart of a model's agents or cases, laid out (computed once per machine). */
  chart(model: string, kind: ActorKind): Promise<LaidOutChart> {
    const m = this.#models.get(model);
    if (!m) return Promise.reject(new Error(`no model named '${model}'`));
    const key = `${model}:${kind}`;
    let c = this.#charts.get(key);
    if (!c) {
      c = layoutChart(chartOf(machineFor(m, kind)));
      this.#charts.set(key, c);
      c.catch(() => this.#charts.delete(key));
    }
    return c;
  }

  /** An actor's journal replayed (time travel), or undefined when there is no such actor. */
  async replay(id: string): Promise<{ row: ActorRow; replay: Replay } | undefined> {
    const rec = await this.backend.load(id);
    if (!rec) return undefined;
    const model = this.#models.get(rec.model);
    if (!model) return undefined;
    const entries: JournalEntry[] = await collect(this.backend.journal(id), MAX_JOURNAL);
    const known = this.#rows.get(id);
    const row = this.#fromRecord(rec);
    if (known) {
      row.cases = [...new Set([...row.cases, ...known.cases])];
      row.node = known.node;
    } else this.#put(row);
    if (row.kind === 'agent')
      for (const cid of this.#casesOf.get(id) ?? [])
        if (this.#rows.has(cid) && !row.cases.includes(cid)) row.cases.push(cid);
    return { row, replay: replayJournal({ id, kind: rec.kind, model, entries, record: rec, redactor: this.redactor }) };
  }
}
