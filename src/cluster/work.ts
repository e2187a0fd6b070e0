import type { ConsumerConfig, JetStreamClient, JetStreamManager, JsMsg, StreamConfig } from '@nats-io/jetstream';
import { nanos } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { HandoffError } from '../contracts/errors.ts';
import { isNotMine } from '../contracts/cluster-errors.ts';
import type { DeadLetter } from '../runtime/store.ts';
import type { Keyring } from '../security/keyring.ts';
import { openPayload } from './keys-jetstream.ts';
import { StartRequestContract, notJson, parseClusterMessage } from './contracts.ts';
import { streamToken } from './keys.ts';

/** A request to start an episode, as submitted to the work stream (`ho.<ns>.work.start`). */
export interface StartRequest {
  /** {@link SCHEMA_VERSION}; absent in older drivers' requests. */
  schemaVersion?: 1;
  episodeId: string;
  model: string;
  signal: unknown;
  traceparent?: string;
}

/** A start for a model no node has is refused (dead letter) after this many deliveries. */
const MAX_UNKNOWN_MODEL_DELIVERIES = 20;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export function workStream(namespace: string): string {
  return `HO_${streamToken(namespace)}_WORK`;
}
export function workSubject(namespace: string): string {
  return `ho.${namespace}.work.start`;
}

/** Creates the work stream and its shared pull consumer (idempotent). */
export async function ensureWorkStream(jsm: JetStreamManager, namespace: string, replicas = 1): Promise<void> {
  const name = workStream(namespace);
  try {
    await jsm.streams.info(name);
  } catch {
    await jsm.streams
      .add({
        name,
        subjects: [`ho.${namespace}.work.>`],
        retention: 'workqueue' as StreamConfig['retention'],
        storage: 'file' as StreamConfig['storage'],
        num_replicas: replicas,
        duplicate_window: nanos(120_000),
      })
      .catch(async (err: unknown) => {
        await jsm.streams.info(name).catch(() => {
          throw err;
        });
      });
  }
  try {
    await jsm.consumers.info(name, 'nodes');
  } catch {
    await jsm.consumers
      .add(name, {
        durable_name: 'nodes',
        ack_policy: 'explicit' as ConsumerConfig['ack_policy'],
        ack_wait: nanos(10_000),
        max_ack_pending: 50_000,
        deliver_policy: 'all' as ConsumerConfig['deliver_policy'],
      })
      .catch(async (err: unknown) => {
        await jsm.consumers.info(name, 'nodes').catch(() => {
          throw err;
        });
      });
  }
}

/** What the work puller needs from its node. */
export interface WorkHost {
  readonly log: Logger;
  readonly keyring: Keyring | undefined;
  readonly stats: { poison: number };
  stopped(): boolean;
  /** How many starts the node takes now (0: none). */
  capacity(): number;
  hasModel(model: string): boolean;
  /** Starts the episode (here, or forwarded to the node that holds it); resolves once durable. */
  start(req: StartRequest): Promise<void>;
  putDeadLetter(letter: DeadLetter): Promise<void>;
}

/**
 * Pulls new episodes from the work stream's shared consumer within the node's capacity. A message
 * is acknowledged once its episode's start is durable; one that can never be handled is refused as
 * terminal and kept in the dead letters; anything else comes back (here or elsewhere).
 */
export class WorkPuller {
  #js: JetStreamClient;
  #namespace: string;
  #host: WorkHost;
  /** Starts handled but not settled yet. */
  inFlight = 0;

  constructor(js: JetStreamClient, namespace: string, host: WorkHost) {
    this.#js = js;
    this.#namespace = namespace;
    this.#host = host;
  }

  async run(): Promise<void> {
    const host = this.#host;
    const stream = workStream(this.#namespace);
    let consumer: Awaited<ReturnType<JetStreamClient['consumers']['get']>> | undefined;
    while (!host.stopped()) {
      const free = host.capacity();
      if (free <= 0) {
        await sleep(20);
        continue;
      }
      try {
        consumer ??= await this.#js.consumers.get(stream, 'nodes');
        const batch = await consumer.fetch({ max_messages: free, expires: 1000 });
        for await (const m of batch) {
          this.inFlight++;
          void this.#handleStart(m).finally(() => this.inFlight--);
        }
      } catch (err) {
        if (host.stopped()) break;
        host.log.debug({ err }, 'work pull failed; retrying');
        await sleep(250);
      }
    }
  }

  async #handleStart(m: JsMsg): Promise<void> {
    const host = this.#host;
    // Nothing in here may throw: a message that cannot be handled is refused (terminal, dead letter)
    // or left for another node, never allowed to take this node down.
    let req: StartRequest;
    try {
      // Sealed by a driver with data keys (its signal is case data), or plain JSON.
      let body: unknown;
      try {
        body = JSON.parse(Buffer.from(openPayload(host.keyring, m.data, m.subject)).toString('utf8'));
      } catch (err) {
        if (err instanceof HandoffError && err.code.startsWith('keys.')) throw err;
        throw notJson('StartRequest', err);
      }
      req = parseClusterMessage(StartRequestContract, body, 'StartRequest') as StartRequest;
    } catch (err) {
      if (err instanceof HandoffError && err.code.startsWith('keys.')) {
        // This node lacks the data key: leave the request to a node that has it, never drop it.
        host.log.error({ err }, 'episode start request cannot be opened here');
        m.nak(5000);
        return;
      }
      await this.#poison(m, err);
      return;
    }
    try {
      if (!host.hasModel(req.model)) {
        // Another node may have the model; past a bound of deliveries it is refused for good.
        if ((m.info?.deliveryCount ?? 1) >= MAX_UNKNOWN_MODEL_DELIVERIES) {
          const why = `no node took a start for model '${req.model}' after ${MAX_UNKNOWN_MODEL_DELIVERIES} deliveries`;
          await this.#poison(m, new HandoffError('model.unknown', why, { model: req.model }), req.episodeId);
          return;
        }
        m.nak(2000);
        return;
      }
      await host.start(req);
      m.ack();
    } catch (err) {
      if (err instanceof HandoffError && err.code === 'contract.invalid') {
        await this.#poison(m, err, req.episodeId);
        return;
      }
      // A lost write, a lost lease, a takeover in progress: the message comes back (here or elsewhere).
      host.log.debug({ err, episode: req.episodeId }, 'episode start failed; it will be redelivered');
      try {
        m.nak(isNotMine(err) || (err instanceof HandoffError && err.code === 'cluster.unavailable') ? 100 : 500);
      } catch {
        // the connection is gone: the message is redelivered after the ack wait
      }
    }
  }

  /** A work message that can never be handled: acknowledged as terminal and kept in the dead letters with its cause. */
  async #poison(m: JsMsg, err: unknown, actorId = ''): Promise<void> {
    const host = this.#host;
    const code = err instanceof HandoffError ? err.code : 'internal';
    const reason = err instanceof Error ? err.message : String(err);
    host.stats.poison++;
    host.log.warn({ err, subject: m.subject, seq: m.seq }, 'invalid work message refused (dead letter)');
    try {
      m.term();
    } catch {
      // the connection is gone: redelivered, refused again
    }
    const text = Buffer.from(m.data).toString('utf8');
    const payload = text.length > 4096 ? `${text.slice(0, 4096)}…` : text;
    await host
      .putDeadLetter({
        id: `work-${m.seq}`,
        at: Date.now(),
        actorId,
        event: { type: 'handoff.work.start', subject: m.subject, seq: m.seq, payload },
        reason,
        code,
      })
      .catch((e: unknown) => host.log.warn({ err: e }, 'dead letter not written'));
  }
}
