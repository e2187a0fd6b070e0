import { jetstream, jetstreamManager, type JetStreamClient } from '@nats-io/jetstream';
import type { Logger } from 'pino';
import { ActorExistsError, HandoffError } from '../contracts/errors.ts';
import type { Clock } from '../base/clock.ts';
import type { JetStreamStore } from './jetstream-store.ts';
import { createLogger } from '../runtime/logger.ts';
import type { Reasoning } from '../runtime/reasoning.ts';
import type { Runtime } from '../runtime/runtime.ts';
import { NatsTransport } from './nats-transport.ts';
import type { Subscription } from '../transport/transport.ts';
import { StartRequestContract, parseClusterMessage } from './contracts.ts';
import { ActorMovedError, UnavailableError } from '../contracts/cluster-errors.ts';
import { groupOf } from './keys.ts';
import { Leases, type Lease, type LeaseHolder } from './leases.ts';
import { Membership, type Member } from './membership.ts';
import { Limiter, rendezvous } from './placement.ts';
import { withSpan } from './trace.ts';
import { CommandRouter, nodeSubject } from './commands.ts';
import { ensureWorkStream, workSubject, WorkPuller, type StartRequest } from './work.ts';
import type { JetStreamWorld } from './world.ts';
import { openNodeRuntime } from './node-runtime.ts';
import { WriteFence } from './write-fence.ts';
import { SignalIngest } from './ingest.ts';
import type { ClusterNodeOptions, NodeEvent } from './node-options.ts';
import { within } from '../base/within.ts';

/** Moved to work.ts and node-options.ts; re-exported for the importers of node.ts. */
export { workStream, workSubject, type StartRequest } from './work.ts';
export type { ClusterNodeOptions, NodeEvent } from './node-options.ts';

interface Held {
  lease: Lease;
  state: 'adopting' | 'ready';
  ready: Promise<void>;
}

const AUDIT_GROUP = '_audit';
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * One node of a Handoff cluster on NATS. It joins the membership, hosts the episodes (placement
 * groups) whose leases it holds, serves reviewer commands for any case (forwarding to the owner),
 * pulls new episodes from the work stream within its capacity, takes over a dead node's episodes
 * (fence, reload, re-issue effects, re-arm timers) and runs the audit sequencer if it holds that
 * lease. See docs/distribution.md.
 */
export class ClusterNode {
  readonly name: string;
  readonly namespace: string;
  transport!: NatsTransport;
  store!: JetStreamStore;
  runtime!: Runtime;
  membership!: Membership;
  leases!: Leases;
  world!: JetStreamWorld;
  clock!: Clock;
  #opts: ClusterNodeOptions;
  #log: Logger;
  #reasoning: Reasoning | undefined;
  #js!: JetStreamClient;
  #held = new Map<string, Held>();
  #taking = new Set<string>();
  #subs: Subscription[] = [];
  #stopped = false;
  #pulling: Promise<void> | undefined;
  #sweeper: NodeJS.Timeout | undefined;
  #work!: WorkPuller;
  #reactivating: Promise<void> | undefined;
  /** Takeovers run at most this many at a time (each is a handful of requests). */
  #limit = new Limiter(64);
  #control: NatsTransport | undefined;
  /** Signals over NATS (`handoff.<ns>.signals.<model>`, ingest.ts). */
  ingest: SignalIngest | undefined;
  readonly stats = {
    poison: 0,
    lapses: 0,
    started: 0,
    commands: 0,
    forwarded: 0,
    overloaded: 0,
    takeovers: 0,
    adoptedActors: 0,
    lost: 0,
    released: 0,
  };

  private constructor(opts: ClusterNodeOptions) {
    this.#opts = opts;
    this.name = opts.node;
    this.namespace = opts.namespace ?? 'default';
    this.#log = opts.logger ?? createLogger({ models: opts.models });
  }

  static async start(opts: ClusterNodeOptions): Promise<ClusterNode> {
    const n = new ClusterNode(opts);
    await n.#start();
    return n;
  }

  get memberId(): string {
    return this.membership.id;
  }

  #holder(): LeaseHolder {
    return { member: this.membership.id, node: this.name, at: Date.now() };
  }

  /** Whether this node may write the actor now: it holds its group's lease and its membership is alive. */
  mayWrite(actorId: string): boolean {
    return this.#fence.mayWrite(actorId);
  }

  /** Why {@link mayWrite} refuses an actor. */
  whyNot(actorId: string): string {
    return this.#fence.whyNot(actorId);
  }

  #fence!: WriteFence;

  async #start(): Promise<void> {
    const o = this.#opts;
    this.transport = await NatsTransport.connect(o.servers, {
      name: `handoff-${o.node}`,
      ...(o.security ? { security: o.security } : {}),
    });
    const nc = this.transport.nc;
    // Heartbeats on their own connection, so they do not queue behind this node's bulk writes.
    this.#control = await NatsTransport.connect(o.servers, {
      name: `handoff-${o.node}-membership`,
      ...(o.security ? { security: o.security } : {}),
    });
    this.membership = await Membership.join(this.#control.nc, {
      namespace: this.namespace,
      node: o.node,
      probe: (member) => this.#probe(member),
      ...(o.heartbeatMs !== undefined ? { heartbeatMs: o.heartbeatMs } : {}),
      ...(o.deadAfterMs !== undefined ? { deadAfterMs: o.deadAfterMs } : {}),
      ...(o.selfFenceMs !== undefined ? { selfFenceMs: o.selfFenceMs } : {}),
      ...(o.replicas !== undefined ? { replicas: o.replicas } : {}),
      logger: this.#log,
    });
    // A probe travels on the data connection: its disconnects and reconnects count for liveness too.
    this.membership.observe(this.transport.nc);
    // Answer probes on the data connection: while it is up this node can write, so it is not gone.
    this.#subs.push(
      this.transport.serve(this.#directSubject(this.membership.id, 'ping'), () => this.name, { queue: 'direct' }),
    );
    this.leases = await Leases.open(nc, {
      namespace: this.namespace,
      ...(o.replicas !== undefined ? { replicas: o.replicas } : {}),
      logger: this.#log,
    });
    this.#fence = new WriteFence({
      leases: this.leases,
      membership: this.membership,
      log: this.#log,
      stats: this.stats,
      stopped: () => this.#stopped,
      hosts: (group) => this.#held.has(group),
      hosted: () => this.#held.keys(),
    });
    const nr = await openNodeRuntime({
      opts: o,
      namespace: this.namespace,
      writer: this.membership.id,
      transport: this.transport,
      leases: this.leases,
      log: this.#log,
      guard: {
        mayWrite: (id) => this.mayWrite(id),
        why: (id) => this.whyNot(id),
        fencingToken: (id) => this.leases.get(groupOf(id))?.revision,
      },
      checkFence: (id, token) => this.#fence.checkEffect(id, token),
    });
    ({ store: this.store, world: this.world, clock: this.clock, runtime: this.runtime } = nr);
    this.#reasoning = nr.reasoning;
    this.runtime.onTransition((n) => {
      if (n.kind === 'agent' && n.status !== 'active' && groupOf(n.id) === n.id) void this.#releaseIfFinished(n.id);
    });

    this.leases.on((group, prev, next) => this.#onLease(group, prev, next));
    this.membership.on((e) => {
      if (e.type === 'dead') {
        this.#event({ type: 'member', member: e.member.id, alive: false, at: Date.now() });
        this.#sweep();
      } else if (e.type === 'joined') this.#event({ type: 'member', member: e.member.id, alive: true, at: Date.now() });
      else if (e.type === 'lapsed') void this.#fence.verifyLeases(e.gapMs);
      else if (e.type === 'health') {
        this.#event({ type: 'health', healthy: e.healthy, at: Date.now() });
        if (e.healthy) void this.#reactivate();
      }
    });

    // Reviewer commands: any node takes a request (queue group) and routes it to the case's owner.
    const commands = new CommandRouter({
      name: this.name,
      namespace: this.namespace,
      runtime: this.runtime,
      leases: this.leases,
      membership: this.membership,
      transport: this.transport,
      stats: this.stats,
      maxInFlight: o.maxInFlight ?? 2000,
      adopting: (group) => this.#held.get(group)?.state === 'adopting',
      takeOrphan: async (group) => {
        const lease = await this.leases.acquire(group, this.#holder(), this.leases.get(group));
        if (lease) await this.#adopt(group, lease);
        return !!lease;
      },
    });
    this.#subs.push(...commands.serve());
    this.#subs.push(
      this.transport.serve(
        this.#directSubject(this.membership.id, 'start'),
        (m) => this.#startHere(this.#parseRequest<StartRequest>(StartRequestContract, m.data, 'StartRequest'), false),
        { queue: 'direct' },
      ),
    );

    const jsm = await jetstreamManager(nc);
    this.#js = jetstream(nc);
    await ensureWorkStream(jsm, this.namespace, o.replicas ?? 1);
    this.ingest = await SignalIngest.start({
      js: this.#js,
      jsm,
      namespace: this.namespace,
      workSubject: workSubject(this.namespace),
      models: o.models,
      keyring: o.keyring,
      replicas: o.replicas ?? 1,
      log: this.#log,
      publish: (s, d) => nc.publish(s, d),
      putDeadLetter: (l) => this.store.putDeadLetter(l),
      audit: (d) => this.runtime.audit(d),
      accepting: () => !this.#stopped && this.membership.healthy,
      now: () => this.clock.now(),
    });

    this.#sweep();
    this.#sweeper = setInterval(() => this.#sweep(), 250);
    this.#sweeper.unref?.();
    this.#work = new WorkPuller(this.#js, this.namespace, {
      log: this.#log,
      keyring: o.keyring,
      stats: this.stats,
      stopped: () => this.#stopped,
      capacity: () => this.#capacity(),
      hasModel: (model) => this.runtime.models.has(model),
      start: (req) => this.#startHere(req, true),
      putDeadLetter: (letter) => this.store.putDeadLetter(letter),
    });
    this.#pulling = this.#work.run();
  }

  /** Is a member's data connection still there? No responder on its ping subject: it is gone. */
  async #probe(member: string): Promise<'gone' | 'alive' | 'unknown'> {
    try {
      await this.transport.request(this.#directSubject(member, 'ping'), null, { timeoutMs: 1000 });
      return 'alive';
    } catch (err) {
      return err instanceof HandoffError && err.code === 'transport.no_responders' ? 'gone' : 'unknown';
    }
  }

  #directSubject(member: string, what: 'cmd' | 'start' | 'ping' = 'cmd'): string {
    return nodeSubject(this.namespace, member, what);
  }

  #event(e: NodeEvent): void {
    try {
      this.#opts.onEvent?.(e);
    } catch {
      // the listener's problem
    }
  }

  /** Number of episodes (groups) hosted here. */
  get episodes(): number {
    let n = 0;
    for (const g of this.#held.keys()) if (g !== AUDIT_GROUP) n++;
    return n;
  }

  // ------------------------------------------------------------------------------------------------
  // Leases: acquiring, adopting, losing, releasing
  // ------------------------------------------------------------------------------------------------

  #onLease(group: string, _prev: Lease | undefined, next: Lease): void {
    const held = this.#held.get(group);
    if (!held || next.holder?.member === this.membership.id) return;
    // Someone else holds it now (a takeover after this node was considered dead): let go, no writes.
    this.#drop(group, next.holder?.member ?? null);
  }

  #drop(group: string, to: string | null): void {
    if (!this.#held.delete(group)) return;
    if (group === AUDIT_GROUP) {
      void this.store.stopAuditSequencer();
      this.#event({ type: 'sequencer', running: false, at: Date.now() });
      return;
    }
    this.stats.lost++;
    const ids = this.store.groupActors(group);
    this.store.releaseGroup(group);
    this.runtime.relinquish(ids);
    this.#event({ type: 'lost', group, to, at: Date.now() });
  }

  /** Periodically (and when a member dies): take over groups whose holder is dead, if this node is their successor. */
  #sweep(): void {
    if (this.#stopped || !this.membership.healthy) return;
    if (this.#fence.refusedWhileMine.size > 0 && !this.#reactivating) {
      const ids = [...this.#fence.refusedWhileMine].filter((id) => this.mayWrite(id));
      this.#fence.refusedWhileMine.clear();
      const groups = new Set(ids.map(groupOf));
      this.#reactivating = this.runtime
        .adopt(
          ids,
          [...groups].flatMap((g) => this.store.outboxOf(g)),
        )
        .catch((err: unknown) => this.#log.warn({ err }, 'reactivation failed'))
        .finally(() => (this.#reactivating = undefined));
    }
    const alive = this.membership.alive().map((m: Member) => m.id);
    if (!alive.includes(this.membership.id)) return;
    for (const lease of this.leases.all()) {
      const holder = lease.holder!.member;
      if (holder === this.membership.id || !this.membership.isDead(holder)) continue;
      if (rendezvous(lease.group, alive) !== this.membership.id) continue;
      void this.#takeover(lease);
    }
    if (!this.leases.get(AUDIT_GROUP)?.holder && rendezvous(AUDIT_GROUP, alive) === this.membership.id)
      void this.#takeover(this.leases.get(AUDIT_GROUP));
  }

  async #takeover(from: Lease | undefined): Promise<void> {
    const group = from?.group ?? AUDIT_GROUP;
    if (this.#taking.has(group) || this.#held.has(group)) return;
    this.#taking.add(group);
    const t0 = performance.now();
    await this.#limit.acquire();
    try {
      const lease = await this.leases.acquire(group, this.#holder(), from);
      if (!lease) return;
      if (group === AUDIT_GROUP) {
        this.#held.set(group, { lease, state: 'ready', ready: Promise.resolve() });
        await this.store.startAuditSequencer();
        this.#event({ type: 'sequencer', running: true, at: Date.now() });
        return;
      }
      this.stats.takeovers++;
      const active = await this.#adopt(group, lease);
      this.#event({
        type: 'adopted',
        group,
        from: from?.holder?.member ?? null,
        active,
        ms: Math.round(performance.now() - t0),
        at: Date.now(),
      });
    } catch (err) {
      this.#log.warn({ err, group }, 'takeover failed; the sweep tries again');
      if (this.#held.get(group)?.state === 'adopting') this.#held.delete(group);
    } finally {
      this.#limit.release();
      this.#taking.delete(group);
    }
  }

  /** Fences and loads a group this node now holds; releases it if nothing in it is active. */
  async #adopt(group: string, lease: Lease): Promise<number> {
    let resolve!: () => void;
    const held: Held = { lease, state: 'adopting', ready: new Promise<void>((r) => (resolve = r)) };
    this.#held.set(group, held);
    try {
      const { active, outbox } = await this.store.adoptGroup(group);
      if (this.#held.get(group) !== held) return 0;
      await this.runtime.adopt(active, outbox);
      this.stats.adoptedActors += active.length;
      held.state = 'ready';
      if (active.length === 0) await this.#release(group);
      return active.length;
    } finally {
      resolve();
    }
  }

  /** Back from a fenced period: reload what was dropped while writes were refused. */
  async #reactivate(): Promise<void> {
    const refused = [...this.#fence.refusedWhileMine].filter((id) => this.mayWrite(id));
    this.#fence.refusedWhileMine.clear();
    await this.runtime
      .adopt(
        refused,
        [...new Set(refused.map(groupOf))].flatMap((g) => this.store.outboxOf(g)),
      )
      .catch((err: unknown) => this.#log.warn({ err }, 'reactivation failed'));
    for (const [group, held] of this.#held) {
      if (group === AUDIT_GROUP || held.state !== 'ready') continue;
      const owner = this.leases.ownerOf(group);
      if (owner !== this.membership.id) {
        this.#drop(group, owner ?? null);
        continue;
      }
      const active = this.store.groupActors(group, true);
      await this.runtime.adopt(active).catch((err: unknown) => this.#log.warn({ err, group }, 'reactivation failed'));
    }
  }

  /** Releases a group's lease once its episode has ended (its agent's durable record is final). */
  async #releaseIfFinished(group: string): Promise<void> {
    // Let the final commit's consequences (outbox, notices) settle first.
    await sleep(0);
    if (!this.#held.has(group) || this.store.groupActive(group)) return;
    // The agent's status as this node last wrote it (its final commit is durable before the notice
    // that called this); read from the store only when this node has not written it (a repeated
    // start of a finished episode) or its last write's outcome is unknown.
    const status = this.store.writtenStatus(group) ?? (await this.store.load(group).catch(() => undefined))?.status;
    if (!status || status === 'active' || this.store.groupActive(group)) return;
    await this.#release(group);
  }

  async #release(group: string): Promise<void> {
    const held = this.#held.get(group);
    if (!held) return;
    this.#held.delete(group);
    this.store.releaseGroup(group);
    this.stats.released++;
    await this.leases.release(held.lease).catch((err: unknown) => this.#log.warn({ err, group }, 'lease not released'));
  }

  /** Acquires a free group for new work. Resolves with whether this node holds it now. */
  async #claim(group: string): Promise<'mine' | 'elsewhere' | 'busy'> {
    const held = this.#held.get(group);
    if (held) {
      await held.ready;
      return this.#held.has(group) ? 'mine' : 'busy';
    }
    const lease = this.leases.get(group);
    if (lease?.holder) {
      if (lease.holder.member === this.membership.id) {
        // Ours in the bucket but not hosted (a release that did not go through): host it again.
        await this.#adopt(group, lease);
        return this.#held.has(group) ? 'mine' : 'busy';
      }
      if (!this.membership.isDead(lease.holder.member)) return 'elsewhere';
      return 'busy'; // its node died: the takeover runs first
    }
    const got = await this.leases.acquire(group, this.#holder(), lease);
    if (!got) return 'busy';
    // A free lease: the group may still hold finished actors (a repeated start), never live ones;
    // none at all if its key had never been written (a new episode: the store need not be asked).
    if (got.fresh) this.store.markFresh(group, got.revision);
    this.#held.set(group, { lease: got, state: 'ready', ready: Promise.resolve() });
    return 'mine';
  }

  // ------------------------------------------------------------------------------------------------
  // New episodes: pulled from the work stream within capacity
  // ------------------------------------------------------------------------------------------------

  #capacity(): number {
    const maxEpisodes = this.#opts.maxEpisodes ?? 2000;
    const maxInFlight = this.#opts.maxInFlight ?? 2000;
    if (!this.membership.healthy || this.runtime.busy > maxInFlight) return 0;
    // Small pulls: a burst of starts is work done in one turn of the event loop (heartbeats wait).
    return Math.max(0, Math.min(32, maxEpisodes - this.episodes - this.#work.inFlight));
  }

  /** A request on a node subject: parsed with its contract (a wrong shape is answered `contract.invalid`, naming the field). */
  #parseRequest<T>(schema: Parameters<typeof parseClusterMessage>[0], data: unknown, contract: string): T {
    return parseClusterMessage(schema, data, contract) as T;
  }

  /**
   * Starts an episode here, or (`forward`) on the node that holds its lease already (a redelivered
   * start whose first attempt failed there). Resolves once the start is durable or the episode exists.
   * A start that fails gives its lease back (unless the episode is durable: then it is hosted here).
   */
  async #startHere(req: StartRequest, forward: boolean): Promise<void> {
    // Refused before a lease is taken: nothing to give back.
    if (!this.runtime.models.has(req.model))
      throw new HandoffError('model.unknown', `no model named '${req.model}' is loaded on node ${this.name}`, {
        model: req.model,
      });
    const wasHeld = this.#held.has(req.episodeId);
    const claim = await this.#claim(req.episodeId);
    if (claim === 'elsewhere') {
      const holder = this.leases.get(req.episodeId)?.holder;
      if (!forward || !holder) throw new ActorMovedError(req.episodeId, holder?.member ?? null);
      await this.transport.request(this.#directSubject(holder.member, 'start'), req, { timeoutMs: 10_000 });
      return;
    }
    if (claim === 'busy') throw new UnavailableError(req.episodeId, 'its node died; the takeover is in progress', 250);
    try {
      await withSpan(
        'handoff.episode.start',
        req.traceparent,
        { 'handoff.episode': req.episodeId, 'handoff.node': this.name },
        () =>
          this.runtime.startEpisode(req.model, req.signal, {
            episodeId: req.episodeId,
            ...(req.traceparent ? { traceparent: req.traceparent } : {}),
          }),
      );
      this.stats.started++;
    } catch (err) {
      if (err instanceof ActorExistsError) {
        void this.#releaseIfFinished(req.episodeId);
        return;
      }
      if (!wasHeld) await this.#giveBack(req.episodeId);
      throw err;
    }
  }

  /**
   * After a failed start: the lease taken for it is released unless the episode's record is durable
   * (a write whose acknowledgement was lost): then it is hosted here like an adopted one.
   */
  async #giveBack(group: string): Promise<void> {
    const held = this.#held.get(group);
    if (!held || this.store.groupActive(group)) return;
    let rec: Awaited<ReturnType<JetStreamStore['load']>>;
    try {
      rec = await this.store.load(group);
    } catch (err) {
      // Unknown: keep the lease; the redelivered start (or a command) finds the episode or starts it.
      this.#log.warn({ err, group }, 'failed start: the store could not be read; the lease is kept');
      return;
    }
    if (this.#held.get(group) !== held) return;
    if (!rec) {
      await this.#release(group);
      return;
    }
    if (rec.status === 'active') {
      this.#held.delete(group);
      await this.#adopt(group, held.lease).catch((err: unknown) =>
        this.#log.warn({ err, group }, 'failed start: adoption of the durable episode failed'),
      );
    } else await this.#release(group);
  }

  // ------------------------------------------------------------------------------------------------
  // Lifecycle
  // ------------------------------------------------------------------------------------------------

  status(): Record<string, unknown> {
    return {
      node: this.name,
      member: this.membership.id,
      healthy: this.membership.healthy,
      members: this.membership.alive().map((m) => m.node),
      episodes: this.episodes,
      resident: this.runtime.resident,
      busy: this.runtime.busy,
      sequencer: this.store.runsAuditSequencer,
      ...this.stats,
      store: { ...this.store.stats },
      world: { ...this.world.stats },
      transport: { ...this.transport.stats },
    };
  }

  /**
   * Dies like a killed process, for in-process tests: no leave, no flush; heartbeats stop and both
   * connections drop (the server drops its subscriptions at once, as for a SIGKILL). What the
   * runtime still had in flight fails; the survivors take its episodes over.
   */
  async crash(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    clearInterval(this.#sweeper);
    this.ingest?.halt();
    this.membership.halt();
    this.leases.close();
    await Promise.allSettled([this.transport.nc.close(), this.#control?.nc.close()]);
    void this.runtime.close().catch(() => undefined);
  }

  /** Leaves gracefully: stops taking work, finishes what is in flight, leaves the membership (the others take this node's episodes over at once). */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    clearInterval(this.#sweeper);
    for (const s of this.#subs) s.unsubscribe();
    await Promise.all([within(this.#pulling, 2000), this.ingest?.stop()]);
    await within(this.runtime.whenIdle(), 5000);
    await this.runtime.close();
    await this.#reasoning?.close();
    await this.store.close();
    await this.membership.leave();
    this.leases.close();
    await this.transport.close();
    await this.#control?.close();
  }
}
