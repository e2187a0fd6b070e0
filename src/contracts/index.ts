export { DataClass, classify, sensitive, sensitivePaths, maskPaths, classifications } from './classification.ts';
export {
  SCHEMA_VERSION,
  Envelope,
  envelope,
  Provenance,
  Transform,
  Traceparent,
  IsoTime,
  EpochMs,
} from './envelope.ts';
export { Observation } from './observation.ts';
export { Plan, PlannedAction, RiskInputs, RiskFactor } from './plan.ts';
export { GateDecision, GateOutcome, RuleResult } from './gate-decision.ts';
export { TierSpec, CaseInput, CaseResolution, CaseOutcome, CaseHistoryEntry } from './review-case.ts';
export {
  ReviewerCommand,
  Reviewer,
  ClaimCommand,
  ReleaseCommand,
  RenewCommand,
  ApproveCommand,
  ModifyCommand,
  RejectCommand,
  EscalateCommand,
  type ReviewerCommandType,
} from './reviewer-command.ts';
export { EpisodeOutcome, EpisodeResult, EPISODE_OUTCOMES } from './episode-outcome.ts';
export {
  ModelConfig,
  PolicyConfig,
  ActionConfig,
  ActionLimit,
  RetryConfig,
  FreshnessConfig,
  SourceFreshness,
  RetentionConfig,
} from './model-config.ts';
export { HttpCall, HttpRetry, ArgSchema, StatusPattern } from './http-action.ts';
export { parseContract, toIssues } from './parse.ts';
export { exportJsonSchemas, CONTRACTS } from './json-schema.ts';
export * from './errors.ts';
