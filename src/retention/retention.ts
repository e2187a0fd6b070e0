import { createHash } from 'node:crypto';
import { ActorNotFoundError, ContractError, HandoffError } from '../contracts/errors.ts';
import type { RetentionConfig } from '../contracts/model-config.ts';
import { journalLineage } from '../lineage/lineage.ts';
import type { AgentContext } from '../machines/agent.ts';
import type { Redactor } from '../inspect/redact.ts';
import { canonicalJson } from '../base/audit-log.ts';
import type { Clock } from '../base/clock.ts';
import type { ActorRecord, JournalEntry, Store } from '../runtime/store.ts';
import {
  HOLDS_KEY,
  summaryKey,
  type CompactedJournal,
  type CompactionSummary,
  type LegalHold,
} from '../lineage/retention-records.ts';

const DAY_MS = 86_400_000;

/** An episode is on legal hold; its journals may not be compacted (nor the hold set twice). */
export class LegalHoldError extends HandoffError {
  constructor(code: 'hold.exists' | 'hold.not_found', episodeId: string, message: string) {
    super(code, message, { episodeId });
  }
}

/** What one pass did (or, with `dryRun`, would do). */
export interface RetentionReport {
  at: number;
  dryRun: boolean;
  compacted: { episodeId: string; model: string; endedAt: number; journalEntries: number; actors: string[] }[];
  /** Old enough and finished, but on legal hold. */
  held: string[];
  /** Counts of episodes left alone and why. */
  kept: { unfinished: number; young: number; noPolicy: number; alreadyCompacted: number };
}

/** The finished states of an actor record; `active` actors (and their cases) are never touched. */
const finished = (r: ActorRecord) => r.status === 'done' || r.status === 'stopped';

async function holds(store: Store): Promise<Record<string, LegalHold>> {
  return (await store.getMeta<Record<string, LegalHold>>(HOLDS_KEY)) ?? {};
}

/** Legal holds, oldest first. */
export async function listHolds(store: Store): Promise<LegalHold[]> {
  return Object.values(await holds(store)).sort((a, b) => a.at - b.at);
}

function requireText(value: string | undefined, field: string, contract: string): string {
  if (value === undefined || value.trim() === '')
    throw new ContractError(contract, [{ path: field, message: 'required: say why (it goes into the audit log)' }]);
  return value.trim();
}

/** Puts an episode on legal hold (audited as `hold.set`): retention leaves its journals alone. */
export async function setHold(
  store: Store,
  opts: { episodeId: string; reason: string | undefined; by: string; at: number },
): Promise<LegalHold> {
  const reason = requireText(opts.reason, 'reason', 'hold set');
  const rec = await store.load(opts.episodeId);
  if (!rec) throw new ActorNotFoundError(opts.episodeId);
  if (rec.kind !== 'agent')
    throw new ContractError('hold set', [
      {
        path: 'episodeId',
        message: `'${opts.episodeId}' is a ${rec.kind}, not an episode: hold the episode it belongs to`,
      },
    ]);
  const all = await holds(store);
  const existing = all[opts.episodeId];
  if (existing)
    throw new LegalHoldError(
      'hold.exists',
      opts.episodeId,
      `${opts.episodeId} is already on hold since ${new Date(existing.at).toISOString()} (${existing.reason})`,
    );
  const hold: LegalHold = { episodeId: opts.episodeId, reason, by: opts.by, at: opts.at };
  await store.putMeta(HOLDS_KEY, { ...all, [opts.episodeId]: hold });
  await store.appendAudit([{ at: opts.at, kind: 'hold.set', actor: opts.episodeId, by: opts.by, data: { reason } }]);
  return hold;
}

/** Lifts a legal hold (audited as `hold.cleared`, with the reason). */
export async function clearHold(
  store: Store,
  opts: { episodeId: string; reason: string | undefined; by: string; at: number },
): Promise<LegalHold> {
  const reason = requireText(opts.reason, 'reason', 'hold clear');
  const all = await holds(store);
  const existing = all[opts.episodeId];
  if (!existing) throw new LegalHoldError('hold.not_found', opts.episodeId, `${opts.episodeId} is not on hold`);
  const { [opts.episodeId]: _cleared, ...rest } = all;
  await store.putMeta(HOLDS_KEY, rest);
  await store.appendAudit([
    {
      at: opts.at,
      kind: 'hold.cleared',
      actor: opts.episodeId,
      by: opts.by,
      data: { reason, heldSince: existing.at, heldFor: existing.reason },
    },
  ]);
  return existing;
}

async function readJournal(store: Store, id: string): Promise<JournalEntry[]> {
  const out: JournalEntry[] = [];
  for await (const j of store.journal(id)) out.push(j);
  return out;
}

function compactedJournal(actorId: string, kind: 'agent' | 'case', entries: JournalEntry[]): CompactedJournal {
  const hash = createHash('sha256');
  for (const e of entries) hash.update(canonicalJson(e)).update('\n');
  return {
    actorId,
    kind,
    entries: entries.length,
    firstSeq: entries[0]?.seq ?? 0,
    lastSeq: entries.at(-1)?.seq ?? 0,
    firstAt: entries[0]?.at ?? 0,
    lastAt: entries.at(-1)?.at ?? 0,
    events: entries.map((e) => e.event.type),
    sha256: hash.digest('hex'),
  };
}

/**
 * One compaction pass. For every finished episode of a model with `retention.keepDays`, finished
 * more than that many days before `now`, whose cases are all finished and which is not on legal
 * hold: writes its {@link CompactionSummary}, then deletes the journals of the episode and its cases,
 * then appends a `retention.compacted` audit entry. The audit chain is only appended to, never
 * rewritten. Interrupted between the steps, the next pass finishes the job (each step is idempotent).
 */
export async function runRetention(
  store: Store,
  opts: {
    retention: ReadonlyMap<string, RetentionConfig | undefined>;
    now: number;
    by?: string;
    dryRun?: boolean;
    /**
     * Scrubs the personal data (every field the models mark `sensitive()`) out of the compacted
     * actors' records, which stay for history and ids. @default none: records are kept whole
     */
    redactor?: Redactor;
  },
): Promise<RetentionReport> {
  const by = opts.by ?? 'retention';
  const dryRun = opts.dryRun ?? false;
  const report: RetentionReport = {
    at: opts.now,
    dryRun,
    compacted: [],
    held: [],
    kept: { unfinished: 0, young: 0, noPolicy: 0, alreadyCompacted: 0 },
  };
  const held = await holds(store);
  const agents: ActorRecord[] = [];
  for await (const rec of store.actors('agent')) agents.push(rec);
  for (const rec of agents) {
    const cfg = opts.retention.get(rec.model);
    if (!cfg) {
      report.kept.noPolicy++;
      continue;
    }
    if (!finished(rec)) {
      report.kept.unfinished++;
      continue;
    }
    const ctx = (rec.snapshot as { context?: AgentContext } | null)?.context;
    const endedAt = ctx?.endedAt ?? rec.updatedAt;
    if (opts.now - endedAt <= cfg.keepDays * DAY_MS) {
      report.kept.young++;
      continue;
    }
    const caseIds = ctx?.caseIds ?? [];
    const cases = await Promise.all(caseIds.map((id) => store.load(id)));
    if (cases.some((c) => c && !finished(c))) {
      report.kept.unfinished++;
      continue;
    }
    if (held[rec.id]) {
      report.held.push(rec.id);
      continue;
    }
    const journals: { id: string; kind: 'agent' | 'case'; entries: JournalEntry[] }[] = [
      { id: rec.id, kind: 'agent', entries: await readJournal(store, rec.id) },
    ];
    for (const c of cases) if (c) journals.push({ id: c.id, kind: 'case', entries: await readJournal(store, c.id) });
    const total = journals.reduce((n, j) => n + j.entries.length, 0);
    const existing = await store.getMeta<CompactionSummary>(summaryKey(rec.id));
    if (total === 0) {
      // Compacted, but a pass that stopped after the deletes may not have written its audit entry.
      if (existing && !existing.audited && !dryRun) {
        await scrubRecords(store, [rec, ...cases], opts.redactor);
        await auditCompaction(store, existing, by);
      }
      report.kept.alreadyCompacted++;
      continue;
    }
    report.compacted.push({
      episodeId: rec.id,
      model: rec.model,
      endedAt,
      journalEntries: total,
      actors: journals.map((j) => j.id),
    });
    if (dryRun) continue;

    const fromJournal = await journalLineage(
      (async function* () {
        yield* journals[0]!.entries;
      })(),
    );
    const summary: CompactionSummary = {
      episodeId: rec.id,
      model: rec.model,
      compactedAt: opts.now,
      keepDays: cfg.keepDays,
      endedAt,
      outcome: ctx?.outcome ?? null,
      // A pass that was interrupted after deleting some journals keeps what the first pass saw.
      journals: [
        ...(existing?.journals.filter((j) => !journals.some((x) => x.id === j.actorId && x.entries.length > 0)) ?? []),
        ...journals.filter((j) => j.entries.length > 0).map((j) => compactedJournal(j.id, j.kind, j.entries)),
      ],
      observations: fromJournal.observations.length > 0 ? fromJournal.observations : (existing?.observations ?? []),
      plans: fromJournal.plans.length > 0 ? fromJournal.plans : (existing?.plans ?? []),
    };
    // Summary first: a crash before the deletes leaves both, and the next pass redoes the deletes.
    await store.putMeta(summaryKey(rec.id), summary);
    for (const j of journals) if (j.entries.length > 0) await store.deleteJournal(j.id, j.entries.at(-1)!.seq);
    await scrubRecords(store, [rec, ...cases], opts.redactor);
    await auditCompaction(store, summary, by);
  }
  return report;
}

/** Replaces each record with its personal fields redacted (a no-op for records already scrubbed). */
async function scrubRecords(
  store: Store,
  records: (ActorRecord | undefined)[],
  redactor: Redactor | undefined,
): Promise<void> {
  if (!redactor) return;
  for (const rec of records) {
    if (!rec) continue;
    const snap = rec.snapshot as { context?: unknown; output?: unknown } | null;
    if (!snap) continue;
    const context = redactor.redact(rec.model, snap.context);
    // A finished case's output repeats its resolution (with the plan's arguments).
    const output =
      snap.output && typeof snap.output === 'object'
        ? (redactor.redact(rec.model, { resolution: snap.output }) as { resolution: unknown }).resolution
        : snap.output;
    if (context === snap.context && output === snap.output) continue;
    await store.replaceFinishedRecord({
      ...rec,
      snapshot: { ...snap, context, ...(snap.output !== undefined ? { output } : {}) },
    });
  }
}

/**
 * Appends the episode's `retention.compacted` audit entry (with the hash of each compacted journal
 * and of the summary, so the summary kept outside the chain can be checked against it), then marks
 * the summary audited.
 */
async function auditCompaction(store: Store, summary: CompactionSummary, by: string): Promise<void> {
  const { audited: _audited, ...content } = summary;
  const summarySha256 = createHash('sha256').update(canonicalJson(content)).digest('hex');
  await store.appendAudit([
    {
      at: summary.compactedAt,
      kind: 'retention.compacted',
      actor: summary.episodeId,
      by,
      data: {
        keepDays: summary.keepDays,
        endedAt: summary.endedAt,
        journalEntries: summary.journals.reduce((n, j) => n + j.entries, 0),
        journals: summary.journals.map((j) => ({
          actor: j.actorId,
          entries: j.entries,
          lastSeq: j.lastSeq,
          sha256: j.sha256,
        })),
        summarySha256,
      },
    },
  ]);
  await store.putMeta(summaryKey(summary.episodeId), { ...summary, audited: true });
}

/** Retention settings by model name, from loaded model configs. */
export function retentionOf(
  models: Iterable<{ name: string; config: { retention?: RetentionConfig | undefined } }>,
): Map<string, RetentionConfig | undefined> {
  return new Map([...models].map((m) => [m.name, m.config.retention]));
}

/**
 * The automatic pass of a running node: every `intervalMs` (first after `firstAfterMs`), one
 * {@link runRetention} at the clock's time; passes never overlap. Errors go to `onError` and the next
 * pass runs as planned.
 */
export function scheduleRetention(opts: {
  store: Store;
  clock: Clock;
  retention: ReadonlyMap<string, RetentionConfig | undefined>;
  /** See {@link runRetention}. */
  redactor?: Redactor;
  /** @default 1 hour */
  intervalMs?: number;
  /** @default 1 minute */
  firstAfterMs?: number;
  onPass?: (report: RetentionReport) => void;
  onError?: (err: unknown) => void;
}): { stop(): Promise<void>; runNow(): Promise<RetentionReport> } {
  const interval = opts.intervalMs ?? 3600_000;
  let handle: unknown = null;
  let running: Promise<RetentionReport> | null = null;
  let stopped = false;
  const pass = (): Promise<RetentionReport> => {
    if (running) return running;
    running = runRetention(opts.store, {
      retention: opts.retention,
      now: opts.clock.now(),
      ...(opts.redactor ? { redactor: opts.redactor } : {}),
    }).finally(() => {
      running = null;
    });
    return running;
  };
  const arm = (ms: number) => {
    handle = opts.clock.setTimeout(() => {
      if (stopped) return;
      pass()
        .then((r) => opts.onPass?.(r))
        .catch((err: unknown) => opts.onError?.(err))
        .finally(() => {
          if (!stopped) arm(interval);
        });
    }, ms);
  };
  if ([...opts.retention.values()].some(Boolean)) arm(opts.firstAfterMs ?? 60_000);
  return {
    async stop() {
      stopped = true;
      if (handle !== null) opts.clock.clearTimeout(handle);
      await running?.catch(() => undefined);
    },
    runNow: pass,
  };
}
