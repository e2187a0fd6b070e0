import { JetStreamApiError, type PubAck } from '@nats-io/jetstream';
import { nuid, type Msg, type MsgHdrs, type NatsConnection, type Subscription } from '@nats-io/transport-node';

/** A JetStream request got no reply in time (transient: retried with the same msg id). */
export class WireTimeoutError extends Error {
  constructor(subject: string, ms: number) {
    super(`no reply to a request on ${subject} within ${ms} ms`);
    this.name = 'WireTimeoutError';
  }
}

/** Nobody serves the subject (no stream yet, or a server still starting): transient. */
export class WireNoRespondersError extends Error {
  constructor(subject: string) {
    super(`no responders on ${subject}`);
    this.name = 'WireNoRespondersError';
  }
}

/** A request could not complete: the connection closed. */
export class WireClosedError extends Error {
  constructor() {
    super('the NATS connection is closed');
    this.name = 'WireClosedError';
  }
}

export interface WirePublishOptions {
  msgID?: string;
  expect?: { lastSubjectSequence?: number };
  /** Further headers (name: value); values must not hold CR or LF. */
  headers?: Record<string, string>;
  timeout?: number;
}

/** The last message on a subject, as a direct get returns it. */
export interface WireMessage {
  seq: number;
  data: Uint8Array;
  header: MsgHdrs;
}

interface Pending {
  subject: string;
  deadline: number;
  ms: number;
  reply: (m: Msg) => void;
  fail: (err: Error) => void;
}

const dec = new TextDecoder();
const UNSAFE = /[\r\n]/;
/** A header name: an HTTP token (RFC 9110), as the client's header object requires. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/**
 * A publish's headers as NATS sends them (`NATS/1.0`, a `Name: value` line each, a blank line),
 * built as one string: the client's header object (a map of arrays, each name and value checked and
 * re-joined on every publish) costs more than the message it heads. Handed to the client as an
 * object whose `encode()` returns these bytes, which is all the client's publish asks of headers.
 */
export function headerBlock(opts: WirePublishOptions): MsgHdrs | undefined {
  let s = '';
  if (opts.headers) for (const name in opts.headers) s += headerLine(name, opts.headers[name]!);
  if (opts.msgID !== undefined) s += headerLine('Nats-Msg-Id', opts.msgID);
  // A number: nothing to check.
  if (opts.expect?.lastSubjectSequence !== undefined)
    s += `Nats-Expected-Last-Subject-Sequence: ${opts.expect.lastSubjectSequence}\r\n`;
  if (s === '') return undefined;
  return new RawHeaders(Buffer.from(`NATS/1.0\r\n${s}\r\n`, 'utf8')) as unknown as MsgHdrs;
}

function headerLine(name: string, value: string): string {
  if (!TOKEN.test(name))
    throw new TypeError(`header name '${name}' is not a token (letters, digits, !#$%&'*+-.^_\`|~)`);
  if (UNSAFE.test(value)) throw new TypeError(`header ${name}: values cannot contain CR or LF`);
  return `${name}: ${value}\r\n`;
}

/** Pre-encoded headers: all the client's publish asks of a header object is `encode()`. */
class RawHeaders {
  readonly #bytes: Uint8Array;
  constructor(bytes: Uint8Array) {
    this.#bytes = bytes;
  }
  encode(): Uint8Array {
    return this.#bytes;
  }
}

const EMPTY = new Uint8Array(0);
/** How often expired requests are looked for. */
const SWEEP_MS = 100;

/**
 * JetStream's two hot requests, publishes (with a msg id and compare-and-set) and direct gets, and
 * the transport's plain requests (`NatsTransport.request`: reviewer commands and forwards), on
 * one connection without the client's per-request machinery: one wildcard inbox subscription for
 * every reply, a map of the requests in flight, and one timer for all their deadlines (the client's
 * `request` allocates a subscription entry, two deferreds, a timer and, on every success, an error
 * object it throws away: about half of a publish's CPU on the client side). What goes on the wire is
 * the same (the same headers, the same subjects); acknowledgements and errors are parsed as the
 * client does (`JetStreamApiError` with the server's error code, so compare-and-set conflicts are
 * recognised as before). A request whose reply is lost (a reconnect) times out and is retried by
 * the caller under the same msg id, as with the client.
 */
export class JsWire {
  readonly #nc: NatsConnection;
  readonly #prefix: string;
  readonly #pending = new Map<string, Pending>();
  #next = 0;
  #sweeper: NodeJS.Timeout;
  #sub: Subscription;
  #closed = false;

  constructor(nc: NatsConnection) {
    this.#nc = nc;
    // The connection's inbox prefix (`_INBOX` unless configured), as its own requests use: account
    // permissions that allow replies name it.
    const inbox = (nc as { options?: { inboxPrefix?: string } }).options?.inboxPrefix || '_INBOX';
    this.#prefix = `${inbox}.${nuid.next()}.`;
    const sub = nc.subscribe(`${this.#prefix}*`, { callback: (_err, m) => this.#onReply(m) });
    this.#sub = sub;
    void sub.closed.then(() => this.close());
    this.#sweeper = setInterval(() => this.#sweep(), SWEEP_MS);
    this.#sweeper.unref?.();
  }

  /** Publishes to a stream; resolves with JetStream's acknowledgement (rejects with its error). */
  async publish(subject: string, data: Uint8Array, opts: WirePublishOptions = {}): Promise<PubAck> {
    const m = await this.#request(subject, data, headerBlock(opts), opts.timeout ?? 5000);
    const v = JSON.parse(dec.decode(m.data)) as PubAck & {
      error?: { code: number; err_code: number; description: string };
    };
    if (v.error) throw new JetStreamApiError(v.error);
    if (!v.stream) throw new Error(`invalid JetStream acknowledgement on ${subject}`);
    v.duplicate = v.duplicate ?? false;
    return v;
  }

  /** The last message of `subject` in `stream` by direct get; null if there is none. */
  async lastBySubject(stream: string, subject: string, timeoutMs = 5000): Promise<WireMessage | null> {
    const api = `$JS.API.DIRECT.GET.${stream}.${subject}`;
    const m = await this.#request(api, EMPTY, undefined, timeoutMs);
    const h = m.headers;
    if (!h) throw new Error(`direct get on ${stream}: a reply without headers`);
    if (h.code !== 0) {
      if (h.code === 404) return null;
      throw new Error(`direct get on ${stream} failed: ${h.code} ${h.description}`);
    }
    return { seq: Number(h.last('Nats-Sequence')), data: m.data, header: h };
  }

  /**
   * A plain request/reply on the same machinery (the transport's requests: reviewer commands,
   * forwarded commands): resolves with the reply message; rejects with {@link WireTimeoutError},
   * {@link WireNoRespondersError} or {@link WireClosedError}. Deadlines are checked every 100 ms.
   */
  request(
    subject: string,
    data: Uint8Array,
    opts: { headers?: Record<string, string>; timeoutMs?: number } = {},
  ): Promise<Msg> {
    let h: MsgHdrs | undefined;
    try {
      h = opts.headers ? headerBlock({ headers: opts.headers }) : undefined;
    } catch (err) {
      return Promise.reject(err as Error);
    }
    return this.#request(subject, data, h, opts.timeoutMs ?? 5000);
  }

  #request(subject: string, data: Uint8Array, h: MsgHdrs | undefined, ms: number): Promise<Msg> {
    if (this.#closed || this.#nc.isClosed()) return Promise.reject(new WireClosedError());
    const token = (this.#next++).toString(36);
    return new Promise<Msg>((reply, fail) => {
      this.#pending.set(token, { subject, deadline: performance.now() + ms, ms, reply, fail });
      try {
        this.#nc.publish(subject, data, { reply: this.#prefix + token, ...(h ? { headers: h } : {}) });
      } catch (err) {
        this.#pending.delete(token);
        fail(err as Error);
      }
    });
  }

  #onReply(m: Msg): void {
    const token = m.subject.slice(this.#prefix.length);
    const p = this.#pending.get(token);
    if (!p) return; // timed out already
    this.#pending.delete(token);
    if (m.data.length === 0 && m.headers?.code === 503) p.fail(new WireNoRespondersError(p.subject));
    else p.reply(m);
  }

  #sweep(): void {
    const now = performance.now();
    for (const [token, p] of this.#pending) {
      if (p.deadline > now) continue;
      this.#pending.delete(token);
      p.fail(new WireTimeoutError(p.subject, p.ms));
    }
  }

  /** Fails what is in flight; later requests are refused; the reply subscription ends. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#sweeper);
    if (!this.#sub.isClosed() && !this.#nc.isClosed()) this.#sub.unsubscribe();
    for (const p of this.#pending.values()) p.fail(new WireClosedError());
    this.#pending.clear();
  }
}
