import { ContractError, EffectError } from '../../contracts/errors.ts';
import type { Observation } from '../../contracts/observation.ts';
import type { Plan } from '../../contracts/plan.ts';
import type { StepContext } from '../../models/define.ts';
import type { LoadedModel } from '../../models/loader.ts';

/**
 * Planning with the model's rule-based planner. The draft is checked against the plan contract and
 * every action's argument schema: a plan that fails its contract is never executed.
 */
export async function plan(
  model: LoadedModel,
  episodeId: string,
  observation: Observation,
  ctx: StepContext,
): Promise<Plan> {
  const draft = await model.handlers.plan(observation as Observation & { fields: Record<string, unknown> }, ctx);
  try {
    return model.validatePlan(
      { ...draft, id: `${episodeId}.plan-${ctx.attempt}`, planner: `${model.name}/rules@${model.config.version}` },
      'Plan',
    );
  } catch (err) {
    if (err instanceof ContractError)
      throw new EffectError(`planner produced an invalid plan: ${err.message}`, {
        transient: false,
        cause: err,
        code: err.code,
      });
    throw err;
  }
}
