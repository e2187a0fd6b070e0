/**
 * Replay across versions (issue 22 item 5), as Temporal's replay tests do: the journals of recorded
 * runs (a data folder, or a JSONL export of it) are replayed against the CURRENT machines and model
 * (gate, tiers and deadlines, lease, retry policy), and every episode whose decisions would now differ
 * is reported: the gate's branch or tier, a recorded input the machines would now refuse (a reviewer
 * without the new tier's role, a result of an effect no longer requested), a deadline that would now
 * fall earlier or later, the outcome. Pure: the journal holds every input with its time, the machines
 * read no clock and draw nothing, so the same recording and model always give the same report.
 *
 * Each actor is followed twice: under its recorded input (what ran) and under the current model's
 * (what would run now); a deadline only counts as moved when the current one is overdue where the
 * recorded one was not (a timer that fired late after a restart is not a difference).
 */
import { existsSync } from 'node:fs';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createActor, type AnyActorRef, type AnyStateMachine } from 'xstate';
import { HandoffError } from '../contracts/errors.ts';
import type { CaseInput } from '../contracts/review-case.ts';
import { machineFor } from '../inspect/replay.ts';
import type { AgentContext } from '../machines/agent.ts';
import type { LoadedModel } from '../models/loader.ts';
import { LevelStore } from '../runtime/level-store.ts';
import type { JournalEntry, Store } from '../runtime/store.ts';
import { stateName } from './machine-walk.ts';

/** One recorded episode: the journals of its agent and its cases, and how it ended. */
export interface RecordedEpisode {
  episodeId: string;
  model: string;
  agent: JournalEntry[];
  cases: { id: string; journal: JournalEntry[] }[];
  /** The agent's last durable record. */
  final: { state: string; status: string; outcome: string | null };
}

export type DifferenceKind = 'gate' | 'tier' | 'refused' | 'state' | 'deadline' | 'outcome' | 'unreplayable';

export interface ReplayDifference {
  /** The agent (the episode id) or a case. */
  actor: string;
  /** Journal entry of the recorded event the difference shows at. */
  seq: number;
  event: string;
  what: DifferenceKind;
  recorded: string;
  now: string;
}

export interface EpisodeReplay {
  episodeId: string;
  differs: boolean;
  /** The first difference of each actor (its replay stops there: what follows was recorded for another path). */
  differences: ReplayDifference[];
  recorded: { decision: string | null; outcome: string | null };
  now: { decision: string | null; outcome: string | null };
}

export interface ReplayReport {
  ok: boolean;
  model: string;
  version: string;
  source: string;
  episodes: number;
  unchanged: number;
  differing: number;
  /** Episodes not replayed (unfinished, or a journal that no longer starts at the creation), with why. */
  skipped: { episodeId: string; reason: string }[];
  /** The differing episodes, in episode id order. */
  results: EpisodeReplay[];
}

export class ReplaySourceError extends HandoffError {
  constructor(message: string, details: Record<string, unknown> = {}) {
    super('replay.source_invalid', message, details);
  }
}

// ------------------------------------------------------------------------------------------------
// Recording
// ------------------------------------------------------------------------------------------------

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

/** The episodes of `model` in a store, with their journals, in episode id order. */
export async function recordFromStore(store: Store, model?: string): Promise<RecordedEpisode[]> {
  const out: RecordedEpisode[] = [];
  for await (const rec of store.actors('agent')) {
    if (model !== undefined && rec.model !== model) continue;
    const ctx = (rec.snapshot as { context?: AgentContext } | undefined)?.context;
    const cases = [];
    for (const id of ctx?.caseIds ?? []) cases.push({ id, journal: await collect(store.journal(id)) });
    out.push({
      episodeId: rec.id,
      model: rec.model,
      agent: await collect(store.journal(rec.id)),
      cases,
      final: { state: rec.state, status: rec.status, outcome: ctx?.outcome ?? null },
    });
  }
  return out.sort((a, b) => (a.episodeId < b.episodeId ? -1 : a.episodeId > b.episodeId ? 1 : 0));
}

/**
 * Recorded episodes from a data folder (opened with `open`, by default plainly) or a `.jsonl` file
 * written by {@link writeRecording}: one episode per line.
 */
export async function readRecording(
  source: string,
  opts: { model?: string; open?: (dir: string) => Promise<LevelStore> } = {},
): Promise<RecordedEpisode[]> {
  const info = await stat(source).catch(() => undefined);
  if (!info) throw new ReplaySourceError(`no recording at ${source}: give a data folder or a .jsonl file`, { source });
  if (info.isDirectory()) {
    if (!existsSync(join(source, 'CURRENT')))
      throw new ReplaySourceError(`${source} is not a data folder (no LevelDB store there)`, { source });
    const store = await (opts.open ?? ((d: string) => LevelStore.open(d)))(source);
    try {
      return await recordFromStore(store, opts.model);
    } finally {
      await store.close();
    }
  }
  const out: RecordedEpisode[] = [];
  for (const [i, line] of (await readFile(source, 'utf8')).split('\n').entries()) {
    if (!line.trim()) continue;
    let ep: RecordedEpisode;
    try {
      ep = JSON.parse(line) as RecordedEpisode;
    } catch (err) {
      throw new ReplaySourceError(`${source} line ${i + 1}: not JSON (${(err as Error).message})`, {
        source,
        line: i + 1,
      });
    }
    if (typeof ep?.episodeId !== 'string' || !Array.isArray(ep.agent) || !Array.isArray(ep.cases))
      throw new ReplaySourceError(`${source} line ${i + 1}: not a recorded episode (episodeId, agent, cases)`, {
        source,
        line: i + 1,
      });
    if (opts.model === undefined || ep.model === opts.model) out.push(ep);
  }
  return out;
}

/** Writes recorded episodes as JSONL (one episode per line), to keep beside a model and replay later. */
export async function writeRecording(file: string, episodes: readonly RecordedEpisode[]): Promise<void> {
  await writeFile(file, episodes.map((e) => `${JSON.stringify(e)}\n`).join(''));
}

// ------------------------------------------------------------------------------------------------
// Replaying
// ------------------------------------------------------------------------------------------------

type Event = { type: string; at: number; [k: string]: unknown };
type Timers = Record<string, number | undefined>;

/** An actor of a machine fed recorded events one by one. */
class Follower {
  #actor: AnyActorRef | null;
  constructor(machine: AnyStateMachine, input: unknown) {
    const actor = createActor(machine, { input: input as never });
    actor.subscribe({ error: () => undefined });
    actor.start();
    this.#actor = actor.getSnapshot().status === 'error' ? null : actor;
  }
  get alive(): boolean {
    return this.#actor !== null;
  }
  get state(): string {
    return this.#actor ? stateName(this.#actor.getSnapshot() as { value: unknown }) : '-';
  }
  /** The context now (`{}` once the replay stopped). */
  context<T = { timers?: Timers; effect?: { id: string; kind: string } | null }>(): T {
    return ((this.#actor?.getSnapshot() as { context: unknown } | undefined)?.context ?? {}) as T;
  }
  /** Sends `event` if the machine takes it now; false (and nothing changes) if it would refuse it. */
  send(event: Event): boolean {
    const a = this.#actor;
    if (!a) return false;
    const snap = a.getSnapshot() as { can(e: Event): boolean };
    if (!snap.can(event)) return false;
    a.send(event);
    if ((a.getSnapshot() as { status: string }).status === 'error') {
      this.#actor = null;
      return false;
    }
    return true;
  }
  stop(): void {
    this.#actor?.stop();
    this.#actor = null;
  }
}

const EFFECT_EVENT: Record<string, string> = {
  'perceive.done': 'perceive',
  'perceive.failed': 'perceive',
  'plan.done': 'plan',
  'plan.failed': 'plan',
  'action.done': 'execute',
  'action.failed': 'execute',
  'compensation.done': 'compensate',
  'compensation.failed': 'compensate',
  'case.opened': 'openCase',
};

/** The recorded event as this follower must take it: effect ids and deadlines are its own (they follow its config). */
function adapt(event: Event, f: Follower): Event {
  const ctx = f.context();
  const kind = EFFECT_EVENT[event.type];
  if (kind && ctx.effect && ctx.effect.kind === kind) return { ...event, effectId: ctx.effect.id };
  if (event.type.startsWith('timer.')) {
    const due = ctx.timers?.[event.type.slice(6)];
    if (due !== undefined && due <= event.at) return { ...event, dueAt: due };
  }
  return event;
}

const branchOf = (d: { outcome: string; tier: number } | null | undefined): string | null =>
  !d ? null : d.outcome === 'review' ? `review tier ${Math.max(1, d.tier)}` : d.outcome;
const branchOfState = (state: string): string | null =>
  state === 'acting' ? 'auto' : state === 'denied' ? 'deny' : state === 'awaitingReview' ? 'review' : null;
const iso = (t: number | undefined) =>
  t === undefined ? 'not armed' : new Date(t).toISOString().slice(0, 19).replace('T', ' ');

interface Followed {
  differences: ReplayDifference[];
  /** The current model's follower after the last event it took. */
  now: Follower;
  /** The decision on which each case opened (agent only), by case id. */
  openedOn: Map<string, { outcome: string; tier: number } | null>;
}

/**
 * Feeds one actor's journal to two followers, `recorded` (its recorded input) and `now` (the current
 * model's), and returns the first difference: an event `now` refuses, another state, a deadline moved.
 */
function follow(actor: string, journal: readonly JournalEntry[], recorded: Follower, now: Follower): Followed {
  const differences: ReplayDifference[] = [];
  const openedOn = new Map<string, { outcome: string; tier: number } | null>();
  const differ = (e: JournalEntry, what: DifferenceKind, rec: string, cur: string) =>
    differences.push({ actor, seq: e.seq, event: e.event.type, what, recorded: rec, now: cur });
  for (const entry of journal.slice(1)) {
    const event = entry.event as Event;
    if (event.type === 'handoff.operator.stop') break;
    if (event.type.startsWith('handoff.')) continue;
    // A deadline of the current model that passed before this event, where the recorded one had not.
    const nowTimers = now.context().timers ?? {};
    const recTimers = recorded.context().timers ?? {};
    const overdue = Object.entries(nowTimers).find(
      ([name, due]) =>
        due !== undefined &&
        due < event.at &&
        event.type !== `timer.${name}` &&
        !((recTimers[name] ?? Infinity) < event.at),
    );
    if (overdue) {
      const [name, due] = overdue;
      differ(
        entry,
        'deadline',
        `${name} due ${iso(recTimers[name])}, ${event.type} at ${iso(event.at)}`,
        `${name} due ${iso(due)}, earlier`,
      );
      break;
    }
    if (recorded.alive) recorded.send(adapt(event, recorded));
    if (!now.send(adapt(event, now))) {
      const name = event.type.startsWith('timer.') ? event.type.slice(6) : undefined;
      if (name) differ(entry, 'deadline', `${name} fired at ${iso(event.at)}`, `${name} due ${iso(nowTimers[name])}`);
      else differ(entry, 'refused', `${event.type} taken in ${entry.state}`, `refused in ${now.state}`);
      break;
    }
    if (event.type === 'case.opened') openedOn.set(String(event.caseId), now.context<AgentContext>().decision);
    if (now.state !== entry.state) {
      const gated = event.type === 'plan.done' || (event.type === 'case.resolved' && now.state !== 'done');
      const rec = gated ? branchOfState(entry.state) : null;
      if (gated && rec)
        differ(
          entry,
          'gate',
          `${rec} (${entry.state})`,
          `${branchOf(now.context<AgentContext>().decision) ?? '-'} (${now.state})`,
        );
      else differ(entry, 'state', entry.state, now.state);
      break;
    }
  }
  return { differences, now, openedOn };
}

function caseInputs(
  model: LoadedModel,
  recorded: CaseInput,
  decision: { outcome: string; tier: number } | null | undefined,
): CaseInput {
  const operator = recorded.plan.planner === 'handoff/supervisor';
  if (operator)
    return {
      ...recorded,
      leaseMs: model.config.review.leaseMs,
      tiers: model.config.operator ? [model.config.operator] : recorded.tiers,
    };
  const tier = decision?.outcome === 'review' ? Math.max(1, decision.tier) : recorded.tier;
  return {
    ...recorded,
    tier,
    tiers: model.config.review.tiers,
    leaseMs: model.config.review.leaseMs,
    ...(decision ? { decision: { ...recorded.decision, ...decision } } : {}),
  } as CaseInput;
}

/** Replays one recorded episode against `model`; the differences, or none. */
export function replayEpisode(model: LoadedModel, ep: RecordedEpisode): EpisodeReplay {
  const init = ep.agent[0];
  const recordedCase = (id: string) =>
    ep.cases.find((c) => c.id === id)?.journal[0]?.event as { input?: CaseInput } | undefined;
  const firstCase = ep.cases[0] ? recordedCase(ep.cases[0].id)?.input : undefined;
  const recordedDecision =
    firstCase && firstCase.plan.planner !== 'handoff/supervisor' ? `review tier ${firstCase.tier}` : null;
  const result: EpisodeReplay = {
    episodeId: ep.episodeId,
    differs: false,
    differences: [],
    recorded: {
      decision: recordedDecision ?? branchOfState(ep.agent.find((e) => e.event.type === 'plan.done')?.state ?? ''),
      outcome: ep.final.outcome,
    },
    now: { decision: null, outcome: null },
  };
  if (!init || init.seq !== 0 || init.event.type !== 'xstate.init') {
    result.differences.push({
      actor: ep.episodeId,
      seq: init?.seq ?? 0,
      event: init?.event.type ?? '-',
      what: 'unreplayable',
      recorded: 'journal',
      now: "the journal does not start at the episode's creation",
    });
    result.differs = true;
    return result;
  }
  const input = (init.event as { input?: Record<string, unknown> }).input ?? {};
  const machine = machineFor(model, 'agent');
  const agent = follow(
    ep.episodeId,
    ep.agent,
    new Follower(machine, input),
    new Follower(machine, { ...input, retry: model.config.retry }),
  );
  const ctx = agent.now.context<AgentContext>();
  result.now.decision = branchOf(ctx.decision);
  const diverged = agent.differences.length > 0;
  result.now.outcome = diverged ? null : ctx.outcome;
  result.differences.push(...agent.differences);
  agent.now.stop();
  for (const c of ep.cases) {
    const head = c.journal[0];
    const recInput = (head?.event as { input?: CaseInput } | undefined)?.input;
    if (!head || head.seq !== 0 || !recInput) continue;
    // A case the agent's replay no longer reaches is covered by the agent's difference.
    if (diverged && !agent.openedOn.has(c.id)) continue;
    const kase = machineFor(model, 'case');
    const decision = agent.openedOn.get(c.id);
    const nowInput = caseInputs(model, recInput, decision);
    const f = follow(c.id, c.journal, new Follower(kase, recInput), new Follower(kase, nowInput));
    if (nowInput.tier !== recInput.tier && recInput.plan.planner !== 'handoff/supervisor')
      result.differences.push({
        actor: c.id,
        seq: 0,
        event: 'xstate.init',
        what: 'tier',
        recorded: `opened at tier ${recInput.tier}`,
        now: `tier ${nowInput.tier}`,
      });
    result.differences.push(...f.differences);
    f.now.stop();
  }
  if (!diverged && ep.final.status === 'done' && ctx.outcome !== ep.final.outcome)
    result.differences.push({
      actor: ep.episodeId,
      seq: ep.agent.at(-1)?.seq ?? 0,
      event: 'end',
      what: 'outcome',
      recorded: String(ep.final.outcome),
      now: String(ctx.outcome),
    });
  result.differs = result.differences.length > 0;
  if (result.differs) result.now.outcome = null;
  return result;
}

/** Replays every finished recorded episode of `model` against it. */
export function replayRecording(
  model: LoadedModel,
  episodes: readonly RecordedEpisode[],
  source: string,
): ReplayReport {
  const results: EpisodeReplay[] = [];
  const skipped: ReplayReport['skipped'] = [];
  let replayed = 0;
  for (const ep of episodes) {
    if (ep.model !== model.name) continue;
    if (ep.final.status !== 'done') {
      skipped.push({ episodeId: ep.episodeId, reason: `unfinished (${ep.final.state})` });
      continue;
    }
    replayed++;
    const r = replayEpisode(model, ep);
    if (r.differs) results.push(r);
  }
  return {
    ok: results.length === 0,
    model: model.name,
    version: model.config.version,
    source,
    episodes: replayed,
    unchanged: replayed - results.length,
    differing: results.length,
    skipped,
    results,
  };
}
