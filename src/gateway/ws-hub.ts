import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { TransitionNotice } from '../runtime/runtime.ts';
import type { Principal, Session, Sessions } from '../httpkit/auth.ts';
import type { GatewayBackend } from './backend.ts';
import { mayOpen } from './case-view.ts';
import type { CaseContext } from '../machines/review-case.ts';
import { mayView, type QueueProjection, type RowChange } from './projection.ts';
import { WsClients, type WsClient } from '../httpkit/ws-clients.ts';

interface Client extends WsClient {
  principal: Principal;
  /** Case ids whose page is open, and their episodes. */
  cases: Set<string>;
  episodes: Map<string, string>;
  depthDirty: boolean;
}

/**
 * Live updates for the console over one WebSocket per page. The server only pushes: queue rows
 * entering, changing or leaving what this reviewer may see, queue depths, and changes of the case
 * (and its agent episode) the page has open. Nothing sent by the browser on the socket changes
 * state; commands go through the HTTP API with its CSRF check.
 */
export class WsHub {
  #clients: WsClients<Client>;
  #timers: NodeJS.Timeout[] = [];
  #unsubs: (() => void)[] = [];

  constructor(
    private readonly backend: GatewayBackend,
    private readonly projection: QueueProjection,
    sessions: Sessions,
  ) {
    this.#clients = new WsClients<Client>(sessions);
    this.#unsubs.push(projection.onChange((c) => this.#onRow(c)));
    const caseSub = backend.onCase((n) => this.#onCase(n));
    const agentSub = backend.onAgent((n) => this.#onAgent(n));
    this.#unsubs.push(
      () => caseSub.unsubscribe(),
      () => agentSub.unsubscribe(),
    );
    const depth = setInterval(() => this.#flushDepth(), 500);
    depth.unref();
    this.#timers.push(depth);
  }

  get clients(): number {
    return this.#clients.size;
  }

  /** Completes an upgrade the server has already authenticated. */
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer, session: Session): void {
    this.#clients.upgrade(
      req,
      socket,
      head,
      (ws) => ({ ws, session, principal: session.principal, cases: new Set(), episodes: new Map(), depthDirty: true }),
      (c, text) => void this.#onMessage(c, text),
      () => ({ type: 'hello', serverTime: this.backend.now(), reviewer: session.principal.id }),
    );
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
        else if (before)
          this.#send(c, { type: 'queue', op: 'remove', id: change.row.id, reason: `moved to ${change.row.queue}` });
        if (after || before) c.depthDirty = true;
      } else if (before) {
        this.#send(c, { type: 'queue', op: 'remove', id: change.id, reason: change.reason });
        c.depthDirty = true;
      }
    }
  }

  #onCase(n: TransitionNotice): void {
    for (const c of this.#clients)
      if (c.cases.has(n.id))
        this.#send(c, {
          type: 'case',
          id: n.id,
          seq: n.seq,
          state: n.state,
          status: n.status,
          event: n.event,
          at: n.at,
        });
  }

  #onAgent(n: TransitionNotice): void {
    for (const c of this.#clients) {
      const caseId = c.episodes.get(n.id);
      if (caseId)
        this.#send(c, {
          type: 'episode',
          id: n.id,
          caseId,
          seq: n.seq,
          state: n.state,
          status: n.status,
          event: n.event,
          at: n.at,
        });
    }
  }

  #flushDepth(): void {
    const now = this.backend.now();
    for (const c of this.#clients) {
      if (!this.#clients.alive(c)) continue;
      if (!c.depthDirty) continue;
      c.depthDirty = false;
      this.#send(c, { type: 'depth', depth: this.projection.depth(c.principal, now), serverTime: now });
    }
  }

  #send(c: Client, msg: unknown): void {
    this.#clients.send(c, msg);
  }

  close(): void {
    for (const t of this.#timers) clearInterval(t);
    for (const u of this.#unsubs) u();
    this.#clients.close();
  }
}
