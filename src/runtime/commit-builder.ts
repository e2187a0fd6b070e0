import type { Logger } from 'pino';
import type { AgentContext } from '../machines/agent.ts';
import type { Timers } from '../machines/effects.ts';
import type { CaseContext } from '../machines/review-case.ts';
import type { AuditDraft } from '../base/audit-log.ts';
import { MAX_JOURNAL_TAIL, persistedSnapshot, stateString, type Cell, type RuntimeEvent } from './cell.ts';
import type { OutboxChannel } from './runtime-types.ts';
import type { ActorRecord, Commit, OutboxMessage, TimerEntry } from './store.ts';

/** A transition's commit, and what the runtime releases once it is durable. */
export interface BuiltCommit {
  commit: Commit;
  ctx: AgentContext | CaseContext;
  seq: number;
  state: string;
  status: ActorRecord['status'];
  hot: boolean;
  checkpoint: boolean;
  timers: Timers;
  outbox: OutboxMessage[];
}

export interface CommitInputs {
  cell: Cell;
  event: RuntimeEvent;
  /** The context before the event; undefined at creation. */
  prev: AgentContext | CaseContext | undefined;
  commandId: string | undefined;
  channels: readonly OutboxChannel[];
  /** The store takes journal-only commits (`Store.journalTail`). */
  journalTail: boolean;
  log: Logger;
}

/**
 * Everything one accepted event changes, as one {@link Commit}: the journal entry, the record where
 * the actor can rest, timer index changes, outbox messages, audit entries and the command id. Pure
 * but for the channels it asks; the cell is not changed.
 */
export function buildCommit({ cell, event, prev, commandId, channels, journalTail, log }: CommitInputs): BuiltCommit {
  const snap = cell.actor.getSnapshot();
  const ctx = snap.context as AgentContext | CaseContext;
  const seq = prev === undefined ? 0 : cell.seq + 1;
  const state = stateString(snap.value);
  const status = snap.status === 'done' ? 'done' : 'active';
  const hot = cell.kind === 'agent' && !!(ctx as AgentContext).effect;
  // The record (snapshot) is rewritten where the actor can rest: at creation, when it has no
  // effect in flight (awaiting a human, backing off, finished), and every MAX_JOURNAL_TAIL events.
  // In between (perceive → plan → act) only the journal entry is written: the effect in flight
  // makes the actor hot, so recovery rebuilds it from the record and the journal after it.
  const checkpoint =
    !journalTail ||
    cell.kind !== 'agent' ||
    seq === 0 ||
    status !== 'active' ||
    !hot ||
    seq - cell.checkpointSeq >= MAX_JOURNAL_TAIL;
  const liveChanged = status !== 'active' || cell.liveHot !== hot;
  const persisted = checkpoint ? persistedSnapshot(cell.actor.logic, snap) : null;
  const timers = (ctx.timers ?? {}) as Timers;
  const timersSet: TimerEntry[] = [];
  const timersCleared: TimerEntry[] = [];
  // Every current deadline is (re)written to the index with each commit, not only the changed
  // ones: the index must hold what the durable snapshot holds even if an earlier write was lost.
  for (const [name, dueAt] of Object.entries(timers))
    if (dueAt !== undefined) timersSet.push({ actorId: cell.id, name, dueAt });
  for (const [name, dueAt] of Object.entries(cell.timers))
    if (dueAt !== undefined && timers[name] !== dueAt) timersCleared.push({ actorId: cell.id, name, dueAt });

  const outbox: OutboxMessage[] = [];
  if (cell.kind === 'case' && status === 'done') {
    const c = ctx as CaseContext;
    if (c.resolution)
      outbox.push({
        id: `${cell.id}.resolution`,
        to: c.episodeId,
        event: { type: 'case.resolved', at: event.at, resolution: c.resolution },
      });
  }
  for (const channel of channels) {
    try {
      outbox.push(
        ...channel.messagesFor({
          id: cell.id,
          kind: cell.kind,
          model: cell.model,
          seq,
          event,
          state,
          status,
          prev,
          context: ctx,
        }),
      );
    } catch (err) {
      log.error(
        { actor: cell.id, channel: channel.prefix, err },
        'outbox channel threw; its messages for this transition are lost',
      );
    }
  }
  const outboxDone =
    event.type === 'case.resolved'
      ? [`${(event as unknown as { resolution: { caseId: string } }).resolution.caseId}.resolution`]
      : undefined;
  const audit = auditFor(cell, prev, ctx, event, status);

  const record: ActorRecord = {
    id: cell.id,
    kind: cell.kind,
    model: cell.model.name,
    seq,
    status,
    state,
    snapshot: persisted,
    updatedAt: event.at,
  };
  const commit: Commit = {
    hot,
    ...(checkpoint ? {} : { checkpoint: false }),
    ...(liveChanged ? {} : { liveChanged: false }),
    actor: record,
    journal: { seq, at: event.at, event, state },
    ...(timersSet.length ? { timersSet } : {}),
    ...(timersCleared.length ? { timersCleared } : {}),
    ...(outbox.length ? { outboxPut: outbox } : {}),
    ...(outboxDone ? { outboxDone } : {}),
    ...(audit.length ? { audit } : {}),
    ...(commandId ? { commandId } : {}),
  };
  return { commit, ctx, seq, state, status, hot, checkpoint, timers, outbox };
}

/** The audit entries a transition adds: gate decisions, actions executed and compensated, outcomes, case history. */
export function auditFor(
  cell: Cell,
  prev: AgentContext | CaseContext | undefined,
  next: AgentContext | CaseContext,
  event: RuntimeEvent,
  status: string,
): AuditDraft[] {
  const out: AuditDraft[] = [];
  const at = event.at;
  if (cell.kind === 'agent') {
    const p = prev as AgentContext | undefined;
    const n = next as AgentContext;
    if (n.decision && n.decision !== p?.decision) {
      const d = n.decision;
      out.push({
        at,
        kind: 'gate.decision',
        actor: cell.id,
        by: 'runtime',
        data: {
          outcome: d.outcome,
          ruleId: d.ruleId,
          tier: d.tier,
          reasons: d.reasons,
          riskScore: d.riskScore,
          confidence: d.confidence,
          policyVersion: d.policyVersion,
          planId: n.plan?.id,
          actions: n.plan?.actions.map((a) => a.type),
          rationale: n.plan?.rationale,
          inputs: n.observation
            ? {
                observationId: n.observation.id,
                source: n.observation.provenance.source,
                observedAt: n.observation.provenance.observedAt,
                cited: n.plan?.citedInputs ?? [],
              }
            : null,
        },
      });
    }
    if (event.type === 'action.done' || event.type === 'compensation.done') {
      const step = event.type === 'action.done' ? (p?.step ?? 0) : (p?.compensateStep ?? 0);
      const kind = event.type === 'action.done' ? 'action.executed' : 'action.compensated';
      out.push({
        at,
        kind,
        actor: cell.id,
        by: 'runtime',
        data: { key: `${n.episodeId}/${step}`, type: n.plan?.actions[step]?.type },
      });
    }
    if (status === 'done')
      out.push({
        at,
        kind: 'episode.outcome',
        actor: cell.id,
        by: 'runtime',
        data: { outcome: n.outcome, caseIds: n.caseIds, error: n.error?.message ?? null },
      });
  } else {
    const n = next as CaseContext;
    const from = (prev as CaseContext | undefined)?.history.length ?? 0;
    for (const h of n.history.slice(from)) {
      // A modification is audited with what it changed and whose approvals it discarded, not only its note.
      const edit = h.kind === 'modified' ? n.edits?.at(-1) : undefined;
      const change = edit
        ? { diff: edit.diff, ...(edit.discardedApprovals ? { discardedApprovals: edit.discardedApprovals } : {}) }
        : {};
      // A lease that ran out is nobody's act: the runtime's, naming whose claim it ended.
      const lapsed = h.kind === 'lease-expired';
      const by = lapsed ? 'runtime' : (h.by ?? 'runtime');
      out.push({
        at: h.at,
        kind: `case.${h.kind}`,
        actor: cell.id,
        by,
        data: {
          tier: h.tier,
          ...(h.note ? { note: h.note } : {}),
          ...(lapsed && h.by ? { holder: h.by } : {}),
          ...change,
        },
      });
    }
  }
  return out;
}
