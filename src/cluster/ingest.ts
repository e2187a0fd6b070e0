import type {
  ConsumerConfig,
  JetStreamClient,
  JetStreamManager,
  JsMsg,
  PubAck,
  StreamConfig,
} from '@nats-io/jetstream';
import { nanos } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { IdempotencyKey } from '../contracts/api-v1.ts';
import { parseTraceparent } from '../contracts/envelope.ts';
import { ContractError, HandoffError } from '../contracts/errors.ts';
import {
  episodeIdFor,
  signalRefusedSubject,
  signalSubject,
  signalsStreamName,
  type SignalRefusal,
} from '../contracts/ingest.ts';
import { parseContract, toIssues } from '../contracts/parse.ts';
import type { LoadedModel } from '../models/loader.ts';
import type { AuditDraft } from '../base/audit-log.ts';
import type { DeadLetter } from '../runtime/store.ts';
import type { Keyring } from '../security/keyring.ts';
import { seal } from '../security/seal.ts';
import { within } from '../base/within.ts';

/** The durable pull consumer all nodes share on each model's signals stream. */
const CONSUMER = 'ingest';
/** Nats-Msg-Id duplicate window of the signals streams (beyond it the derived episode id still dedupes). */
const DUPLICATE_WINDOW_MS = 120_000;
/** Signals a node handles at once. */
const CONCURRENCY = 32;

/** A start request on the work stream (the shape of node.ts's `StartRequest`). */
interface StartRequestBody {
  schemaVersion: 1;
  episodeId: string;
  model: string;
  signal: unknown;
  traceparent?: string;
}

/**
 * Publishes an episode start to the cluster's work stream with `Nats-Msg-Id` = `start:<ns>:<episode>`
 * (as the demo driver does), so a start sent again within the stream's window is stored once; later
 * ones find the episode existing. Resolves once JetStream has stored it (durable); `duplicate` says the
 * window already held it.
 */
export async function publishStart(
  js: JetStreamClient,
  opts: { namespace: string; workSubject: string; keyring?: Keyring | undefined },
  req: Omit<StartRequestBody, 'schemaVersion'>,
): Promise<PubAck> {
  const body = Buffer.from(JSON.stringify({ schemaVersion: 1, ...req } satisfies StartRequestBody));
  const payload = opts.keyring ? seal(opts.keyring, body, opts.workSubject) : body;
  return js.publish(opts.workSubject, payload, { msgID: `start:${opts.namespace}:${req.episodeId}` });
}

/** Creates a model's signals stream and its shared consumer (idempotent). */
export async function ensureSignalsStream(
  jsm: JetStreamManager,
  namespace: string,
  model: string,
  replicas = 1,
): Promise<string> {
  const name = signalsStreamName(namespace, model);
  const exists = async (fn: () => Promise<unknown>) =>
    fn().then(
      () => true,
      () => false,
    );
  if (!(await exists(() => jsm.streams.info(name)))) {
    await jsm.streams
      .add({
        name,
        subjects: [signalSubject(namespace, model)],
        retention: 'workqueue' as StreamConfig['retention'],
        storage: 'file' as StreamConfig['storage'],
        num_replicas: replicas,
        duplicate_window: nanos(DUPLICATE_WINDOW_MS),
      })
      .catch(async (err: unknown) => {
        if (!(await exists(() => jsm.streams.info(name)))) throw err;
      });
  }
  if (!(await exists(() => jsm.consumers.info(name, CONSUMER)))) {
    await jsm.consumers
      .add(name, {
        durable_name: CONSUMER,
        ack_policy: 'explicit' as ConsumerConfig['ack_policy'],
        ack_wait: nanos(10_000),
        max_ack_pending: 10_000,
        deliver_policy: 'all' as ConsumerConfig['deliver_policy'],
      })
      .catch(async (err: unknown) => {
        if (!(await exists(() => jsm.consumers.info(name, CONSUMER)))) throw err;
      });
  }
  return name;
}

export interface SignalIngestOptions {
  js: JetStreamClient;
  jsm: JetStreamManager;
  namespace: string;
  /** The cluster's work stream subject (node.ts `workSubject`). */
  workSubject: string;
  models: readonly LoadedModel[];
  /** Publishes refusals (core NATS). */
  publish(subject: string, data: Uint8Array): void;
  putDeadLetter(letter: DeadLetter): Promise<void>;
  audit(drafts: AuditDraft[]): Promise<void>;
  /** Whether the node takes work now (healthy, under its limits). */
  accepting(): boolean;
  now(): number;
  keyring?: Keyring | undefined;
  replicas?: number;
  log: Logger;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Signals over NATS (docs/api.md): every node pulls each of its models' signals streams
 * (`handoff.<ns>.signals.<model>`) through one shared consumer, checks the message against the model's
 * signal contract and hands the *parsed* signal (what the schema stripped is gone) to the work stream
 * as a start of the episode its `Nats-Msg-Id` names. A message is acknowledged only once that start is
 * stored, so a node killed in between leaves it to be redelivered; the derived episode id makes the
 * redelivery (or the same key on another node, or after the window) start nothing twice. A message that
 * can never start anything is terminated, kept as a dead letter and announced on
 * `handoff.<ns>.ingest.refused.<model>` with a typed error naming the field; nothing in here throws.
 */
export class SignalIngest {
  readonly stats = { accepted: 0, duplicates: 0, refused: 0, retried: 0 };
  readonly #o: SignalIngestOptions;
  #stopped = false;
  #loops: Promise<void>[] = [];
  #inFlight = 0;

  private constructor(o: SignalIngestOptions) {
    this.#o = o;
  }

  static async start(o: SignalIngestOptions): Promise<SignalIngest> {
    const ingest = new SignalIngest(o);
    for (const model of o.models) {
      const stream = await ensureSignalsStream(o.jsm, o.namespace, model.name, o.replicas ?? 1);
      ingest.#loops.push(ingest.#pull(stream, model));
    }
    return ingest;
  }

  async #pull(stream: string, model: LoadedModel): Promise<void> {
    let consumer: Awaited<ReturnType<JetStreamClient['consumers']['get']>> | undefined;
    while (!this.#stopped) {
      const free = this.#o.accepting() ? CONCURRENCY - this.#inFlight : 0;
      if (free <= 0) {
        await sleep(20);
        continue;
      }
      try {
        consumer ??= await this.#o.js.consumers.get(stream, CONSUMER);
        const batch = await consumer.fetch({ max_messages: free, expires: 1000 });
        for await (const m of batch) {
          this.#inFlight++;
          void this.#handle(m, model).finally(() => this.#inFlight--);
        }
      } catch (err) {
        if (this.#stopped) break;
        this.#o.log.debug({ err, stream }, 'signal pull failed; retrying');
        await sleep(250);
      }
    }
  }

  async #handle(m: JsMsg, model: LoadedModel): Promise<void> {
    const key = m.headers?.get('Nats-Msg-Id') || undefined;
    let start: Omit<StartRequestBody, 'schemaVersion'>;
    try {
      start = this.#check(m, model, key);
    } catch (err) {
      await this.#refuse(m, model, key, err);
      return;
    }
    try {
      const ack = await publishStart(this.#o.js, this.#o, start);
      if (ack.duplicate) this.stats.duplicates++;
      else this.stats.accepted++;
      await this.#o
        .audit([
          {
            at: this.#o.now(),
            kind: 'api.signal.accepted',
            actor: start.episodeId,
            by: 'nats',
            data: {
              model: model.name,
              idempotencyKey: key!.slice(0, 200),
              created: !ack.duplicate,
              via: 'nats',
              seq: m.seq,
            },
          },
        ])
        .catch((err: unknown) => this.#o.log.warn({ err }, 'audit of an accepted signal failed'));
      m.ack();
    } catch (err) {
      // The work stream did not store it (NATS down, a timeout): the signal comes back.
      this.stats.retried++;
      this.#o.log.debug({ err, episode: start.episodeId }, 'signal not handed to the work stream; redelivered');
      try {
        m.nak(500);
      } catch {
        // the connection is gone: redelivered after the ack wait
      }
    }
  }

  /** The start a message asks for; throws the typed error that refuses it. */
  #check(m: JsMsg, model: LoadedModel, key: string | undefined): Omit<StartRequestBody, 'schemaVersion'> {
    if (key === undefined)
      throw new HandoffError(
        'request.idempotency_key_required',
        'set the Nats-Msg-Id header: it is the idempotency key (the same key never starts two episodes)',
        { path: 'Nats-Msg-Id' },
      );
    const k = IdempotencyKey.safeParse(key);
    if (!k.success) throw new ContractError('Nats-Msg-Id', toIssues(k.error, 'Nats-Msg-Id'));
    let body: unknown;
    try {
      body = JSON.parse(Buffer.from(m.data).toString('utf8'));
    } catch (err) {
      throw new HandoffError(
        'request.malformed_json',
        `the message body is not JSON: ${err instanceof Error ? err.message : String(err)}`,
        { path: 'signal' },
      );
    }
    // The parsed signal is what runs: fields the schema strips never reach the episode.
    const signal = parseContract(model.handlers.signal, body, `${model.name}.signal`, 'signal');
    const tp = m.headers?.get('traceparent');
    return {
      episodeId: episodeIdFor(model.name, key),
      model: model.name,
      signal,
      ...(tp && parseTraceparent(tp) ? { traceparent: tp } : {}),
    };
  }

  async #refuse(m: JsMsg, model: LoadedModel, key: string | undefined, err: unknown): Promise<void> {
    this.stats.refused++;
    const code = err instanceof HandoffError ? err.code : 'internal';
    const message = err instanceof Error ? err.message : String(err);
    const details =
      err instanceof ContractError
        ? { path: err.path, issues: err.issues }
        : err instanceof HandoffError
          ? err.details
          : {};
    const validKey = key !== undefined && IdempotencyKey.safeParse(key).success;
    const refusal: SignalRefusal = {
      model: model.name,
      idempotencyKey: key?.slice(0, 200) ?? null,
      episodeId: validKey ? episodeIdFor(model.name, key) : null,
      seq: m.seq,
      error: { code, message, details },
    };
    this.#o.log.warn(
      { code, path: (details as { path?: unknown }).path, seq: m.seq, model: model.name },
      'signal refused (dead letter)',
    );
    try {
      m.term();
    } catch {
      // the connection is gone: redelivered, refused again
    }
    try {
      this.#o.publish(signalRefusedSubject(this.#o.namespace, model.name), Buffer.from(JSON.stringify(refusal)));
    } catch {
      // nobody to tell: the dead letter keeps it
    }
    const payload = Buffer.from(m.data).toString('utf8');
    await this.#o
      .putDeadLetter({
        id: `signal-${model.name}-${m.seq}`,
        at: this.#o.now(),
        actorId: refusal.episodeId ?? '',
        event: {
          type: 'handoff.signal',
          subject: m.subject,
          seq: m.seq,
          idempotencyKey: refusal.idempotencyKey,
          details,
          payload: payload.length > 4096 ? `${payload.slice(0, 4096)}…` : payload,
        },
        reason: message,
        code,
      })
      .catch((e: unknown) => this.#o.log.warn({ err: e }, 'dead letter not written'));
  }

  /** Stops pulling; what is in flight finishes (unacknowledged messages are redelivered to another node). */
  async stop(): Promise<void> {
    this.#stopped = true;
    await within(Promise.allSettled(this.#loops), 2000);
  }

  /** Stops at once (a crash in tests): nothing is acknowledged any more. */
  halt(): void {
    this.#stopped = true;
  }
}
