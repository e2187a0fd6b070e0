/**
 * Walking a machine's definition (its state nodes and their declared transitions) and recording which
 * of them a pure `machine.transition(...)` call takes. Coverage is measured against this walk, so it
 * counts what the chart declares, not what a traversal happened to visit.
 */
import {
  createEmptyActor,
  type AnyActorScope,
  type AnyMachineSnapshot,
  type AnyStateMachine,
  type AnyStateNode,
  type AnyTransitionDefinition,
  type EventObject,
} from 'xstate';

function pathOf(node: AnyStateNode): string {
  return node.path.length ? node.path.join('.') : '(root)';
}

/**
 * A stable name for a declared transition: source, event (or `always`), index among the source's
 * candidates for that event, target(s). E.g. `acting --action.failed#2--> compensating`.
 */
export function transitionKey(t: AnyTransitionDefinition): string {
  const source = t.source;
  const always = source.always?.includes(t) ?? false;
  const event = always ? 'always' : t.eventType;
  const index = always ? source.always!.indexOf(t) : (source.transitions.get(t.eventType)?.indexOf(t) ?? -1);
  const targets = t.target?.length ? t.target.map(pathOf).join(',') : '(internal)';
  return `${pathOf(source)} --${event}#${index}--> ${targets}`;
}

function allStateNodes(node: AnyStateNode): AnyStateNode[] {
  return [node, ...Object.values(node.states).flatMap((child) => allStateNodes(child as AnyStateNode))];
}

/** Every state the machine declares (dotted paths; the root excluded), sorted. */
export function declaredStates(machine: AnyStateMachine): string[] {
  return allStateNodes(machine.root)
    .filter((n) => n.path.length > 0)
    .map(pathOf)
    .sort();
}

/** Every transition the machine declares, named like {@link transitionKey}, sorted. */
export function declaredTransitions(machine: AnyStateMachine): string[] {
  const keys: string[] = [];
  for (const node of allStateNodes(machine.root)) {
    for (const list of node.transitions.values()) for (const t of list) keys.push(transitionKey(t));
    for (const t of node.always ?? []) keys.push(transitionKey(t));
  }
  return keys.sort();
}

/** Dotted names of the states a snapshot is in (atomic and final nodes). */
export function activeStates(snapshot: AnyMachineSnapshot): string[] {
  return (snapshot._nodes as AnyStateNode[])
    .filter((n) => n.path.length > 0 && (n.type === 'atomic' || n.type === 'final'))
    .map(pathOf);
}

export function stateName(snapshot: { value: unknown }): string {
  const v = snapshot.value;
  if (typeof v === 'string') return v;
  return JSON.stringify(v);
}

/** What one pure step did: the declared transitions taken and every state entered on the way. */
export interface StepTrace {
  transitions: string[];
  states: string[];
}

/**
 * An actor scope for pure `machine.transition` calls that records the microsteps through xstate's
 * inspection hook (the same `@xstate.microstep` events `createActor({ inspect })` receives).
 */
export class TransitionRecorder {
  #current: StepTrace = { transitions: [], states: [] };
  readonly scope: AnyActorScope;

  constructor() {
    const empty = createEmptyActor();
    const system = Object.create(empty.system) as typeof empty.system & { _sendInspectionEvent: (ev: unknown) => void };
    system._sendInspectionEvent = (ev: unknown) => {
      const e = ev as { type: string; snapshot?: AnyMachineSnapshot; _transitions?: AnyTransitionDefinition[] };
      if (e.type !== '@xstate.microstep') return;
      for (const t of e._transitions ?? []) this.#current.transitions.push(transitionKey(t));
      if (e.snapshot) for (const s of activeStates(e.snapshot)) this.#current.states.push(s);
    };
    this.scope = {
      self: empty,
      logger: () => undefined,
      id: '',
      sessionId: 'testgen',
      defer: () => undefined,
      system,
      stopChild: () => undefined,
      emit: () => undefined,
      actionExecutor: () => undefined,
    } as unknown as AnyActorScope;
  }

  /** Applies `event` purely and returns the next snapshot with the trace of what happened. */
  step(
    machine: AnyStateMachine,
    snapshot: AnyMachineSnapshot,
    event: EventObject,
  ): { next: AnyMachineSnapshot; trace: StepTrace } {
    this.#current = { transitions: [], states: [] };
    const next = machine.transition(snapshot, event, this.scope) as AnyMachineSnapshot;
    const trace = this.#current;
    this.#current = { transitions: [], states: [] };
    return { next, trace };
  }

  initial(machine: AnyStateMachine, input: unknown): { snapshot: AnyMachineSnapshot; trace: StepTrace } {
    this.#current = { transitions: [], states: [] };
    const snapshot = machine.getInitialSnapshot(this.scope, input) as AnyMachineSnapshot;
    const trace = this.#current;
    trace.states.push(...activeStates(snapshot));
    this.#current = { transitions: [], states: [] };
    return { snapshot, trace };
  }
}
