/** The live inspector: see docs/inspector.md. */
export {
  InspectionStream,
  inspectSubject,
  inspectAll,
  focusSubject,
  statsSubject,
  type InspectionRecord,
  type InspectionStats,
  type InspectionOptions,
  type TakenTransition,
} from './stream.ts';
export { Redactor, REDACTED } from './redact.ts';
export {
  chartOf,
  toMermaid,
  toDot,
  edgeLabel,
  formatGuard,
  type Chart,
  type ChartNode,
  type ChartEdge,
} from './graph.ts';
export { layoutChart, type LaidOutChart, type ChartLayout } from './layout.ts';
export { replayJournal, machineFor, diffValues, type Replay, type Step, type DiffEntry } from './replay.ts';
export { embeddedInspectorBackend, type InspectorBackend } from './backend.ts';
export { InspectorService, type ActorRow, type ActorFilter } from './service.ts';
export { InspectorRoutes, ENGINEER_ROLE, inspectableModels } from './http.ts';
export { StatelyBridge, statelyEvents, type StatelyAdapter, type StatelyInspectionEvent } from './stately.ts';
