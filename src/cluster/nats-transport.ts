import {
  connect,
  nuid,
  type MsgHdrs,
  type NatsConnection,
  type Msg as NatsMsg,
  type Status,
  type Subscription as NatsSubscription,
} from '@nats-io/transport-node';
import { JsWire, WireClosedError, WireNoRespondersError, WireTimeoutError, headerBlock } from './js-wire.ts';
import { ContractError, HandoffError, fromWireError, toWireError, type WireError } from '../contracts/errors.ts';
import type { Msg, Subscription, Transport } from '../transport/transport.ts';
import {
  natsConnectError,
  natsConnectOptions,
  redactServerUrl,
  type NatsSecurityOptions,
} from '../security/nats-auth.ts';

/** Options of {@link NatsTransport.connect}. */
export interface NatsTransportOptions {
  /** Client name shown by the server's monitoring (e.g. the node name). */
  name?: string;
  /**
   * Queue group of `serve` subscriptions. Every node serving the same subject in the same group gets
   * a share of the requests and exactly one answers each. @default 'handoff'
   */
  queue?: string;
  /** How long a first connection waits for a server that does not answer. @default `HANDOFF_NATS_CONNECT_TIMEOUT_MS`, else 60000 */
  connectTimeoutMs?: number;
  /** Default request timeout, ms. @default 10000 */
  requestTimeoutMs?: number;
  /** Pause between reconnect attempts, ms. The client never gives up reconnecting. @default 250 */
  reconnectWaitMs?: number;
  /** Client pings the server this often, ms; a dead server is noticed after `maxPingOut` of them. @default 2000 */
  pingIntervalMs?: number;
  /** TLS and credentials (docs/security.md). @default none: TLS only if the server requires it */
  security?: NatsSecurityOptions;
}

type Reply = { ok: true; data: unknown } | { ok: false; error: WireError };

const dec = new TextDecoder();

/** JSON payloads on the wire; an empty payload is `undefined` (`Buffer.from`: see store-format.ts's `encode`). */
export function encodeJson(value: unknown): Uint8Array {
  return value === undefined ? new Uint8Array(0) : Buffer.from(JSON.stringify(value), 'utf8');
}
export function decodeJson(data: Uint8Array): unknown {
  return data.length === 0 ? undefined : JSON.parse(dec.decode(data));
}

/** Headers as the client sends them, pre-encoded in one block (js-wire.ts's `headerBlock`). */
export function toNatsHeaders(h: Record<string, string> | undefined): MsgHdrs | undefined {
  return h ? headerBlock({ headers: h }) : undefined;
}

export function fromNatsHeaders(h: MsgHdrs | undefined): Record<string, string> | undefined {
  if (!h) return undefined;
  const out: Record<string, string> = {};
  for (const k of h.keys()) out[k] = h.get(k);
  return Object.keys(out).length ? out : undefined;
}

/**
 * A `Nats-Msg-Id` for a publish: the caller's if given; for a transition notice (`{ id, seq }`) one
 * derived from the subject and the actor's version, so the same transition published twice (a retry,
 * a redelivery after a takeover) is stored once by a JetStream stream capturing the subject;
 * otherwise a fresh unique id.
 */
export function msgIdFor(subject: string, data: unknown): string {
  if (data && typeof data === 'object') {
    const d = data as { id?: unknown; seq?: unknown };
    if (typeof d.id === 'string' && typeof d.seq === 'number') return `${subject}@${d.seq}`;
  }
  return nuid.next();
}

/** Maps errors of the NATS client to the transport's typed errors. */
export function transportError(err: unknown, subject: string, timeoutMs?: number): HandoffError {
  if (err instanceof HandoffError) return err;
  const e = err as { name?: string; message?: string; cause?: { name?: string }; isNoResponders?: () => boolean };
  const names = [e?.name, e?.cause?.name];
  if (err instanceof WireNoRespondersError || names.includes('NoRespondersError') || e?.isNoResponders?.())
    return new HandoffError('transport.no_responders', `no responder for ${subject}`, { subject });
  if (err instanceof WireTimeoutError || names.includes('TimeoutError'))
    return new HandoffError(
      'transport.timeout',
      `request to ${subject} timed out${timeoutMs ? ` after ${timeoutMs} ms` : ''}`,
      { subject },
    );
  if (
    err instanceof WireClosedError ||
    names.includes('ClosedConnectionError') ||
    names.includes('DrainingConnectionError')
  )
    return new HandoffError('transport.closed', 'the NATS connection is closed', { subject });
  return new HandoffError('transport.error', `${subject}: ${e?.message ?? String(err)}`, { subject }, { cause: err });
}

/**
 * The transport over NATS. Subjects are the same as the memory transport's; payloads are JSON.
 *
 * - `request` / `serve`: request/reply. `serve` subscribes in a queue group, so with several nodes
 *   serving a subject exactly one answers; the reply is `{ ok, data }` or `{ ok: false, error }` with
 *   the error's stable `code` (rebuilt with `fromWireError` on the caller's side).
 * - `publish`: every message carries a `Nats-Msg-Id` (see {@link msgIdFor}), so a JetStream stream
 *   that captures the subject (the events stream) stores a retried publish once. Headers travel
 *   as given, the W3C `traceparent` included.
 * - Reconnects: the client reconnects for ever (a restarted server, a network blip); subscriptions
 *   are re-established by the client; publishes made while disconnected are buffered and sent on
 *   reconnect; requests in flight fail with `transport.timeout` and may be retried (commands carry
 *   a `commandId`, so a retry of a command that was applied is refused as `command.replayed`).
 */
export class NatsTransport implements Transport {
  readonly nc: NatsConnection;
  #opts: Required<Pick<NatsTransportOptions, 'queue' | 'requestTimeoutMs'>>;
  #owns: boolean;
  #closed = false;
  #connected = true;
  #statusListeners = new Set<(s: Status) => void>();
  /** Work to run right after the next reply is sent (see {@link afterReply}). */
  #afterReply: (() => void)[] = [];
  #afterReplyScheduled = false;
  /** Requests' replies (created on the first request). */
  #wire: JsWire | undefined;
  /** Counters for tests and the node's status line. */
  readonly stats = { disconnects: 0, reconnects: 0, published: 0, requests: 0, served: 0 };

  constructor(nc: NatsConnection, opts: NatsTransportOptions & { ownsConnection?: boolean } = {}) {
    this.nc = nc;
    this.#owns = opts.ownsConnection ?? false;
    this.#opts = { queue: opts.queue ?? 'handoff', requestTimeoutMs: opts.requestTimeoutMs ?? 10_000 };
    void this.#watchStatus();
  }

  /**
   * Connects to `servers` (e.g. `nats://127.0.0.1:4222`) and, once connected, never gives up
   * reconnecting. A server that is not up yet is waited for, up to `connectTimeoutMs`
   * (`transport.unreachable` naming the servers after that); refused credentials
   * (`transport.auth_failed`) and TLS failures (`transport.tls_failed`) are thrown at once, since
   * retrying cannot fix them.
   */
  static async connect(servers: string | string[], opts: NatsTransportOptions = {}): Promise<NatsTransport> {
    const limitMs = opts.connectTimeoutMs ?? Number(process.env.HANDOFF_NATS_CONNECT_TIMEOUT_MS ?? 60_000);
    const until = performance.now() + limitMs;
    const security = natsConnectOptions(opts.security);
    const label = (Array.isArray(servers) ? servers : [servers]).map(redactServerUrl).join(',');
    const wait = opts.reconnectWaitMs ?? 250;
    const base = { servers, ...(opts.name ? { name: opts.name } : {}), ...security, waitOnFirstConnect: false };
    // nats.js's waitOnFirstConnect would also retry refused credentials and TLS failures for ever, and
    // a reconnecting client turns a TLS alert sent after the handshake (a client certificate the
    // server refuses) into a 20 s timeout. So each attempt is a probe without reconnects, which fails
    // fast with the real cause, then the connection; only failures worth retrying are retried.
    for (;;) {
      try {
        const probe = await connect({ ...base, reconnect: false });
        await probe.close();
        const nc = await connect({
          ...base,
          maxReconnectAttempts: -1,
          reconnectTimeWait: wait,
          reconnectJitter: 50,
          reconnectJitterTLS: 50,
          pingInterval: opts.pingIntervalMs ?? 2000,
          maxPingOut: 3,
          // nats.js otherwise builds two Error objects (stack traces) per request and publish, in case it
          // times out: 15 % of a cluster node's CPU in a profile of the cluster benchmark. Timeouts keep
          // their message and code; only the caller's async stack is left out.
          noAsyncTraces: true,
        });
        return new NatsTransport(nc, { ...opts, ownsConnection: true });
      } catch (err) {
        const fatal = natsConnectError(err, label);
        if (fatal) throw fatal;
        if ((err as { name?: string }).name === 'InvalidArgumentError' || err instanceof TypeError)
          throw transportError(err, label);
        if (performance.now() > until)
          throw new HandoffError(
            'transport.unreachable',
            `no NATS server answered at ${label} within ${limitMs < 10_000 ? (limitMs / 1000).toFixed(1) : Math.round(limitMs / 1000)} s (is nats-server running there? HANDOFF_NATS_CONNECT_TIMEOUT_MS sets the wait)`,
            { servers: label, waitedMs: limitMs },
          );
        await new Promise((r) => setTimeout(r, wait));
      }
    }
  }

  /** Whether the client is connected now (false between a disconnect and the reconnect). */
  get connected(): boolean {
    return this.#connected && !this.nc.isClosed();
  }

  /** Listens to the client's status events (disconnect, reconnect, ...). Returns an unsubscribe. */
  onStatus(listener: (s: Status) => void): () => void {
    this.#statusListeners.add(listener);
    return () => this.#statusListeners.delete(listener);
  }

  async #watchStatus(): Promise<void> {
    try {
      for await (const s of this.nc.status()) {
        if (s.type === 'disconnect') {
          this.#connected = false;
          this.stats.disconnects++;
        } else if (s.type === 'reconnect') {
          this.#connected = true;
          this.stats.reconnects++;
        }
        for (const l of this.#statusListeners) {
          try {
            l(s);
          } catch {
            // a listener's failure is its own
          }
        }
      }
    } catch {
      // the status iterator ends when the connection closes
    }
  }

  #headersFor: ((subject: string, data: unknown) => Record<string, string> | undefined) | undefined;

  /**
   * Adds headers to every publish that lacks them, computed from the subject and payload (a cluster
   * node puts the episode's `traceparent` on each transition notice this way).
   */
  setHeadersFor(fn: ((subject: string, data: unknown) => Record<string, string> | undefined) | undefined): void {
    this.#headersFor = fn;
  }

  publish(subject: string, data: unknown, headers?: Record<string, string>): void {
    if (this.#closed) return;
    const h = { ...this.#headersFor?.(subject, data), ...headers };
    if (!h['Nats-Msg-Id']) h['Nats-Msg-Id'] = msgIdFor(subject, data);
    this.stats.published++;
    try {
      this.nc.publish(subject, encodeJson(data), { headers: toNatsHeaders(h)! });
    } catch {
      // closed or draining: a notice is best effort (the store holds the truth)
    }
  }

  subscribe(subject: string, handler: (msg: Msg) => void, opts: { queue?: string } = {}): Subscription {
    const sub: NatsSubscription = this.nc.subscribe(subject, {
      ...(opts.queue ? { queue: opts.queue } : {}),
      callback: (err, m) => {
        if (err) return;
        let data: unknown;
        try {
          data = decodeJson(m.data);
        } catch {
          return; // not ours: not JSON
        }
        const headers = fromNatsHeaders(m.headers);
        handler({ subject: m.subject, data, ...(headers ? { headers } : {}) });
      },
    });
    return { unsubscribe: () => sub.unsubscribe() };
  }

  serve(
    subject: string,
    handler: (msg: Msg) => Promise<unknown> | unknown,
    opts: { queue?: string } = {},
  ): Subscription {
    const sub = this.nc.subscribe(subject, {
      queue: opts.queue ?? this.#opts.queue,
      callback: (err, m) => {
        if (err || !m.reply) return;
        void this.#answer(m, handler);
      },
    });
    return { unsubscribe: () => sub.unsubscribe() };
  }

  async #answer(m: NatsMsg, handler: (msg: Msg) => Promise<unknown> | unknown): Promise<void> {
    this.stats.served++;
    let reply: Reply;
    try {
      const headers = fromNatsHeaders(m.headers);
      let data: unknown;
      try {
        data = decodeJson(m.data);
      } catch (err) {
        // A wrong-shaped request is the caller's error, typed, never an untyped `internal`.
        throw new ContractError('request', [
          { path: '', message: `the request is not JSON: ${err instanceof Error ? err.message : String(err)}` },
        ]);
      }
      reply = { ok: true, data: await handler({ subject: m.subject, data, ...(headers ? { headers } : {}) }) };
    } catch (err) {
      reply = { ok: false, error: toWireError(err) };
    }
    try {
      m.respond(encodeJson(reply));
    } catch {
      // the connection closed meanwhile: the requester times out and may retry
    }
    this.#runAfterReply();
  }

  /**
   * Runs `fn` right after the next reply this transport sends, in the same synchronous stretch, so
   * what `fn` publishes joins the reply's socket write (the client flushes once per turn of the
   * microtask queue) instead of costing a write of its own; the runtime's transition notices go out
   * this way after the reply to the command that caused them. With no request being answered, or if
   * no reply is sent before the next check phase of the event loop, `fn` runs then (`setImmediate`).
   */
  afterReply(fn: () => void): void {
    this.#afterReply.push(fn);
    if (this.#afterReplyScheduled) return;
    this.#afterReplyScheduled = true;
    setImmediate(() => {
      this.#afterReplyScheduled = false;
      this.#runAfterReply();
    });
  }

  #runAfterReply(): void {
    if (this.#afterReply.length === 0) return;
    const work = this.#afterReply;
    this.#afterReply = [];
    for (const fn of work) {
      try {
        fn();
      } catch {
        // each caller handles its own failures; one must not keep the others from running
      }
    }
  }

  async request(
    subject: string,
    data: unknown,
    opts: { timeoutMs?: number; headers?: Record<string, string> } = {},
  ): Promise<unknown> {
    if (this.#closed) throw new HandoffError('transport.closed', 'the transport is closed');
    const timeout = opts.timeoutMs ?? this.#opts.requestTimeoutMs;
    this.stats.requests++;
    let m: NatsMsg;
    try {
      // One reply subscription and one deadline sweep for every request (js-wire.ts): the client's
      // request() builds a timer, two promises and an Error it throws away on every success.
      this.#wire ??= new JsWire(this.nc);
      m = await this.#wire.request(subject, encodeJson(data), {
        timeoutMs: timeout,
        ...(opts.headers ? { headers: opts.headers } : {}),
      });
    } catch (err) {
      throw transportError(err, subject, timeout);
    }
    const reply = decodeJson(m.data) as Reply | undefined;
    if (!reply || typeof reply !== 'object' || !('ok' in reply))
      throw new HandoffError('transport.bad_reply', `${subject}: the reply is not a Handoff reply`, { subject });
    if (!reply.ok) throw fromWireError(reply.error);
    return reply.data;
  }

  /** Waits until everything published so far has reached the server. */
  async flush(): Promise<void> {
    if (!this.nc.isClosed()) await this.nc.flush();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#owns && !this.nc.isClosed()) await this.nc.drain().catch(() => this.nc.close());
    // On a connection the caller owns, the reply subscription ends here.
    this.#wire?.close();
  }
}
