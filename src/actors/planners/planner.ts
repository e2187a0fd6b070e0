import type { Observation } from '../../contracts/observation.ts';
import type { Plan } from '../../contracts/plan.ts';
import type { StepContext } from '../../models/define.ts';
import type { LoadedModel } from '../../models/loader.ts';
import { plan as rulePlan } from './rule-planner.ts';

/**
 * A planner turns an observation into a plan. The runtime invokes it as the `plan` effect of an
 * episode. It must return a plan that passes `model.validatePlan` (the plan contract and each action's
 * argument schema), or throw `EffectError` (transient: retried with backoff; permanent: the episode
 * fails with the cause). A plan it cannot trust should come back with a low confidence and a high
 * risk, so the gate routes it to review: planners propose, only the gate decides.
 */
export interface Planner {
  /** Shown in plans (`plan.planner`) and in the audit log. */
  readonly name: string;
  plan(model: LoadedModel, episodeId: string, observation: Observation, ctx: StepContext): Promise<Plan>;
  /**
   * True when every plan this planner returns has already passed `model.validatePlan` (the built-in
   * planners check their own). Otherwise the runtime checks each plan it returns before the episode
   * takes it: a plan that fails is refused (the `plan` effect fails for good, naming the field), and
   * what the contract strips is never run. @default false
   */
  readonly validatesPlans?: boolean;
}

/** The model's own rule-based planner (`handlers.plan`, whose plans the loader validates). */
export const rulePlanner: Planner = {
  name: 'rules',
  plan: rulePlan,
  validatesPlans: true,
};
