import type { ServerResponse } from 'node:http';
import {
  API_PREFIX,
  ApiEpisodeSummary,
  type ApiEpisode,
  type ApiEpisodeLinks,
  type ApiEpisodeEvent,
  type ApiEpisodePage,
  type EpisodeListQuery,
  type ServiceAccountView,
} from '../contracts/api-v1.ts';
import type { AgentContext } from '../machines/agent.ts';
import type { CaseContext } from '../machines/review-case.ts';
import type { LoadedModel } from '../models/loader.ts';
import type { ActorView, TransitionNotice } from '../runtime/runtime.ts';
import type { ApiV1Runtime } from './api-v1-runtime.ts';
import { episodeView } from './case-view.ts';
import { HttpError } from '../httpkit/http.ts';

/** Records one list request reads at most before it answers a (possibly short) page with a cursor to go on. */
const MAX_SCANNED = 20_000;

/** `GET /api/v1/episodes/{id}`: state, outcome, gate decision, cases, actions (sensitive results masked). */
export async function episodeBody(rt: ApiV1Runtime, view: ActorView, model: LoadedModel): Promise<ApiEpisode> {
  const a = view.context as AgentContext;
  const ev = episodeView(view, model, false)!;
  const cases = await Promise.all(
    a.caseIds.map(async (caseId) => {
      const c = await rt.get(caseId);
      const ctx = c?.kind === 'case' ? (c.context as CaseContext) : undefined;
      return {
        id: caseId,
        state: c?.state ?? null,
        status: c?.status ?? null,
        tier: ctx?.tier ?? null,
        outcome: ctx?.resolution?.outcome ?? null,
      };
    }),
  );
  const d = a.decision;
  return {
    id: view.id,
    model: view.model,
    state: view.state,
    status: view.status,
    outcome: a.outcome,
    resolution: a.resolution,
    decision: d
      ? {
          outcome: d.outcome,
          ruleId: d.ruleId,
          tier: d.tier,
          riskScore: d.riskScore,
          reasons: d.reasons,
          policyVersion: d.policyVersion,
        }
      : null,
    actions: ev.steps.map((s) => ({ index: s.index, type: s.type, status: s.status, result: s.result })),
    cases,
    error: ev.error,
    traceId: a.trace?.traceId ?? null,
    startedAt: a.startedAt,
    endedAt: a.endedAt,
    links: episodeLinks(view.id, a.caseIds[0]),
    serverTime: rt.clock.now(),
  };
}

/** `GET /api/v1/episodes/{id}` of an episode (the `statusUrl` of a 202, the `self` of its links). */
export function episodeUrl(id: string): string {
  return `${API_PREFIX}/episodes/${encodeURIComponent(id)}`;
}

/**
 * The API's own URLs of an episode and the console page showing its lineage: the case page (its
 * Lineage card reads `/api/cases/{id}/lineage`, the lineage of the case's episode), so none without a case.
 */
export function episodeLinks(id: string, firstCaseId: string | undefined): ApiEpisodeLinks {
  const self = episodeUrl(id);
  return {
    self,
    events: `${self}/events`,
    lineage: firstCaseId === undefined ? null : `/#/case/${encodeURIComponent(firstCaseId)}`,
  };
}

function summary(view: ActorView): ApiEpisodeSummary {
  const a = view.context as AgentContext;
  return {
    id: view.id,
    model: view.model,
    state: view.state,
    status: view.status,
    outcome: a.outcome ?? null,
    resolution: a.resolution ?? null,
    traceId: a.trace?.traceId ?? null,
    startedAt: a.startedAt ?? null,
    endedAt: a.endedAt ?? null,
  };
}

/** A cursor: the last episode id a page covered (episodes are listed in id order), opaque to clients. */
function encodeCursor(lastId: string): string {
  return Buffer.from(JSON.stringify({ v: 1, after: lastId })).toString('base64url');
}

function decodeCursor(cursor: string): string {
  try {
    const c = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as { v?: unknown; after?: unknown };
    if (c.v === 1 && typeof c.after === 'string' && c.after.length <= 300) return c.after;
  } catch {
    // answered below
  }
  throw new HttpError(
    400,
    'request.invalid',
    'the cursor is not one this API gave out (use the `next` of the previous page)',
    { path: 'cursor' },
  );
}

/**
 * `GET /api/v1/episodes`: the episodes of the models the account may read (or of `model`), in id order
 * after the cursor. The order never changes, so a cursor stays valid and pages never repeat an episode;
 * an episode started after the first page may sort before the cursor and then only shows in a new listing.
 */
export async function listEpisodes(
  rt: ApiV1Runtime,
  account: ServiceAccountView,
  q: EpisodeListQuery,
): Promise<ApiEpisodePage> {
  const readable = new Set(
    Object.entries(account.scopes)
      .filter(([m, ops]) => ops.includes('episodes:read') && rt.models.has(m))
      .map(([m]) => m),
  );
  if (q.model !== undefined && !readable.has(q.model))
    throw new HttpError(403, 'auth.forbidden', `account ${account.id} may not episodes:read on model ${q.model}`, {
      accountId: account.id,
      model: q.model,
      operation: 'episodes:read',
    });
  if (readable.size === 0)
    throw new HttpError(403, 'auth.forbidden', `account ${account.id} may not episodes:read on any model`, {
      accountId: account.id,
      operation: 'episodes:read',
    });
  const after = q.cursor !== undefined ? decodeCursor(q.cursor) : undefined;
  const out: ApiEpisodeSummary[] = [];
  let scanned = 0;
  let last: string | undefined;
  let more = false;
  for await (const view of rt.episodes(after)) {
    if (out.length >= q.limit || scanned >= MAX_SCANNED) {
      more = true;
      break;
    }
    scanned++;
    last = view.id;
    if (view.kind !== 'agent') continue;
    if (q.model !== undefined ? view.model !== q.model : !readable.has(view.model)) continue;
    const a = view.context as AgentContext;
    if (q.outcome !== undefined && a.outcome !== q.outcome) continue;
    if (q.since !== undefined && (a.startedAt ?? 0) < q.since) continue;
    out.push(summary(view));
  }
  return { episodes: out, next: more && last !== undefined ? encodeCursor(last) : null, serverTime: rt.clock.now() };
}

function eventOf(view: ActorView, event: string | null, at: number): ApiEpisodeEvent {
  return {
    id: view.id,
    seq: view.seq,
    state: view.state,
    status: view.status,
    event,
    outcome: (view.context as AgentContext).outcome ?? null,
    at,
  };
}

/**
 * `GET /api/v1/episodes/{id}/events`: Server-Sent Events on the raw response. `state` now and on each
 * durable transition, `outcome` once the episode has finished, then the stream ends. A comment line
 * every 15 s keeps proxies from closing an idle stream. The listener is subscribed before the first
 * read, so no transition between the two is missed (a repeated seq is skipped).
 */
export async function streamEpisode(
  rt: ApiV1Runtime,
  res: ServerResponse,
  first: ActorView,
  streams: Set<ServerResponse>,
): Promise<void> {
  let lastSeq = -1;
  let ended = false;
  const queue: TransitionNotice[] = [];
  let draining = false;
  const write = (name: string, data: ApiEpisodeEvent) => {
    if (ended) return;
    res.write(`event: ${name}\nid: ${data.seq}\ndata: ${JSON.stringify(data)}\n\n`);
  };
  const end = () => {
    if (ended) return;
    ended = true;
    unsubscribe();
    clearInterval(beat);
    streams.delete(res);
    res.end();
  };
  const emit = (view: ActorView, event: string | null, at: number) => {
    if (view.seq <= lastSeq) return;
    lastSeq = view.seq;
    write('state', eventOf(view, event, at));
    if (view.status !== 'active') {
      write('outcome', eventOf(view, event, at));
      end();
    }
  };
  const drain = async () => {
    if (draining) return;
    draining = true;
    try {
      while (queue.length && !ended) {
        const n = queue.shift()!;
        const view = await rt.get(n.id);
        if (view) emit(view, n.event, n.at);
      }
    } catch {
      end();
    } finally {
      draining = false;
    }
  };
  const unsubscribe = rt.onAgent((n) => {
    if (n.id !== first.id || ended) return;
    queue.push(n);
    void drain();
  });
  const beat = setInterval(() => res.write(': keep-alive\n\n'), 15_000);
  beat.unref();
  streams.add(res);
  res.once('close', end);
  res.writeHead(200, {
    'Content-Type': 'text/event-stream; charset=utf-8',
    'Cache-Control': 'no-store',
    Connection: 'keep-alive',
    'X-Accel-Buffering': 'no',
  });
  res.write('retry: 2000\n\n');
  // Read again after subscribing: a transition between the route's read and the subscription is not lost.
  let now = first;
  try {
    now = (await rt.get(first.id)) ?? first;
  } catch {
    // the route's read stands
  }
  emit(now, null, rt.clock.now());
  void drain();
}
