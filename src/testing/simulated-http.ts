/**
 * HTTP actions in model-based tests (docs/testing.md, "Models with HTTP actions"): generated suites
 * never call the network. Each HTTP action of `model.json` is replaced by a simulated effect with the
 * same argument schema (plans and reviewer edits are validated as before) that records its effect in
 * the world's ledger under the effect's key, as the real call does once the service answered success.
 * The runtime keeps its own idempotency (a key already in the ledger is not applied again), and the
 * effect gates of the harness decide, per step of a path, whether the effect succeeds or fails
 * transiently or for good: the retry and compensation paths are generated as for a TypeScript action.
 */
import type { ModelConfig } from '../contracts/model-config.ts';
import type { ModelHandlers } from '../models/define.ts';
import type { LoadedModel } from '../models/loader.ts';

/** The model's HTTP actions (those of `model.json` with `http`), in declaration order. */
export function httpActionNames(model: Pick<LoadedModel, 'config'>): string[] {
  return Object.entries(model.config.actions)
    .filter(([, a]) => !!a.http)
    .map(([name]) => name);
}

/**
 * What a simulated HTTP action returns: no service answered, so there is no answer to pass on. A
 * compensation gets it as `original`.
 */
export function simulatedResult(type: string, key: string): Record<string, unknown> {
  return { simulated: true, action: type, key };
}

/**
 * The model with every HTTP action replaced by a simulated effect (the same object when it has
 * none, so models without HTTP actions are untouched). The `http` declarations are dropped from the
 * configuration the runtime sees, so its executor runs the simulated effect, never `fetch`.
 */
export function simulateHttpActions(model: LoadedModel): LoadedModel {
  const names = httpActionNames(model);
  if (names.length === 0) return model;
  const actions: ModelHandlers['actions'] = { ...model.handlers.actions };
  const configActions: ModelConfig['actions'] = { ...model.config.actions };
  for (const type of names) {
    const impl = model.handlers.actions[type];
    if (!impl) continue;
    actions[type] = {
      args: impl.args,
      async execute(args, ctx) {
        const result = simulatedResult(type, ctx.key);
        await ctx.world.apply(ctx.key, type, args, result);
        return result;
      },
    };
    const { http: _http, ...rest } = configActions[type]!;
    configActions[type] = rest as ModelConfig['actions'][string];
  }
  return {
    ...model,
    config: { ...model.config, actions: configActions },
    handlers: { ...model.handlers, actions },
  };
}
