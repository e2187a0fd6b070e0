/**
 * Handoff's public surface. Faces that stand alone have their own entry points:
 * `handoff/testing` (model-based test generation and the harness) and `handoff/contracts`.
 */
export { Runtime, type RuntimeOptions, type Ack, type ActorView, type TransitionNotice } from './runtime/runtime.ts';
export { LevelStore, StoreWriteError, type LevelStoreOptions } from './runtime/level-store.ts';
export type { Store, ActorRecord, JournalEntry, DeadLetter } from './runtime/store.ts';
export { LevelWorld } from './runtime/world.ts';
export { SimulatedClock, systemClock, type Clock } from './base/clock.ts';
export { verifyAudit, type AuditEntry, type AuditVerification } from './base/audit-log.ts';
export { createLogger } from './runtime/logger.ts';
export { tuneGc } from './runtime/gc-tuning.ts';
export { parseFaults, type FaultSpec } from './base/faults.ts';
export type { SupervisionStrategy } from './runtime/supervisor.ts';
export { assembleReasoning, type Reasoning } from './runtime/reasoning.ts';
export { serveCommands } from './runtime/command-server.ts';
export { MemoryTransport } from './transport/memory-transport.ts';
export { HandoffClient } from './transport/client.ts';
export { subjects, type Transport, type Msg, type Subscription } from './transport/transport.ts';
export { loadModel, type LoadedModel } from './models/loader.ts';
export {
  defineHandlers,
  simulatedAction,
  type SimulatedFailures,
  type ModelHandlers,
  type ActionImpl,
  type World,
  type Perceived,
  type PlanDraft,
  type StepContext,
  type EffectContext,
} from './models/define.ts';
export { agentMachine, agentMachineFor, type AgentContext, type AgentEvent } from './machines/agent.ts';
export { reviewCaseMachine, type CaseContext, type CaseEvent } from './machines/review-case.ts';
export { evaluateGate } from './policy/gate.ts';
export type { Planner } from './actors/planners/planner.ts';
export { rulePlanner } from './actors/planners/planner.ts';
export { LlmPlanner, plannerFor } from './actors/planners/llm-planner.ts';
// What model handlers use (the shipped models import exactly these): see `handoff models init`.
export { Rng, drawFor, hash32 } from './base/rng.ts';
export { sensitive, classify, DataClass } from './contracts/classification.ts';
export { HandoffError, ContractError, EffectError, ModelError } from './contracts/errors.ts';
export { builtinModels, resolveModelDir, BUILTIN_MODELS_DIR } from './models/builtin.ts';
