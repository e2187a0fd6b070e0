import type { AuditDraft } from '../base/audit-log.ts';
import type { Ack, ActorView, TransitionNotice } from '../runtime/runtime.ts';
import type { LoadedModel } from '../models/loader.ts';

/** What `/api/v1` needs of the runtime (the embedded `Runtime` has all of it). */
export interface ApiV1Runtime {
  readonly models: ReadonlyMap<string, LoadedModel>;
  startEpisode(model: string, signal: unknown, opts: { episodeId: string; traceparent?: string }): Promise<Ack>;
  get(id: string): Promise<ActorView | undefined>;
  audit(drafts: AuditDraft[]): Promise<void>;
  readonly clock: { now(): number };
  /**
   * Episodes (agent actors, finished ones included) in ascending id order, only those whose id sorts
   * after `after`: `GET /api/v1/episodes` reads it lazily and stops at a page. The embedded store seeks
   * to `after` (a LevelDB range read); the cluster's scans its index on each call.
   */
  episodes(after?: string): AsyncIterable<ActorView>;
  /**
   * Every durable agent transition (the outcome stream `GET /api/v1/episodes/{id}/events`);
   * returns the unsubscribe.
   */
  onAgent(listener: (n: TransitionNotice) => void): () => void;
}
