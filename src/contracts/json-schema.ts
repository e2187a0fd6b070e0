import { z } from 'zod';
import { Envelope } from './envelope.ts';
import { EpisodeResult } from './episode-outcome.ts';
import { GateDecision } from './gate-decision.ts';
import { ModelConfig } from './model-config.ts';
import { Observation } from './observation.ts';
import { Plan } from './plan.ts';
import { CaseInput, CaseResolution } from './review-case.ts';
import { ReviewerCommand } from './reviewer-command.ts';

/** Every public contract by name, as exported to JSON Schema. */
export const CONTRACTS = {
  Envelope,
  Observation,
  Plan,
  GateDecision,
  CaseInput,
  CaseResolution,
  ReviewerCommand,
  EpisodeResult,
  ModelConfig,
} as const;

/** JSON Schema (draft 2020-12) of every public contract, keyed by contract name. */
export function exportJsonSchemas(): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, schema] of Object.entries(CONTRACTS)) {
    out[name] = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' });
  }
  return out;
}
