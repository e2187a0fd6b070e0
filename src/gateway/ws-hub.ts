import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import type { TransitionNotice } from '../runtime/runtime.ts';
import type { Principal, Session, Sessions } from './auth.ts';
import type { GatewayBackend } from './backend.ts';
import { mayOpen } from './case-view.ts';
import type { CaseContext } from '../machines/review-case.ts';
import { mayView, type QueueProjection, type RowChange } from './projection.ts';

interface Client {
  ws: WebSocket;
  session: Session;
  principal: Principal;
  /** Case ids whose page is open, and their episodes. */
  cases: Set<string>;
  episodes: Map<string, string>;
  depthDirty: boolean;
  alive: boolean;
}

/**
 * Live updates for the console over one WebSocket per page. The server only pushes: queue rows
 * entering, changing or leaving what this reviewer may see, queue depths, and changes of the case
 * (and its agent episode) the page has open. Nothing sent by the browser on the socket changes
 * state; commands go through the HTTP API with its CSRF check.
 */
export class WsHub {
  #wss = new WebSocketServer({ noServer: true, maxPayload: 4096, perMessageDeflate: false });
  #clients = new Set<Client>();
  #timers: NodeJS.Timeout[] = [];
  #unsubs: (() => void)[] = [];

  constructor(
    private readonly backend: GatewayBackend,
    private readonly projection: QueueProjection,
    private readonly sessions: Sessions,
  ) {
    this.#unsubs.push(projection.onChange((c) => this.#onRow(c)));
    const caseSub = backend.onCase((n) => this.#onCase(n));
    const agentSub = backend.onAgent((n) => this.#onAgent(n));
    this.#unsubs.push(
      () => caseSub.unsubscribe(),
      () => agentSub.unsubscribe(),
      sessions.onEnd((_id, key) => {
        for (const c of this.#clients) if (sessions.keyOf(c.session) === key) this.#end(c, 4401, 'session ended');
      }),
    );
    const depth = setInterval(() => this.#flushDepth(), 500);
    const beat = setInterval(() => this.#heartbeat(), 20_000);
    depth.unref();
    beat.unref();
    this.#timers.push(depth, beat);
  }

  get clients(): number {
    return this.#clients.size;
  }

  /** Completes an upgrade the server has already authenticated. */
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer, session: Session): void {
    this.#wss.handleUpgrade(req, socket, head, (ws) => {
      const client: Client = { ws, session, principal: session.principal, cases: new Set(), episodes: new Map(), depthDirty: true, alive: true };
      this.#clients.add(client);
      ws.on('pong', () => (client.alive = true));
      ws.on('message', (data, isBinary) => void this.#onMessage(client, isBinary ? '' : data.toString()));
      ws.on('close', () => this.#clients.delete(client));
      ws.on('error', () => this.#clients.delete(client));
      this.#send(client, { type: 'hello', serverTime: this.backend.now(), reviewer: client.principal.id });
    });
  }

  async #onMessage(c: Client, text: string): Promise<void> {
    let msg: { type?: unknown; caseId?: unknown };
    try {
      msg = JSON.parse(text) as typeof msg;
    } catch {
      return;
    }
    if (msg.type === 'watch' && typeof msg.caseId === 'string' && msg.caseId.length < 300) {
      const view = await this.backend.get(msg.caseId).catch(() => undefined);
      if (!view || view.kind !== 'case' || !mayOpen(c.principal, view.context as CaseContext)) return;
      // One case page per socket: watching a case stops watching the previous one.
      c.cases.clear();
      c.episodes.clear();
      c.cases.add(view.id);
      c.episodes.set((view.context as CaseContext).episodeId, view.id);
    } else if (msg.type === 'unwatch') {
      c.cases.clear();
      c.episodes.clear();
    }
  }

  #onRow(change: RowChange): void {
    for (const c of this.#clients) {
      const before = change.before ? mayView(c.principal, change.before.model, change.before.roles) : false;
      if (change.op === 'upsert') {
        const after = mayView(c.principal, change.row.model, change.row.roles);
        if (after) this.#send(c, { type: 'queue', op: 'upsert', row: change.row });
        else if (before) this.#send(c, { type: 'queue', op: 'remove', id: change.row.id, reason: `moved to ${change.row.queue}` });
        if (after || before) c.depthDirty = true;
      } else if (before) {
        this.#send(c, { type: 'queue', op: 'remove', id: change.id, reason: change.reason });
        c.depthDirty = true;
      }
    }
  }

  #onCase(n: TransitionNotice): void {
    for (const c of this.#clients) if (c.cases.has(n.id)) this.#send(c, { type: 'case', id: n.id, seq: n.seq, state: n.state, status: n.status, event: n.event, at: n.at });
  }

  #onAgent(n: TransitionNotice): void {
    for (const c of this.#clients) {
      const caseId = c.episodes.get(n.id);
      if (caseId) this.#send(c, { type: 'episode', id: n.id, caseId, seq: n.seq, state: n.state, status: n.status, event: n.event, at: n.at });
    }
  }

  #flushDepth(): void {
    const now = this.backend.now();
    for (const c of this.#clients) {
      if (!this.sessions.alive(c.session)) {
        this.#end(c, 4401, 'session expired');
        continue;
      }
      if (!c.depthDirty) continue;
      c.depthDirty = false;
      this.#send(c, { type: 'depth', depth: this.projection.depth(c.principal, now), serverTime: now });
    }
  }

  #heartbeat(): void {
    for (const c of this.#clients) {
      if (!c.alive) {
        c.ws.terminate();
        this.#clients.delete(c);
        continue;
      }
      c.alive = false;
      c.ws.ping();
    }
  }

  #send(c: Client, msg: unknown): void {
    if (c.ws.readyState === c.ws.OPEN) c.ws.send(JSON.stringify(msg));
  }

  #end(c: Client, code: number, reason: string): void {
    this.#send(c, { type: 'session', state: 'expired', message: 'Your session ended. Sign in again.' });
    c.ws.close(code, reason);
    this.#clients.delete(c);
  }

  close(): void {
    for (const t of this.#timers) clearInterval(t);
    for (const u of this.#unsubs) u();
    for (const c of this.#clients) c.ws.terminate();
    this.#clients.clear();
    this.#wss.close();
  }
}
