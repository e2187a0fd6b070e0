import { createActor, type AnyStateMachine, type InspectionEvent } from 'xstate';
import type { Logger } from 'pino';
import type { Timers } from '../machines/effects.ts';
import { reviewCaseMachine } from '../machines/review-case.ts';
import type { LoadedModel } from '../models/loader.ts';
import { persistedSnapshot, stateString, type Cell } from './cell.ts';
import type { Clock } from '../base/clock.ts';
import type { ActorRecord, JournalEntry, Store } from './store.ts';

export interface RehydrationOptions {
  store: Store;
  clock: Clock;
  log: Logger;
  /** The agent machine of each loaded model (its gate is the runtime's choice). */
  agentMachine(model: string): AnyStateMachine | undefined;
  inspect: ((event: InspectionEvent, actorId: string) => void) | undefined;
}

/**
 * Actors back from the store: a durable record plus the journal entries after it (commits that did
 * not rewrite the record), replayed through the machine, become a live actor again.
 */
export class Rehydration {
  #o: RehydrationOptions;

  constructor(opts: RehydrationOptions) {
    this.#o = opts;
  }

  /** Builds a live actor from its record; throws if the snapshot is corrupt. */
  restore(rec: ActorRecord, model: LoadedModel, checkpointSeq = rec.seq): Cell {
    const machine = rec.kind === 'agent' ? this.#o.agentMachine(model.name)! : reviewCaseMachine;
    const inspectAll = this.#o.inspect;
    const inspect = inspectAll && ((e: InspectionEvent) => inspectAll(e, rec.id));
    const actor = createActor(machine, {
      snapshot: rec.snapshot as never,
      clock: this.#o.clock as never,
      ...(inspect ? { inspect } : {}),
    });
    actor.subscribe({ error: () => undefined });
    actor.start();
    const snap = actor.getSnapshot();
    if (snap.status === 'error' || !snap.context) {
      actor.stop();
      throw new Error(`snapshot of ${rec.id} does not restore: ${String(snap.error ?? 'no context')}`);
    }
    const timers = { ...((snap.context as { timers?: Timers }).timers ?? {}) };
    return {
      id: rec.id,
      kind: rec.kind,
      model,
      actor,
      seq: rec.seq,
      timers,
      dispatched: null,
      pending: 0,
      checkpointSeq,
      liveHot: undefined,
    };
  }

  /** Journal entries after an agent's durable record (commits that did not rewrite it); none for other actors. */
  async tailOf(rec: ActorRecord): Promise<JournalEntry[]> {
    if (!this.#o.store.journalTail || rec.kind !== 'agent' || rec.status !== 'active') return [];
    const tail: JournalEntry[] = [];
    for await (const e of this.#o.store.journal(rec.id, rec.seq + 1)) if (e.seq > rec.seq) tail.push(e);
    return tail;
  }

  /**
   * The record as of the actor's last journal entry: its durable snapshot with the journal tail
   * replayed through the machine (machines are pure and every input is in the journal, so the replay
   * reaches exactly the state each entry recorded; a mismatch throws, like a corrupt snapshot).
   */
  replay(rec: ActorRecord, tail: JournalEntry[]): ActorRecord {
    if (tail.length === 0) return rec;
    const machine = this.#o.agentMachine(rec.model);
    if (!machine) throw new Error(`cannot replay ${rec.id}: no model named '${rec.model}' is loaded`);
    const actor = createActor(machine, { snapshot: rec.snapshot as never, clock: this.#o.clock as never });
    actor.subscribe({ error: () => undefined });
    actor.start();
    try {
      let seq = rec.seq;
      let at = rec.updatedAt;
      for (const e of tail) {
        if (e.seq !== seq + 1) throw new Error(`journal of ${rec.id} has a gap after seq ${seq}`);
        const before = actor.getSnapshot();
        if (before.status !== 'active' || !before.can(e.event as never))
          throw new Error(
            `replaying ${rec.id}: seq ${e.seq} (${e.event.type}) is not accepted in ${stateString(before.value)}`,
          );
        actor.send(e.event as never);
        const after = actor.getSnapshot();
        if (after.status === 'error')
          throw new Error(`replaying ${rec.id}: seq ${e.seq} (${e.event.type}) crashed: ${String(after.error)}`);
        const state = stateString(after.value);
        if (state !== e.state)
          throw new Error(
            `replaying ${rec.id}: seq ${e.seq} (${e.event.type}) reached ${state}, the journal says ${e.state}`,
          );
        seq = e.seq;
        at = e.at;
      }
      const snap = actor.getSnapshot();
      return {
        ...rec,
        seq,
        state: stateString(snap.value),
        status: snap.status === 'done' ? 'done' : 'active',
        snapshot: persistedSnapshot(machine, snap),
        updatedAt: at,
      };
    } finally {
      actor.stop();
    }
  }

  /** The durable record brought up to the journal (for reads of actors that are not resident). */
  async currentRecord(id: string): Promise<ActorRecord | undefined> {
    const rec = await this.#o.store.load(id);
    if (!rec) return undefined;
    const tail = await this.tailOf(rec);
    try {
      return this.replay(rec, tail);
    } catch (err) {
      this.#o.log.warn({ actor: id, err }, 'journal tail does not replay; showing the last snapshot');
      return { ...rec, seq: tail.at(-1)?.seq ?? rec.seq };
    }
  }
}
