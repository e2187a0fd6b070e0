import { createActor, type AnyStateMachine, type InspectionEvent, type StateValue } from 'xstate';
import { agentMachineFor } from '../machines/agent.ts';
import { reviewCaseMachine } from '../machines/review-case.ts';
import type { LoadedModel } from '../models/loader.ts';
import type { ActorKind, ActorRecord, JournalEntry } from '../runtime/store.ts';
import type { Redactor } from './redact.ts';
import { stateString, type TakenTransition } from './stream.ts';

/** One change between two contexts. Paths are dotted, array indices included (`results.1`). */
export interface DiffEntry {
  path: string;
  op: 'add' | 'remove' | 'change';
  before?: unknown;
  after?: unknown;
}

/** The actor at one step of its journal. */
export interface Step {
  seq: number;
  at: number;
  /** The event of the step (redacted); seq 0 is `xstate.init` with the actor's input. */
  event: { type: string; [k: string]: unknown };
  /** The state the journal recorded (authoritative). */
  state: string;
  /** The state value the replay reached, or null where the replay could not follow. */
  value: StateValue | null;
  /** The context after the step (redacted), or null where the replay could not follow. */
  context: unknown;
  /** What changed in the context since the previous step. */
  diff: DiffEntry[];
  /** The transitions the step took, by chart edge id. */
  transitions: TakenTransition[];
  /** The replayed state differs from the journaled one (e.g. the gate's policy changed since). */
  diverged: boolean;
}

export interface Replay {
  id: string;
  kind: ActorKind;
  model: string;
  steps: Step[];
  /** Every step replayed to the state the journal recorded. */
  exact: boolean;
  /** Why some steps have no context, if so. */
  note: string | null;
}

const machines = new WeakMap<LoadedModel, AnyStateMachine>();

/**
 * The machine an actor of `kind` runs under `model`: the agent machine with the model's policy gate
 * and expiry fallback bound (as the runtime binds them), or the review-case machine.
 */
export function machineFor(model: LoadedModel, kind: ActorKind): AnyStateMachine {
  if (kind === 'case') return reviewCaseMachine;
  let m = machines.get(model);
  if (!m)
    machines.set(
      model,
      (m = agentMachineFor({
        gate: model.gate,
        onExpiry: model.config.policy.onExpiry,
        freshness: model.config.freshness,
      }) as unknown as AnyStateMachine),
    );
  return m;
}

function plain(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** Differences between two JSON-like values, at most `limit` of them. */
export function diffValues(before: unknown, after: unknown, limit = 200): DiffEntry[] {
  const out: DiffEntry[] = [];
  const walk = (a: unknown, b: unknown, path: string): void => {
    if (out.length >= limit || a === b) return;
    if (plain(a) && plain(b)) {
      for (const k of Object.keys(a)) {
        const p = path ? `${path}.${k}` : k;
        if (!(k in b)) out.push({ path: p, op: 'remove', before: a[k] });
        else walk(a[k], b[k], p);
      }
      for (const k of Object.keys(b))
        if (!(k in a) && out.length < limit) out.push({ path: path ? `${path}.${k}` : k, op: 'add', after: b[k] });
      return;
    }
    if (Array.isArray(a) && Array.isArray(b)) {
      const n = Math.max(a.length, b.length);
      for (let i = 0; i < n && out.length < limit; i++) {
        const p = path ? `${path}.${i}` : String(i);
        if (i >= a.length) out.push({ path: p, op: 'add', after: b[i] });
        else if (i >= b.length) out.push({ path: p, op: 'remove', before: a[i] });
        else walk(a[i], b[i], p);
      }
      return;
    }
    if (a === undefined) out.push({ path, op: 'add', after: b });
    else if (b === undefined) out.push({ path, op: 'remove', before: a });
    else if (JSON.stringify(a) !== JSON.stringify(b)) out.push({ path, op: 'change', before: a, after: b });
  };
  walk(before, after, '');
  return out;
}

/**
 * Time travel: replays an actor's journal through its machine from seq 0 (the journal holds every
 * input as an event with its time, and the machines are pure), giving the state, the context and its
 * diff at every step. Works the same for live, passivated and finished actors. The state of each step
 * is the one the journal recorded; where the replay reaches another (a gate whose policy changed since)
 * the step says `diverged`. The last step's context is the persisted snapshot's when there is one.
 */
export function replayJournal(opts: {
  id: string;
  kind: ActorKind;
  model: LoadedModel;
  entries: readonly JournalEntry[];
  record?: ActorRecord | undefined;
  redactor: Redactor;
}): Replay {
  const { id, kind, model, entries, redactor } = opts;
  const steps: Step[] = [];
  let note: string | null = null;
  const micro: TakenTransition[] = [];
  const inspect = (e: InspectionEvent) => {
    if (e.type !== '@xstate.microstep') return;
    for (const t of (
      e as unknown as {
        _transitions?: {
          eventType: string;
          source: { id: string; transitions: Map<string, unknown[]>; always?: unknown[] };
          target?: { id: string }[];
        }[];
      }
    )._transitions ?? []) {
      const list = t.eventType === '' ? (t.source.always ?? []) : (t.source.transitions.get(t.eventType) ?? []);
      micro.push({
        edge: `${t.source.id}:${t.eventType || 'always'}:${Math.max(0, list.indexOf(t))}`,
        source: t.source.id,
        targets: (t.target ?? []).map((x) => x.id),
      });
    }
  };
  const first = entries[0];
  let actor: ReturnType<typeof createActor> | null = null;
  if (first && first.seq === 0 && first.event.type === 'xstate.init') {
    try {
      actor = createActor(machineFor(model, kind), {
        input: (first.event as { input?: unknown }).input as never,
        inspect,
      });
      actor.subscribe({ error: () => undefined });
      actor.start();
      if (actor.getSnapshot().status === 'error') throw actor.getSnapshot().error;
    } catch (err) {
      actor = null;
      note = `the actor's input does not replay: ${err instanceof Error ? err.message : String(err)}`;
    }
  } else note = "the journal does not start at the actor's creation";

  let prevContext: unknown = undefined;
  for (const [i, entry] of entries.entries()) {
    let value: StateValue | null = null;
    let context: unknown = null;
    if (actor && i > 0) {
      if (entry.event.type === 'handoff.operator.stop') {
        actor.stop();
        actor = null;
        note = 'stopped by an operator';
      } else {
        try {
          actor.send(entry.event as never);
          if (actor.getSnapshot().status === 'error') throw actor.getSnapshot().error;
        } catch (err) {
          actor = null;
          note = `step ${entry.seq} does not replay: ${err instanceof Error ? err.message : String(err)}`;
        }
      }
    }
    if (actor) {
      const snap = actor.getSnapshot() as unknown as { value: StateValue; context: unknown };
      value = snap.value;
      context = snap.context;
    }
    const last = i === entries.length - 1;
    const persisted =
      last && opts.record?.seq === entry.seq
        ? (opts.record.snapshot as { context?: unknown } | undefined)?.context
        : undefined;
    if (persisted !== undefined) context = persisted;
    const redacted = context === null ? null : redactor.redact(model.name, context);
    steps.push({
      seq: entry.seq,
      at: entry.at,
      event: redactor.redact(model.name, entry.event) as Step['event'],
      state: entry.state,
      value,
      context: redacted,
      diff: redacted === null ? [] : diffValues(prevContext ?? {}, redacted),
      transitions: [...micro],
      diverged: value !== null && stateString(value) !== entry.state,
    });
    if (redacted !== null) prevContext = redacted;
    micro.length = 0;
  }
  actor?.stop();
  return { id, kind, model: model.name, steps, exact: steps.every((s) => s.value !== null && !s.diverged), note };
}
