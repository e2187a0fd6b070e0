import type { MsgHdrs } from '@nats-io/transport-node';
import { nanos, nuid } from '@nats-io/transport-node';
import type { ConsumerConfig, JetStreamClient, JetStreamManager, PubAck } from '@nats-io/jetstream';
import type { Logger } from 'pino';
import type { Keyring } from '../security/keyring.ts';
import { openPayload } from './keys-jetstream.ts';
import type { JsWire, WirePublishOptions } from './js-wire.ts';
import { seal } from '../security/seal.ts';
import { StoreWriteError } from '../runtime/level-store.ts';
import { encode, isCasConflict, isTransient, sleep, type StreamNames } from './store-format.ts';

export interface StreamIOOptions {
  writeTimeoutMs: number;
  publishTimeoutMs: number;
  directReads: boolean;
}

export interface LastMessage {
  seq: number;
  data: Uint8Array;
  header: MsgHdrs;
}

export interface ScannedMessage {
  subject: string;
  seq: number;
  data: Uint8Array;
  headers: MsgHdrs | undefined;
}

/**
 * The JetStream store's low-level reads and writes: retries while the server is unreachable, the last
 * message of a subject (direct get where safe), scans through short-lived consumers, and plain puts.
 * Payloads are sealed ({@link publish}) and opened with the data keys here.
 */
export class StreamIO {
  readonly js: JetStreamClient;
  readonly jsm: JetStreamManager;
  readonly streams: StreamNames;
  readonly opts: StreamIOOptions;
  /** The hot requests (publishes, direct gets) without the client's per-request machinery. */
  readonly wire: JsWire;
  #keyring: Keyring | undefined;
  #log: Logger | undefined;
  #stats: { retries: number };
  #closed: () => boolean;

  constructor(init: {
    js: JetStreamClient;
    jsm: JetStreamManager;
    wire: JsWire;
    streams: StreamNames;
    opts: StreamIOOptions;
    keyring: Keyring | undefined;
    log: Logger | undefined;
    stats: { retries: number };
    closed: () => boolean;
  }) {
    this.js = init.js;
    this.jsm = init.jsm;
    this.wire = init.wire;
    this.streams = init.streams;
    this.opts = init.opts;
    this.#keyring = init.keyring;
    this.#log = init.log;
    this.#stats = init.stats;
    this.#closed = init.closed;
  }

  /** Opens a payload read from a stream (data keys), or returns it as is. */
  open(data: Uint8Array, subject: string): Uint8Array {
    return openPayload(this.#keyring, data, subject);
  }

  async retrying<T>(what: string, fn: () => Promise<T>, budgetMs = this.opts.writeTimeoutMs): Promise<T> {
    const deadline = Date.now() + budgetMs;
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn();
      } catch (err) {
        if (isCasConflict(err) || !isTransient(err) || Date.now() > deadline || this.#closed()) throw err;
        this.#stats.retries++;
        this.#log?.debug({ err, attempt, what }, 'jetstream store: retrying');
        await sleep(Math.min(1000, 25 * 2 ** Math.min(attempt, 6)));
      }
    }
  }

  /**
   * Publishes to a stream (sealed with the data keys when there are some): JetStream's
   * acknowledgement, or its error (`JetStreamApiError`; a compare-and-set conflict is code 10071).
   */
  publish(subject: string, data: Uint8Array, opts: WirePublishOptions): Promise<PubAck> {
    return this.wire.publish(subject, this.#keyring ? seal(this.#keyring, data, subject) : data, opts);
  }

  async getLast(stream: string, subject: string): Promise<LastMessage | null> {
    const direct = this.opts.directReads && stream !== this.streams.aud;
    const m = await this.retrying(`get ${subject}`, () =>
      direct
        ? this.wire.lastBySubject(stream, subject, this.opts.publishTimeoutMs)
        : this.jsm.streams.getMessage(stream, { last_by_subj: subject }),
    );
    return m ? { seq: m.seq, data: this.open(m.data, subject), header: m.header } : null;
  }

  /**
   * Reads every message of `stream` matching `filter` through a short-lived consumer (headers only
   * on request), in stream order.
   */
  async *scan(
    stream: string,
    filter: string,
    opts: { headersOnly?: boolean; startSeq?: number } = {},
  ): AsyncIterable<ScannedMessage> {
    const cfg: Partial<ConsumerConfig> = {
      ack_policy: 'none' as ConsumerConfig['ack_policy'],
      filter_subject: filter,
      deliver_policy: (opts.startSeq ? 'by_start_sequence' : 'all') as ConsumerConfig['deliver_policy'],
      ...(opts.startSeq ? { opt_start_seq: opts.startSeq } : {}),
      ...(opts.headersOnly ? { headers_only: true } : {}),
      mem_storage: true,
      inactive_threshold: nanos(60_000),
    };
    const ci = await this.retrying(`scan ${filter}`, () => this.jsm.consumers.add(stream, cfg));
    let remaining = ci.num_pending;
    try {
      const consumer = this.js.consumers.getConsumerFromInfo(ci);
      while (remaining > 0) {
        const batch = await consumer.fetch({ max_messages: Math.min(remaining, 2000), expires: 2000 });
        let got = 0;
        for await (const m of batch) {
          got++;
          remaining = m.info.pending;
          yield { subject: m.subject, seq: m.seq, data: this.open(m.data, m.subject), headers: m.headers };
          if (remaining === 0) break;
        }
        // Messages counted at the start may be gone (an actor's record replaced meanwhile): done.
        if (got === 0) break;
      }
    } finally {
      void this.jsm.consumers.delete(stream, ci.name).catch(() => undefined);
    }
  }

  /** Writes a value (no compare-and-set), retried with one msg id while the server is unreachable. */
  async put(subject: string, value: unknown, what: string): Promise<void> {
    if (this.#closed()) throw new StoreWriteError('store is closed');
    const msgID = `${what}:${nuid.next()}`;
    try {
      await this.retrying(what, () =>
        this.publish(subject, encode(value), { msgID, timeout: this.opts.publishTimeoutMs }),
      );
    } catch (err) {
      throw new StoreWriteError(`${what} not written: ${err instanceof Error ? err.message : String(err)}`, {
        cause: err,
      });
    }
  }
}
