import { EffectError } from '../../contracts/errors.ts';
import type { Plan } from '../../contracts/plan.ts';
import type { EffectFence, World } from '../../models/define.ts';
import type { LoadedModel } from '../../models/loader.ts';
import { failpoint } from '../../base/failpoints.ts';
import { stepContext } from '../step-context.ts';
import { httpBudgetMs, runHttpAction } from './http-action.ts';

export interface ExecuteRequest {
  model: LoadedModel;
  world: World;
  plan: Plan;
  step: number;
  /** `<episodeId>/<step>`, or `<episodeId>/<step>/compensate`. */
  key: string;
  attempt: number;
  now: number;
  seed: string;
  /** For a compensation: the result of the action being undone. */
  original?: unknown;
  /** Cluster: the lease's fencing token and its check; checked before the ledger lookup and before every application. */
  fence?: EffectFence;
  /**
   * How long the action may take before it fails as a transient `effect.timeout` naming it (and is
   * retried under the same idempotency key). @default `HANDOFF_ACTION_TIMEOUT_MS`, else 30 s
   */
  timeoutMs?: number;
  /** Wraps the call to the action (circuit breaker, fault injection). */
  guard?: <T>(type: string, fn: () => Promise<T>) => Promise<T>;
  /** The episode's W3C trace context, handed to the action (`ctx.traceparent`) to pass on to the service. */
  traceparent?: string | undefined;
}

export interface ExecuteResult {
  result: unknown;
  /** The effect had already taken place; its recorded result is returned and nothing ran. */
  replayed: boolean;
  /** A compensation of an action that needs none. */
  skipped?: boolean;
}

/**
 * Runs one action (or its compensation) at most once per idempotency key.
 *
 * The intent log is the actor's own journal: the effect request is durable before the executor is
 * called (write-ahead), and the result is durable when the actor commits `action.done` with it.
 * Between the two, a crash can fall after the effect took place; so before running, the world's
 * ledger is asked whether the effect under this key already happened, and if so its recorded result
 * is returned and nothing runs again.
 */
export async function executeOnce(req: ExecuteRequest, compensation: boolean): Promise<ExecuteResult> {
  const action = req.plan.actions[req.step];
  if (!action) throw new EffectError(`plan has no step ${req.step}`, { transient: false });
  let type = action.type;
  let args: Record<string, unknown> = action.args;
  if (compensation) {
    const comp = req.model.config.actions[action.type]?.compensation;
    if (!comp) return { result: null, replayed: false, skipped: true };
    type = comp;
    args = { ...action.args, original: req.original ?? null };
  }
  const impl = req.model.handlers.actions[type];
  if (!impl) throw new EffectError(`no implementation for action '${type}'`, { transient: false });

  const fence = req.fence;
  fence?.check();
  const prior = await req.world.lookup(req.key, fence);
  if (prior) return { result: prior.result, replayed: true };
  // The world the action sees carries the fence: every application is checked (and, by a world
  // that records tokens, refused when stale) at the moment it is made, not only when it was issued.
  const world: World = fence
    ? {
        apply: (key, action, a, result) => {
          fence.check();
          return req.world.apply(key, action, a, result, fence);
        },
        lookup: (key) => req.world.lookup(key, fence),
      }
    : req.world;
  fence?.check();
  failpoint('before-effect-pause');
  failpoint('before-effect');
  const ctx = {
    ...stepContext(req.now, req.key, req.attempt, req.seed, req.traceparent),
    key: req.key,
    idempotencyKey: req.key,
    ...(fence ? { fencingToken: fence.token } : {}),
    world,
  };
  // An HTTP action of model.json is a call the executor makes; its timeout covers all its attempts.
  const http = req.model.config.actions[type]?.http;
  const timeoutMs = req.timeoutMs ?? (http ? Math.max(actionTimeoutMs(), httpBudgetMs(http)) : actionTimeoutMs());
  const call = () => (http ? runHttpAction(type, http, args, ctx) : impl.execute(args, ctx));
  const run = () =>
    withTimeout(call(), timeoutMs, `${compensation ? 'compensation' : 'action'} '${type}' (key ${req.key})`);
  const result = await (req.guard ? req.guard(type, run) : run());
  failpoint('after-effect');
  return { result, replayed: false };
}

/** `HANDOFF_ACTION_TIMEOUT_MS`, else 30 s. */
export function actionTimeoutMs(env: NodeJS.ProcessEnv = process.env): number {
  const v = env.HANDOFF_ACTION_TIMEOUT_MS;
  if (v === undefined || v === '') return 30_000;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0)
    throw new EffectError(`HANDOFF_ACTION_TIMEOUT_MS must be a positive number of milliseconds, not '${v}'`, {
      transient: false,
      code: 'config.invalid',
    });
  return n;
}

/**
 * An action that never settles would hold its episode for ever (and, with nothing else to wait for,
 * end the process with Node's exit code 13 and no word): it fails after `ms` instead, naming itself.
 */
function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(new EffectError(`${what} did not settle within ${ms} ms`, { transient: true, code: 'effect.timeout' })),
      ms,
    );
  });
  return Promise.race([Promise.resolve(p), timeout]).finally(() => clearTimeout(timer));
}
