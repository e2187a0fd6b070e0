import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { HandoffError } from '../contracts/errors.ts';
import type { Plan } from '../contracts/plan.ts';
import type { CaseContext } from '../machines/review-case.ts';
import { loadModel } from '../models/loader.ts';
import { verifyAudit } from '../base/audit-log.ts';
import { JetStreamStore } from '../cluster/jetstream-store.ts';
import { Rng } from '../base/rng.ts';
import type { TransitionNotice } from '../runtime/runtime.ts';
import type { LevelWorld } from '../runtime/world.ts';
import { ReviewerPool } from '../sim/reviewers.ts';
import { summarize, type RunSummary } from '../sim/summary.ts';
import { NatsTransport } from '../cluster/nats-transport.ts';
import type { NatsSecurityOptions } from '../security/nats-auth.ts';
import type { Keyring } from '../security/keyring.ts';
import { seal } from '../security/seal.ts';
import { subjects, subjectToken, type Transport } from '../transport/transport.ts';
import { RETRYABLE_CODES } from '../contracts/cluster-errors.ts';
import { groupOf } from '../cluster/keys.ts';
import { nodeSubject } from '../cluster/commands.ts';
import { clusterClock } from '../cluster/placement.ts';
import { ensureWorkStream, workSubject, type StartRequest } from '../cluster/work.ts';
import { episodeTraceparent } from '../cluster/trace.ts';
import { JetStreamWorld } from '../cluster/world.ts';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Sends reviewer commands to a cluster and retries the retryable refusals (`node.overloaded`,
 * `cluster.unavailable` during a takeover, timeouts across a reconnect) with the same `commandId`;
 * a retry of a command that had been applied is answered `command.replayed`, which counts as done.
 * Each command carries the episode's `traceparent`.
 */
export class RetryingClient {
  #transport: Transport;
  #ns: string;
  #timeoutMs: number;
  #attempts: number;
  #owner: ((group: string) => string | undefined) | undefined;
  readonly stats = {
    commands: 0,
    direct: 0,
    retries: 0,
    replayedAfterRetry: 0,
    retriedCodes: {} as Record<string, number>,
  };
  /** Wall ms from request to durable acknowledgement of each accepted command (last attempt only). */
  readonly latencies: number[] = [];
  /**
   * `owner`: the member that holds a group's lease (a watch of the leases bucket, {@link Leases}).
   * With it a command goes straight to its case's node (`nodeSubject`), saving the forwarding hop;
   * when that node does not have the case (the lease moved), it goes to the public subject.
   */
  constructor(
    transport: Transport,
    opts: {
      namespace: string;
      timeoutMs?: number;
      attempts?: number;
      owner?: (group: string) => string | undefined;
    },
  ) {
    this.#transport = transport;
    this.#owner = opts.owner;
    this.#ns = opts.namespace;
    this.#timeoutMs = opts.timeoutMs ?? 10_000;
    this.#attempts = opts.attempts ?? 40;
  }
  async command(cmd: { caseId: string; [k: string]: unknown }): Promise<unknown> {
    this.stats.commands++;
    const subject = subjects(this.#ns).actor(subjectToken(cmd.caseId));
    for (let attempt = 1; ; attempt++) {
      const t0 = performance.now();
      try {
        const ack = await this.#send(subject, cmd);
        if (this.latencies.length < 200_000) this.latencies.push(performance.now() - t0);
        return ack;
      } catch (err) {
        const code = err instanceof HandoffError ? err.code : '';
        if (code === 'command.replayed' && attempt > 1) {
          this.stats.replayedAfterRetry++;
          return { replayed: true };
        }
        if (!RETRYABLE_CODES.has(code) || attempt >= this.#attempts) throw err;
        this.stats.retries++;
        this.stats.retriedCodes[code] = (this.stats.retriedCodes[code] ?? 0) + 1;
        const hinted = Number((err as HandoffError).details?.retryAfterMs);
        await sleep(
          Number.isFinite(hinted) && hinted > 0
            ? Math.min(hinted, 2000)
            : Math.min(2000, 50 * 2 ** Math.min(attempt, 5)),
        );
      }
    }
  }

  /** Sends to the owner's node when known; falls back to the public subject if it does not have the case. */
  async #send(subject: string, cmd: { caseId: string }): Promise<unknown> {
    const group = groupOf(cmd.caseId);
    const opts = { timeoutMs: this.#timeoutMs, headers: { traceparent: episodeTraceparent(this.#ns, group) } };
    const owner = this.#owner?.(group);
    if (owner) {
      try {
        const ack = await this.#transport.request(nodeSubject(this.#ns, owner), cmd, opts);
        this.stats.direct++;
        return ack;
      } catch (err) {
        const code = err instanceof HandoffError ? err.code : '';
        if (code !== 'actor.moved' && code !== 'transport.no_responders') throw err;
      }
    }
    return this.#transport.request(subject, cmd, opts);
  }
}

export interface ClusterDemoOptions {
  servers: string | string[];
  /** TLS and credentials for the driver's NATS connection (docs/security.md). */
  security?: NatsSecurityOptions;
  /** @default 'default' */
  namespace?: string;
  /** @default 'models/refunds' */
  model?: string;
  cases: number;
  /** @default 12 */
  reviewers?: number;
  /** @default 1 */
  seed?: number;
  /** Mean simulated time between arriving episodes. @default 90 s */
  arrivalMs?: number;
  /** Simulated ms per wall ms; must match the nodes' `--time-scale`. @default 3600 */
  timeScale?: number;
  /** Episodes submitted but not finished at most (the driver's own backpressure). @default 3000 */
  window?: number;
  /** Give up waiting after this long. @default 10 min */
  timeoutMs?: number;
  onProgress?: (p: { submitted: number; finished: number; total: number }) => void;
  /** Data keys of the cluster's store, to read its totals (docs/encryption.md). */
  keyring?: Keyring | undefined;
}

export interface ClusterDemoSummary extends RunSummary {
  model: string;
  namespace: string;
  seed: number;
  reviewers: number;
  /** Whole call, summary included. */
  wallMs: number;
  /** From the first submission to the last episode's end. */
  runMs: number;
  /** Episodes per second over `runMs`. */
  episodesPerSecond: number;
  auditChain: { ok: boolean; entries: number; reason?: string };
  /** Episodes with other than exactly one `episode.outcome` audit entry (each episode ends exactly once). */
  outcomeAuditMismatch: number;
  reviewerActivity: Record<string, number>;
  refusedCommands: Record<string, number>;
  client: RetryingClient['stats'];
  /** Reviewer commands, request to durable acknowledgement, during the run. */
  commandLatencyMs: { p50: number; p99: number; n: number };
}

function pct(values: number[], p: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return (
    Math.round(sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]! * 100) / 100
  );
}

/**
 * Drives a demo run against a running cluster: submits episodes to the work stream (with
 * `Nats-Msg-Id` = the episode, so a resubmission is stored once), simulated reviewers act through
 * reviewer commands over NATS, and waits until every episode has ended; then reads the totals from
 * the JetStream store (the same summary as the embedded demo, plus the audit chain check).
 */
export async function runClusterDemo(opts: ClusterDemoOptions): Promise<ClusterDemoSummary> {
  const wall0 = performance.now();
  const ns = opts.namespace ?? 'default';
  const seed = opts.seed ?? 1;
  const transport = await NatsTransport.connect(opts.servers, {
    name: 'handoff-demo-driver',
    ...(opts.security ? { security: opts.security } : {}),
  });
  const store = await JetStreamStore.open({
    nc: transport.nc,
    namespace: ns,
    guard: { mayWrite: () => false, fencingToken: () => undefined },
    trackAll: false,
    auditSequencer: false,
    keyring: opts.keyring,
  });
  try {
    const world = new JetStreamWorld(store);
    const clock = await clusterClock(store, opts.timeScale ?? 3600);
    const model = await loadModel(opts.model ?? 'models/refunds');
    const jsm = await jetstreamManager(transport.nc);
    const js = jetstream(transport.nc);
    await ensureWorkStream(jsm, ns);

    const finished = new Set<string>();
    const started = new Set<string>();
    const sub = transport.subscribe(`handoff.${ns}.events.agent.*`, (m) => {
      const n = m.data as TransitionNotice;
      if (n.status !== 'active') finished.add(n.id);
    });
    const client = new RetryingClient(transport, { namespace: ns });
    const pool = new ReviewerPool({
      runtime: client as never,
      transport,
      namespace: ns,
      model,
      clock,
      rng: new Rng(seed * 7919 + 1),
      count: opts.reviewers ?? 12,
      run: Date.now() % 100_000,
    });
    pool.readPlansWith(
      async (id) =>
        ((await store.load(id))?.snapshot as { context?: CaseContext } | undefined)?.context?.plan ??
        (null as Plan | null),
    );

    const total = opts.cases;
    const window = opts.window ?? 3000;
    const signals = new Rng(seed);
    const gaps = new Rng(seed + 1);
    const arrivalMs = opts.arrivalMs ?? 90_000;
    let due = clock.now();
    const deadline = Date.now() + (opts.timeoutMs ?? 600_000);
    const reconcile = async () => {
      for await (const e of store.index()) if (e.kind === 'agent' && e.status !== 'active') finished.add(e.id);
    };
    let lastProgress = 0;
    const progress = () => {
      const now = performance.now();
      if (opts.onProgress && now - lastProgress > 250) {
        lastProgress = now;
        opts.onProgress({ submitted: started.size, finished: finished.size, total });
      }
    };
    const run0 = performance.now();
    for (let i = 0; i < total; i++) {
      const id = `ep-${String(i + 1).padStart(6, '0')}`;
      const signal = model.handlers.synthesize(signals, i);
      due += Math.round(-Math.log(1 - gaps.next()) * arrivalMs);
      while (clock.now() < due || started.size - finished.size >= window) {
        if (Date.now() > deadline)
          throw new HandoffError(
            'demo.timeout',
            `the cluster did not keep up: ${finished.size} of ${started.size} submitted episodes finished`,
          );
        progress();
        await sleep(Math.max(1, Math.min(50, (due - clock.now()) / clock.origin.speed)));
      }
      const req: StartRequest = {
        schemaVersion: 1,
        episodeId: id,
        model: model.name,
        signal,
        traceparent: episodeTraceparent(ns, id),
      };
      for (let attempt = 1; ; attempt++) {
        try {
          const body = JSON.stringify(req);
          await js.publish(
            workSubject(ns),
            opts.keyring ? seal(opts.keyring, Buffer.from(body), workSubject(ns)) : body,
            { msgID: `start:${ns}:${id}` },
          );
          break;
        } catch (err) {
          if (attempt >= 100) throw err;
          await sleep(100);
        }
      }
      started.add(id);
      progress();
    }
    let quietSince = performance.now();
    let seen = finished.size;
    while (finished.size < total) {
      if (Date.now() > deadline)
        throw new HandoffError('demo.timeout', `${total - finished.size} episodes did not finish in time`);
      await sleep(100);
      progress();
      if (finished.size !== seen) {
        seen = finished.size;
        quietSince = performance.now();
      } else if (performance.now() - quietSince > 2000) {
        // A notice can be lost (a node killed between its commit and the publish): ask the store.
        await reconcile();
        quietSince = performance.now();
      }
    }
    opts.onProgress?.({ submitted: started.size, finished: finished.size, total });
    const runMs = Math.round(performance.now() - run0);
    pool.stop();
    sub.unsubscribe();
    await store.auditSettled(60_000);
    const summary = await summarize(
      store,
      world as unknown as LevelWorld,
      model.config.review.tiers.length,
      (t) => model.config.actions[t]?.compensation ?? null,
    );
    const verification = await verifyAudit(store.audit());
    const outcomes = new Map<string, number>();
    for await (const e of store.audit())
      if (e.kind === 'episode.outcome') outcomes.set(e.actor, (outcomes.get(e.actor) ?? 0) + 1);
    let outcomeAuditMismatch = 0;
    for (let i = 0; i < total; i++)
      if (outcomes.get(`ep-${String(i + 1).padStart(6, '0')}`) !== 1) outcomeAuditMismatch++;
    const wallMs = Math.round(performance.now() - wall0);
    return {
      model: model.name,
      namespace: ns,
      seed,
      reviewers: pool.reviewers.length,
      ...summary,
      wallMs,
      runMs,
      episodesPerSecond: Math.round((total / (runMs / 1000)) * 10) / 10,
      auditChain: verification.ok
        ? { ok: true, entries: verification.entries }
        : { ok: false, entries: verification.entries, reason: verification.reason },
      outcomeAuditMismatch,
      reviewerActivity: { ...pool.decisions },
      refusedCommands: { ...pool.refusals },
      client: { ...client.stats },
      commandLatencyMs: { p50: pct(client.latencies, 50), p99: pct(client.latencies, 99), n: client.latencies.length },
    };
  } finally {
    await store.close();
    await transport.close();
  }
}
