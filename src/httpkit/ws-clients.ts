import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Session, Sessions } from './auth.ts';

/** What every client of a {@link WsClients} carries; endpoints add their own fields. */
export interface WsClient {
  ws: WebSocket;
  session: Session;
}

/**
 * The clients of one push-only WebSocket endpoint of the gateway (the console's live feed, the
 * inspector's): completing upgrades the server has authenticated, heartbeats that drop dead
 * connections, sends that skip closed sockets, and the end of a client whose session ended or
 * expired (a `session` message, then close code 4401, which the pages take as "sign in again").
 * One place for what both endpoints must do the same way.
 */
export class WsClients<C extends WsClient> implements Iterable<C> {
  #wss = new WebSocketServer({ noServer: true, maxPayload: 4096, perMessageDeflate: false });
  #clients = new Set<C>();
  #alive = new WeakMap<C, boolean>();
  #timer: NodeJS.Timeout;
  #unsubscribe: () => void;

  constructor(
    private readonly sessions: Sessions,
    opts: { heartbeatMs?: number } = {},
  ) {
    this.#timer = setInterval(() => this.#heartbeat(), opts.heartbeatMs ?? 20_000);
    this.#timer.unref();
    this.#unsubscribe = sessions.onEnd((_id, key) => {
      for (const c of this.#clients) if (sessions.keyOf(c.session) === key) this.end(c, 'session ended');
    });
  }

  get size(): number {
    return this.#clients.size;
  }

  [Symbol.iterator](): Iterator<C> {
    return this.#clients[Symbol.iterator]();
  }

  /**
   * Completes an upgrade: `make` builds the client for the socket, `onMessage` gets its text frames
   * (binary frames arrive as ''), and `hello` is sent first.
   */
  upgrade(
    req: IncomingMessage,
    socket: Duplex,
    head: Buffer,
    make: (ws: WebSocket) => C,
    onMessage: (c: C, text: string) => void,
    hello: () => unknown,
  ): void {
    this.#wss.handleUpgrade(req, socket, head, (ws) => {
      const client = make(ws);
      this.#clients.add(client);
      this.#alive.set(client, true);
      ws.on('pong', () => this.#alive.set(client, true));
      ws.on('message', (data, isBinary) => onMessage(client, isBinary ? '' : data.toString()));
      ws.on('close', () => this.#clients.delete(client));
      ws.on('error', () => this.#clients.delete(client));
      this.send(client, hello());
    });
  }

  send(c: C, msg: unknown): void {
    if (c.ws.readyState === c.ws.OPEN) c.ws.send(JSON.stringify(msg));
  }

  /** Whether the client's session still holds; if not, ends the client and returns false. */
  alive(c: C): boolean {
    if (this.sessions.alive(c.session)) return true;
    this.end(c, 'session expired');
    return false;
  }

  end(c: C, reason: string): void {
    this.send(c, { type: 'session', state: 'expired', message: 'Your session ended. Sign in again.' });
    c.ws.close(4401, reason);
    this.#clients.delete(c);
  }

  #heartbeat(): void {
    for (const c of this.#clients) {
      if (!this.#alive.get(c)) {
        c.ws.terminate();
        this.#clients.delete(c);
        continue;
      }
      this.#alive.set(c, false);
      c.ws.ping();
    }
  }

  close(): void {
    clearInterval(this.#timer);
    this.#unsubscribe();
    for (const c of this.#clients) c.ws.terminate();
    this.#clients.clear();
    this.#wss.close();
  }
}
