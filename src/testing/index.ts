/**
 * `handoff/testing`: model-based tests for Handoff models.
 *
 * - {@link writeSuite} / {@link generateSuite}: derive fixtures and covering paths from a model's agent
 *   and review-case machines (with `xstate/graph`) and write them as vitest suites, with coverage.
 * - {@link defineSuite}: the harness those suites run on: the real runtime on a LevelDB store in a
 *   temporary folder, a simulated clock, and effects held at gates so each step decides how an effect
 *   ends. Use it directly to write scenario tests by hand.
 * - {@link runCrashAnywhere}: the model in a child process SIGKILLed in the middle of steps, resumed,
 *   checked for exactly-once effects.
 * - {@link readRecording} / {@link replayRecording}: recorded runs replayed against the current
 *   machines and model; every episode whose decisions would now differ.
 * - {@link simulateHttpActions}: a model whose HTTP actions are simulated effects (what the suites run).
 * - {@link generatePaths}, {@link buildFixtures}: the pieces, for custom generators.
 *
 * See docs/testing.md.
 */
export {
  writeSuite,
  generateSuite,
  renderSuite,
  pathTitle,
  businessTitle,
  runHint,
  type GenerateOptions,
  type GeneratedSuite,
  type WrittenSuite,
  type CoverageSummary,
} from './generator.ts';
export {
  generatePaths,
  type GeneratedPath,
  type PathStep,
  type MachineCoverage,
  type MachinePaths,
  type MachineSet,
  type ModelPaths,
  type PathMode,
  type MachineKind,
} from './graph.ts';
export {
  buildFixtures,
  identify,
  commandPayload,
  classOf,
  allClasses,
  BENIGN_DRAW,
  T0,
  EPISODE_ID,
  type Fixtures,
  type PlanClass,
  type TierReviewers,
} from './fixtures.ts';
export { Scenario, HarnessError, type SuiteOptions } from './harness.ts';
export { defineSuite, type Suite } from './suite.ts';
export { agentInvariants, caseInvariants } from './checks.ts';
export { EffectGates, scriptedModel, scriptedPlanner, type Directive, type GatedKind } from './scripted-model.ts';
export { simulateHttpActions, httpActionNames, simulatedResult } from './simulated-http.ts';
export {
  agentFeatures,
  caseFeatures,
  describeAction,
  timerNames,
  type Action,
  type AgentAction,
  type CaseAction,
  type TimerAction,
  type EffectResult,
  type Expectation,
  type AgentFeatures,
  type CaseFeatures,
  type CommandName,
} from './steps.ts';
export { declaredStates, declaredTransitions, transitionKey, TransitionRecorder } from './machine-walk.ts';
export {
  runCrashAnywhere,
  drawKills,
  CRASH_POINTS,
  type CrashOptions,
  type CrashResult,
  type CrashKill,
  type CrashPoint,
} from './crash.ts';
export {
  readRecording,
  writeRecording,
  recordFromStore,
  replayRecording,
  replayEpisode,
  ReplaySourceError,
  type RecordedEpisode,
  type ReplayReport,
  type EpisodeReplay,
  type ReplayDifference,
  type DifferenceKind,
} from './replay.ts';
export {
  runProperty,
  ReferenceCase,
  principals,
  type PropertyOptions,
  type PropertyResult,
  type SeqStep,
} from './property.ts';
