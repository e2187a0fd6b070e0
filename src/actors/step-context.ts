import type { StepContext } from '../models/define.ts';
import { drawFor } from '../base/rng.ts';

/** The context handed to a model's perceive / plan / execute: time, attempt, and stable draws. */
export function stepContext(
  now: number,
  key: string,
  attempt: number,
  seed: string,
  traceparent?: string,
): StepContext {
  return {
    now,
    attempt,
    draw: (salt = '') => drawFor(seed, key, attempt, salt),
    ...(traceparent ? { traceparent } : {}),
  };
}
