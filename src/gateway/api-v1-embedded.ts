import type { LevelStore } from '../runtime/level-store.ts';
import { viewOfRecord, type Runtime } from '../runtime/runtime.ts';
import type { ApiLimitsOptions } from './api-limits.ts';
import { ApiV1, type ApiV1Runtime } from './api-v1.ts';
import { ServiceAccounts } from './service-accounts.ts';

/** What `/api/v1` needs, from an embedded runtime on its LevelDB store (`rt.store`). */
export function embeddedApiRuntime(rt: Runtime, store: LevelStore): ApiV1Runtime {
  return {
    models: rt.models,
    clock: rt.clock,
    startEpisode: (model, signal, opts) => rt.startEpisode(model, signal, opts),
    get: (id) => rt.get(id),
    audit: (drafts) => rt.audit(drafts),
    async *episodes(after) {
      // A range read from the id after the cursor: page N costs what page 1 costs. These are the stored
      // records; the in-memory state of a live actor may be a step ahead.
      for await (const rec of store.actors('agent', after)) yield viewOfRecord(rec);
    },
    onAgent: (listener) =>
      rt.onTransition((n) => {
        if (n.kind === 'agent') listener(n);
      }),
  };
}

/**
 * `/api/v1` of the embedded deployment (`handoff start`): episodes start on this runtime, service
 * accounts are read from the data folder's meta records (`handoff accounts …`).
 */
export function embeddedApi(rt: Runtime, store: LevelStore, limits?: ApiLimitsOptions): ApiV1 {
  return new ApiV1({
    runtime: embeddedApiRuntime(rt, store),
    accounts: new ServiceAccounts(store),
    log: rt.log,
    ...(limits ? { limits } : {}),
  });
}
