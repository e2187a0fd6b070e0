import { EffectError } from '../../contracts/errors.ts';
import type { Plan } from '../../contracts/plan.ts';
import type { World } from '../../models/define.ts';
import type { LoadedModel } from '../../models/loader.ts';
import type { Intent } from '../../runtime/store.ts';
import { failpoint } from '../../runtime/failpoints.ts';
import { stepContext } from '../step-context.ts';

export interface IntentLog {
  putIntent(intent: Intent): Promise<void>;
  getIntent(key: string): Promise<Intent | undefined>;
}

export interface ExecuteRequest {
  model: LoadedModel;
  world: World;
  intents: IntentLog;
  plan: Plan;
  step: number;
  /** `<episodeId>/<step>`, or `<episodeId>/<step>/compensate`. */
  key: string;
  attempt: number;
  now: number;
  seed: string;
  /** For a compensation: the result of the action being undone. */
  original?: unknown;
  /** Wraps the call to the action (circuit breaker, fault injection). */
  guard?: <T>(type: string, fn: () => Promise<T>) => Promise<T>;
}

export interface ExecuteResult {
  result: unknown;
  /** The effect had already taken place; its recorded result is returned and nothing ran. */
  replayed: boolean;
  /** A compensation of an action that needs none. */
  skipped?: boolean;
}

/**
 * Runs one action (or its compensation) at most once per idempotency key:
 *
 * 1. `succeeded` intent recorded → return its result; nothing runs.
 * 2. `started` intent with no result → a crash fell between the effect and its record: ask the
 *    world's ledger whether the effect took place under this key; if so, record and return it.
 * 3. Otherwise record `started` (durably), run the effect, record `succeeded` with the result.
 *
 * Only then is the result handed back to the actor, whose acknowledgement follows its own commit.
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

  const intent = await req.intents.getIntent(req.key);
  if (intent?.status === 'succeeded') return { result: intent.result ?? null, replayed: true };
  if (intent?.status === 'started') {
    const prior = await req.world.lookup(req.key);
    if (prior) {
      await req.intents.putIntent({ key: req.key, status: 'succeeded', at: req.now, result: prior.result });
      return { result: prior.result, replayed: true };
    }
  } else {
    await req.intents.putIntent({ key: req.key, status: 'started', at: req.now });
  }
  const ctx = { ...stepContext(req.now, req.key, req.attempt, req.seed), key: req.key, world: req.world };
  const run = () => impl.execute(args, ctx);
  const result = await (req.guard ? req.guard(type, run) : run());
  failpoint('after-effect');
  await req.intents.putIntent({ key: req.key, status: 'succeeded', at: req.now, result: result ?? null });
  return { result, replayed: false };
}
