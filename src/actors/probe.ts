import { join, relative } from 'node:path';
import { z } from 'zod';
import { ContractError, HandoffError } from '../contracts/errors.ts';
import type { Observation } from '../contracts/observation.ts';
import { toIssues } from '../contracts/parse.ts';
import type { LoadedModel, Problem } from '../models/loader.ts';
import { Rng } from '../base/rng.ts';
import { perceive } from './perceivers/perceive.ts';
import { plan as rulePlan } from './planners/rule-planner.ts';

/**
 * Runs the model's own code on its own synthesized signals, as the runtime would (the perceiver, the
 * field contract, the rule planner, each action's argument schema), with benign draws so simulated
 * flakiness stays out of the way. Reports what would make every episode fail: a perceiver that always
 * throws, fields or plans that break their schema (with the zod issues), a synthesizer that throws.
 * `handoff models check`, `testgen` and `simulate` run it; loading a model for the runtime does not.
 */
export async function probeModel(
  model: LoadedModel,
  opts: { signals?: number; now?: number } = {},
): Promise<Problem[]> {
  const n = opts.signals ?? 12;
  const now = opts.now ?? Date.UTC(2026, 0, 5, 8);
  const ctx = { now, attempt: 1, draw: () => 0.999 };
  const abs = join(model.dir, 'handlers.ts');
  const file = relative(process.cwd(), abs).startsWith('..') ? abs : relative(process.cwd(), abs);
  const problems = new Map<string, Problem>();
  const add = (path: string, message: string) => {
    const key = `${path}|${message}`;
    if (!problems.has(key)) problems.set(key, { file, path, message });
  };
  /** The underlying contract (zod) issues of an error, else its message. */
  const explain = (err: unknown): string => {
    for (let e: unknown = err, i = 0; e && i < 5; e = (e as { cause?: unknown }).cause, i++)
      if (e instanceof ContractError) return e.issues.map((x) => `${x.path || '(root)'}: ${x.message}`).join('; ');
    if (err instanceof z.ZodError)
      return toIssues(err)
        .map((x) => `${x.path || '(root)'}: ${x.message}`)
        .join('; ');
    return err instanceof Error ? err.message : String(err);
  };
  let perceived = 0;
  let planned = 0;
  let firstPerceive: string | undefined;
  let firstPlan: string | undefined;
  for (let i = 0; i < n; i++) {
    let signal: unknown;
    try {
      signal = model.handlers.synthesize(new Rng(`handoff-probe/${model.name}/${i}`), i);
    } catch (err) {
      add('synthesize', `synthesize(rng, ${i}) threw: ${explain(err)}`);
      continue;
    }
    const sig = model.handlers.signal.safeParse(signal);
    if (!sig.success) {
      add('signal', `a synthesized signal breaks the signal schema: ${explain(sig.error)}`);
      continue;
    }
    let observation: Observation;
    try {
      observation = await perceive(model, `probe-${i}`, sig.data, ctx);
      perceived++;
    } catch (err) {
      const contract = explain(err);
      if (err instanceof HandoffError && err.code === 'contract.invalid')
        add('fields', `the perceiver's fields break the fields schema: ${contract}`);
      firstPerceive ??= contract;
      continue;
    }
    try {
      await rulePlan(model, `probe-${i}`, observation, ctx);
      planned++;
    } catch (err) {
      const cause = (err as { cause?: unknown }).cause;
      if (cause instanceof ContractError) add('plan', `the planner's plan breaks its contract: ${explain(cause)}`);
      firstPlan ??= explain(err);
    }
  }
  if (perceived === 0 && firstPerceive !== undefined)
    add('perceive', `the perceiver failed on every one of ${n} synthesized signals: ${firstPerceive}`);
  if (perceived > 0 && planned === 0 && firstPlan !== undefined)
    add('plan', `the planner failed on every one of ${perceived} perceived signals: ${firstPlan}`);
  return [...problems.values()];
}
