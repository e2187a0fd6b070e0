import { EffectError } from '../../contracts/errors.ts';
import type { Plan } from '../../contracts/plan.ts';
import type { World } from '../../models/define.ts';
import type { LoadedModel } from '../../models/loader.ts';
import { stepContext } from '../step-context.ts';
import { failpoint } from '../../runtime/failpoints.ts';

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
}

/**
 * Runs one action (or its compensation) exactly once per idempotency key. Before running, the world's
 * ledger is asked whether the effect under this key already took place (a crash can fall between the
 * effect and the durable record of its result); if it did, its recorded result is returned and
 * nothing runs again.
 */
export async function executeOnce(req: ExecuteRequest, compensation: boolean): Promise<{ result: unknown; replayed: boolean; skipped?: boolean }> {
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
  const prior = await req.world.lookup(req.key);
  if (prior) return { result: prior.result, replayed: true };
  const ctx = { ...stepContext(req.now, req.key, req.attempt, req.seed), key: req.key, world: req.world };
  const result = await impl.execute(args, ctx);
  failpoint('after-effect');
  return { result, replayed: false };
}
