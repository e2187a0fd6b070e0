import { z } from 'zod';

/** Every episode ends in exactly one of these. */
export const EpisodeOutcome = z.enum([
  'autoActed',
  'approved',
  'modified',
  'rejected',
  'denied',
  'expired',
  'compensated',
  'failed',
]);
export type EpisodeOutcome = z.infer<typeof EpisodeOutcome>;
export const EPISODE_OUTCOMES = EpisodeOutcome.options;

export const EpisodeResult = z.object({
  episodeId: z.string().min(1),
  model: z.string().min(1),
  outcome: EpisodeOutcome,
  reason: z.string(),
  /** Idempotency keys of the effects that stand (executed and not compensated). */
  effects: z.array(z.string()),
  caseIds: z.array(z.string()),
});
export type EpisodeResult = z.infer<typeof EpisodeResult>;
