import type { IncomingMessage } from 'node:http';
import { dirname, resolve } from 'node:path';
import type { Duplex } from 'node:stream';
import { fileURLToPath } from 'node:url';
import type { Principal, Session, Sessions } from '../httpkit/auth.ts';
import { WsClients, type WsClient } from '../httpkit/ws-clients.ts';
import type { FastifyReply } from 'fastify';
import { HttpError, StaticFiles } from '../httpkit/http.ts';
import type { TransitionNotice } from '../runtime/runtime.ts';
import type { InspectorBackend } from './backend.ts';
import { InspectorService, type ActorFilter, type ActorRow } from './service.ts';
import type { InspectionRecord } from './stream.ts';

/** The role that opens the inspector (per model, in `model.json`). */
export const ENGINEER_ROLE = 'engineer';

const HERE = dirname(fileURLToPath(import.meta.url));
const DEFAULT_ROOT = resolve(HERE, '..', '..', 'web', 'inspector');

/** Models whose actors this principal may inspect: those where they hold the `engineer` role. */
export function inspectableModels(p: Principal): Set<string> {
  return new Set(
    Object.entries(p.grants)
      .filter(([, g]) => g.roles.includes(ENGINEER_ROLE))
      .map(([m]) => m),
  );
}

function requireEngineer(p: Principal): Set<string> {
  const models = inspectableModels(p);
  if (models.size === 0)
    throw new HttpError(
      403,
      'auth.forbidden',
      `the inspector needs the ${ENGINEER_ROLE} role; yours are ${[...new Set(Object.values(p.grants).flatMap((g) => g.roles))].join(', ') || 'none'}`,
      { rule: 'engineer-role' },
    );
  return models;
}

interface Client extends WsClient {
  models: Set<string>;
  watch: Set<string>;
}

/**
 * The inspector on the gateway: its page (`/inspector`, files from `web/inspector/`), its read-only
 * API (`/api/inspect/*`) and its WebSocket (`/inspector/ws`), all behind the console's sign-in and the
 * `engineer` role, and under the same security headers. The page only reads: nothing here changes an
 * actor, so the API has no mutation (and no CSRF surface); the socket carries watch requests only.
 */
export class InspectorRoutes {
  readonly service: InspectorService;
  #files: StaticFiles | null = null;
  #root: string;
  #clients: WsClients<Client>;
  #timers: NodeJS.Timeout[] = [];
  #unsubs: (() => void)[] = [];
  #dirtyRows = new Map<string, ActorRow>();

  constructor(backend: InspectorBackend, sessions: Sessions, opts: { webRoot?: string } = {}) {
    this.service = new InspectorService(backend);
    this.#clients = new WsClients<Client>(sessions);
    this.#root = opts.webRoot ?? DEFAULT_ROOT;
  }

  async start(): Promise<void> {
    this.#files = await StaticFiles.load(this.#root, '/inspector/');
    await this.service.start();
    this.#unsubs.push(
      this.service.onRecord((r) => this.#onRecord(r)),
      this.service.onNotice((n) => this.#onNotice(n)),
      this.service.onRow((row) => this.#dirtyRows.set(row.id, row)),
      this.service.onStats((s) => {
        for (const c of this.#clients) this.#send(c, { type: 'stats', stats: s });
      }),
    );
    const rows = setInterval(() => this.#flushRows(), 300);
    const focus = setInterval(() => this.#renewFocus(), 10_000);
    for (const t of [rows, focus]) t.unref();
    this.#timers.push(rows, focus);
  }

  close(): void {
    for (const t of this.#timers) clearInterval(t);
    for (const u of this.#unsubs) u();
    this.#clients.close();
    this.service.close();
  }

  // ----------------------------------------------------------------------------------------------
  // Page
  // ----------------------------------------------------------------------------------------------

  /** `GET /inspector[/...]`. `signedIn` says whether the request carries a live session. */
  async page(reply: FastifyReply, path: string, signedIn: 'ok' | 'missing' | 'expired'): Promise<FastifyReply> {
    const files = this.#files!;
    if (path === '/inspector' || path === '/inspector/' || path === '/inspector/index.html') {
      if (signedIn !== 'ok')
        return reply
          .code(302)
          .headers({
            Location: `/login?${signedIn === 'expired' ? 'expired=1&' : ''}next=/inspector`,
            'Cache-Control': 'no-store',
          })
          .send();
      return files.send(reply, '/inspector/index.html');
    }
    if (path.startsWith('/inspector/assets/') && files.has(path)) return files.send(reply, path);
    throw new HttpError(404, 'request.not_found', `nothing at ${path}`);
  }

  // ----------------------------------------------------------------------------------------------
  // API
  // ----------------------------------------------------------------------------------------------

  /** `/api/inspect/*`, for a signed-in principal: the answer's JSON body. Read-only: GET only. */
  async api(method: string, url: URL, p: Principal): Promise<unknown> {
    if (method !== 'GET' && method !== 'HEAD')
      throw new HttpError(405, 'request.method', 'the inspector API is read-only: use GET');
    const models = requireEngineer(p);
    const path = url.pathname;
    const sp = url.searchParams;
    if (path === '/api/inspect/session') {
      return {
        reviewer: { id: p.id, name: p.name },
        node: this.service.backend.node,
        namespace: this.service.backend.namespace,
        models: [...models].map((m) => ({
          name: m,
          description: this.service.models.get(m)?.config.description ?? '',
        })),
        stats: this.service.lastStats,
        serverTime: this.service.backend.now(),
      };
    }
    if (path === '/api/inspect/actors') {
      const filter: ActorFilter = {};
      const kind = sp.get('kind');
      if (kind) {
        if (kind !== 'agent' && kind !== 'case')
          throw new HttpError(400, 'request.invalid', 'kind must be agent or case', { path: 'kind' });
        filter.kind = kind;
      }
      const status = sp.get('status');
      if (status) {
        if (!['live', 'finished', 'all'].includes(status))
          throw new HttpError(400, 'request.invalid', 'status must be live, finished or all', { path: 'status' });
        filter.status = status as ActorFilter['status'];
      }
      for (const k of ['model', 'state', 'node', 'q'] as const) {
        const v = sp.get(k);
        if (v) filter[k] = v.slice(0, 200);
      }
      const limit = Math.min(500, Math.max(1, Number(sp.get('limit') ?? 200) || 200));
      return { ...this.service.list(filter, models, limit), serverTime: this.service.backend.now() };
    }
    const chart = /^\/api\/inspect\/charts\/([^/]+)\/(agent|case)$/.exec(path);
    if (chart) {
      const model = decodeURIComponent(chart[1]!);
      if (!models.has(model))
        throw new HttpError(404, 'request.not_found', `no model named '${model}' you may inspect`);
      return await this.service.chart(model, chart[2] as 'agent' | 'case');
    }
    const actor = /^\/api\/inspect\/actors\/([^/]+)$/.exec(path);
    if (actor) {
      let id: string;
      try {
        id = decodeURIComponent(actor[1]!);
      } catch {
        throw new HttpError(400, 'request.invalid', 'the actor id is not valid URL encoding');
      }
      const found = await this.service.replay(id);
      if (!found || !models.has(found.row.model))
        throw new HttpError(404, 'actor.not_found', `no actor with id '${id}'`, { actorId: id });
      return { actor: found.row, replay: found.replay, serverTime: this.service.backend.now() };
    }
    throw new HttpError(404, 'request.not_found', `no API at ${path}`);
  }

  // ----------------------------------------------------------------------------------------------
  // WebSocket
  // ----------------------------------------------------------------------------------------------

  /** Completes an upgrade of `/inspector/ws` the gateway authenticated (session and origin). */
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer, session: Session): void {
    const models = inspectableModels(session.principal);
    if (models.size === 0) {
      socket.write('HTTP/1.1 403 Forbidden\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      socket.destroy();
      return;
    }
    this.#clients.upgrade(
      req,
      socket,
      head,
      (ws) => ({ ws, session, models, watch: new Set() }),
      (c, text) => this.#onMessage(c, text),
      () => ({ type: 'hello', serverTime: this.service.backend.now(), stats: this.service.lastStats }),
    );
  }

  #onMessage(c: Client, text: string): void {
    let msg: { type?: unknown; ids?: unknown };
    try {
      msg = JSON.parse(text) as typeof msg;
    } catch {
      return;
    }
    if (msg.type === 'watch' && Array.isArray(msg.ids)) {
      const ids = msg.ids.filter((x): x is string => typeof x === 'string' && x.length < 300).slice(0, 20);
      c.watch = new Set(
        ids.filter((id) => {
          const row = this.service.row(id);
          return !row || c.models.has(row.model);
        }),
      );
      if (c.watch.size) this.service.backend.focus([...c.watch], 30_000);
    } else if (msg.type === 'unwatch') c.watch.clear();
  }

  #renewFocus(): void {
    const ids = new Set<string>();
    for (const c of this.#clients) {
      if (!this.#clients.alive(c)) continue;
      for (const id of c.watch) ids.add(id);
    }
    if (ids.size) this.service.backend.focus([...ids], 30_000);
  }

  #onRecord(r: InspectionRecord): void {
    for (const c of this.#clients)
      if (c.watch.has(r.id) && c.models.has(r.model)) this.#send(c, { type: 'record', record: r });
  }

  #onNotice(n: TransitionNotice): void {
    for (const c of this.#clients) {
      if (c.watch.has(n.id) && c.models.has(n.model))
        this.#send(c, {
          type: 'notice',
          notice: {
            id: n.id,
            kind: n.kind,
            model: n.model,
            seq: n.seq,
            at: n.at,
            event: n.event,
            state: n.state,
            status: n.status,
          },
        });
    }
  }

  #flushRows(): void {
    if (this.#dirtyRows.size === 0) return;
    const rows = [...this.#dirtyRows.values()];
    this.#dirtyRows.clear();
    for (const c of this.#clients) {
      if (!this.#clients.alive(c)) continue;
      const mine = rows.filter((r) => c.models.has(r.model));
      if (mine.length) this.#send(c, { type: 'rows', rows: mine.slice(0, 500), more: Math.max(0, mine.length - 500) });
    }
  }

  #send(c: Client, msg: unknown): void {
    this.#clients.send(c, msg);
  }
}
