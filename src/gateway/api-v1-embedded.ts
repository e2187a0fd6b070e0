import type { LevelStore } from '../runtime/level-store.ts';
import type { Runtime } from '../runtime/runtime.ts';
import { ApiV1 } from './api-v1.ts';
import { ServiceAccounts } from './service-accounts.ts';

/**
 * `/api/v1` of the embedded deployment (`handoff start`): episodes start on this runtime, service
 * accounts are read from the data folder's meta records (`handoff accounts …`).
 */
export function embeddedApi(rt: Runtime, store: LevelStore): ApiV1 {
  return new ApiV1({ runtime: rt, accounts: new ServiceAccounts(store), log: rt.log });
}
