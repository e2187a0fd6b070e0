/**
 * The harness generated suites (and users' own tests) drive the real runtime with: a `Runtime` on a
 * `LevelStore` in a temporary folder, a `SimulatedClock`, the model's real handlers behind effect
 * gates (see `scripted-model.ts`), and reviewer commands through `Runtime.command`, exactly as the
 * console sends them. After every step it checks the journaled event and the state, the context
 * features the path expects, the machine's context invariants, the effects ledger and the audit
 * entries the step appended. With `crashEachStep` the runtime is closed and reopened from its store
 * before every step, and the path must still complete identically: timers re-armed, no effect repeated.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import pino from 'pino';
import { SCHEMA_VERSION } from '../contracts/envelope.ts';
import { HandoffError } from '../contracts/errors.ts';
import type { Reviewer } from '../contracts/reviewer-command.ts';
import type { AgentContext } from '../machines/agent.ts';
import { approvalSteps, type CaseContext } from '../machines/review-case.ts';
import type { LoadedModel } from '../models/loader.ts';
import { verifyAudit } from '../base/audit-log.ts';
import { SimulatedClock } from '../base/clock.ts';
import { LevelStore } from '../runtime/level-store.ts';
import { Runtime, type ActorView } from '../runtime/runtime.ts';
import { LevelWorld } from '../runtime/world.ts';
import {
  classOf,
  commandPayload,
  DEFAULT_OPERATOR_TIER,
  fixtureClassOf,
  identify,
  type Fixtures,
  type PlanClass,
} from './fixtures.ts';
import { EffectGates, scriptedModel, scriptedPlanner, type GatedKind } from './scripted-model.ts';
import { agentInvariants, caseInvariants, checkRestart, HarnessError, ledgerOf, viewProblems } from './checks.ts';
import { describeAction, type Action, type Expectation } from './steps.ts';
import { describeRuntime, settle, until, type Idle } from './waiting.ts';

export { HarnessError } from './checks.ts';

export interface SuiteOptions {
  /** Model folder, or a loaded model. */
  model: string | LoadedModel;
  /** Fixtures file written by the generator (`<model>.fixtures.json`), or the fixtures. */
  fixtures: string | Fixtures;
  /** Close and reopen the runtime from its store before every step (and before the end). */
  crashEachStep?: boolean;
  /** Longest wait for the runtime to do one thing, wall ms. @default 10000 */
  timeoutMs?: number;
  /** Seed of the runtime's draws. @default 'handoff-testing' */
  seed?: string;
}

/** One scenario on a fresh store: an episode (and its case) walked step by step. */
export class Scenario {
  readonly model: LoadedModel;
  readonly fixtures: Fixtures;
  readonly machine: 'agent' | 'case';
  /** For a case scenario: the gate branch of the plan whose review opens the case. */
  readonly startClass: PlanClass | undefined;
  readonly clock: SimulatedClock;
  #opts: SuiteOptions;
  #dir: string;
  #store!: LevelStore;
  #world!: LevelWorld;
  #rt!: Runtime;
  #gates = new EffectGates();
  #gen = 0;
  #expected: Expectation = {};
  #seq = 0;
  #subject: string;
  #auditFrom = 1;
  #commands = 0;
  #done: string[] = [];
  #closed = false;
  #trackAudit = false;
  /** The latest queue view (tier, priority, deadlines) the runtime published for each case. */
  #queues = new Map<string, { tier: number; priority: number }>();
  /** Restarts so far, and effects that took place under a restart with their result lost (recovered later). */
  readonly stats = { restarts: 0, lostResults: 0 };
  /** What the waits (waiting.ts) look at. */
  #idle: Idle;

  private constructor(
    opts: SuiteOptions,
    model: LoadedModel,
    fixtures: Fixtures,
    machine: 'agent' | 'case',
    start: PlanClass | undefined,
    dir: string,
  ) {
    this.#opts = opts;
    this.model = model;
    this.fixtures = fixtures;
    this.machine = machine;
    this.startClass = start;
    this.#dir = dir;
    this.clock = new SimulatedClock(fixtures.t0);
    this.#subject = machine === 'agent' ? fixtures.episodeId : `${fixtures.episodeId}.case-1`;
    this.#idle = {
      busy: () => this.#rt.busy,
      held: () => this.#gates.blocked(this.#gen),
      clock: this.clock,
      timeoutMs: opts.timeoutMs ?? 10_000,
      describe: () => this.#describe(),
    };
  }

  static async open(
    opts: SuiteOptions,
    model: LoadedModel,
    fixtures: Fixtures,
    machine: 'agent' | 'case',
    start?: PlanClass,
  ): Promise<Scenario> {
    const dir = await mkdtemp(join(tmpdir(), `handoff-mbt-${model.name}-`));
    const s = new Scenario(opts, model, fixtures, machine, start, dir);
    s.#store = await LevelStore.open(dir);
    s.#world = new LevelWorld(s.#store);
    s.#rt = await s.#openRuntime();
    return s;
  }

  get runtime(): Runtime {
    return this.#rt;
  }
  get store(): LevelStore {
    return this.#store;
  }
  get world(): LevelWorld {
    return this.#world;
  }
  get episodeId(): string {
    return this.fixtures.episodeId;
  }
  /** The actor the scenario's steps address: the episode, or its first case. */
  get subject(): string {
    return this.#subject;
  }

  async #openRuntime(): Promise<Runtime> {
    const gen = this.#gen;
    const rt = await Runtime.open({
      store: this.#store,
      world: this.#world,
      models: [scriptedModel(this.model, this.#gates, gen)],
      planners: {
        [this.model.name]: scriptedPlanner(
          {
            ...this.fixtures.plans,
            ...Object.fromEntries((this.fixtures.boundaries ?? []).map((b) => [`boundary:${b.id}`, b.plan])),
          },
          this.#gates,
          gen,
        ),
      },
      clock: this.clock,
      seed: this.#opts.seed ?? 'handoff-testing',
      logger: pino({ level: 'silent' }),
      // Scripted failures are not an outage: keep circuits closed.
      circuitBreaker: { failureThreshold: 1_000_000 },
      // Every deadline resident: timers fire exactly when the clock reaches them.
      timerHorizonMs: 400 * 86_400_000,
    });
    rt.onTransition((n) => {
      if (n.queue) this.#queues.set(n.id, { tier: n.queue.tier, priority: n.queue.priority });
    });
    return rt;
  }

  // ----------------------------------------------------------------------------------------------
  // Steps
  // ----------------------------------------------------------------------------------------------

  /** Starts the episode (and, for a case scenario, walks it until its case is open); checks `expect`. */
  async start(expect: Expectation): Promise<void> {
    await this.#guard('start', async () => {
      const fx = this.fixtures;
      await this.#rt.startEpisode(this.model.name, fx.signal, { episodeId: fx.episodeId });
      if (this.machine === 'case') {
        if (!this.startClass || !fx.plans[this.startClass])
          throw new HarnessError(`no fixture plan for gate branch '${this.startClass}'`);
        await this.#release(fx.episodeId, 'perceive', { result: 'done' }, 1);
        await this.#release(fx.episodeId, 'plan', { result: 'done', plan: this.startClass }, 2);
        await this.#waitSeq(fx.episodeId, 3);
        await this.#waitExists(this.#subject);
      }
      await this.#settle();
      this.#trackAudit = expect.audit !== undefined;
      this.#expected = { ...expect };
      await this.#check(expect, 0, 'start');
    });
  }

  /** Performs one step of a path and checks what the runtime shows afterwards. */
  async step(action: Action, delta: Expectation = {}): Promise<void> {
    const label = describeAction(action);
    await this.#guard(label, async () => {
      const expect = this.#merge(delta);
      if (this.#opts.crashEachStep) await this.restart(action);
      if (expect.refused) {
        await this.#refused(action, expect);
      } else {
        const target = ++this.#seq;
        await this.#perform(action, target);
        await this.#waitSeq(this.#subject, target);
        await this.#settle();
        await this.#check(expect, target, label);
      }
      this.#expected = expect;
    });
    this.#done.push(label);
  }

  /** End of the path: final invariants (audit chain, no duplicate effect); with crashes, one more restart. */
  async end(): Promise<void> {
    await this.#guard('end', async () => {
      if (this.#opts.crashEachStep) await this.restart();
      await this.#settle();
      const audit = await verifyAudit(this.#store.audit());
      if (!audit.ok) throw new HarnessError(`audit chain broken at entry ${audit.firstBroken}: ${audit.reason}`);
      const totals = await this.#world.totals();
      if (totals.duplicates !== 0) throw new HarnessError(`${totals.duplicates} effect(s) applied more than once`);
    });
  }

  /**
   * Closes the runtime (effects in flight never report back; one about to succeed takes place first,
   * so its result is lost exactly in the window the idempotency check covers) and reopens it from the
   * store. Checks that every live actor's deadlines are back in the timer index and nothing repeated.
   */
  async restart(next?: Action): Promise<void> {
    await this.#shutdown(next);
    await this.#store.close();
    this.#store = await LevelStore.open(this.#dir);
    this.#world = new LevelWorld(this.#store);
    this.#gen++;
    this.stats.restarts++;
    this.#rt = await this.#openRuntime();
    await this.#settle();
    await checkRestart(this.#store, this.#rt, this.#world, [this.episodeId, ...(await this.#caseIds())]);
  }

  async #shutdown(next?: Action): Promise<void> {
    const gen = this.#gen;
    const closing = this.#rt.close();
    this.#gates.close(gen, (a) => {
      const apply =
        !!next &&
        'result' in next &&
        next.result === 'done' &&
        next.do === a.kind &&
        (a.kind === 'execute' || a.kind === 'compensate') &&
        'step' in next &&
        next.step === a.step;
      if (apply) this.stats.lostResults++;
      return { crash: true, apply };
    });
    await closing;
  }

  async dispose(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#shutdown().catch(() => undefined);
    await this.#store.close().catch(() => undefined);
    await rm(this.#dir, { recursive: true, force: true });
  }

  // ----------------------------------------------------------------------------------------------
  // Performing actions
  // ----------------------------------------------------------------------------------------------

  async #perform(action: Action, target: number): Promise<void> {
    const ep = this.episodeId;
    switch (action.do) {
      case 'perceive':
      case 'plan':
      case 'execute':
      case 'compensate':
        return this.#release(
          ep,
          action.do,
          { result: action.result, ...(action.do === 'plan' && action.plan ? { plan: action.plan } : {}) },
          target,
          'step' in action ? action.step : undefined,
        );
      case 'timer':
        return this.#fire(this.#subject, action.timer, target);
      case 'caseOpened':
        return;
      case 'resolve':
        return this.#resolve(action.outcome, action.plan, !!action.operator);
      case 'redeliver':
        throw new HarnessError(`a redelivered ${action.event} must be expected as refused (ignored)`);
      default:
        await this.#command(action.do, action.by, !!action.invalid, action.after ?? 0);
    }
  }

  /** Lets the pending `kind` effect end as directed; returns early if it ended without asking (replayed, skipped). */
  async #release(
    id: string,
    kind: GatedKind,
    directive: { result: 'done' | 'transient' | 'permanent'; plan?: PlanClass },
    target: number,
    step?: number,
  ): Promise<void> {
    await this.#until(`the ${kind}${step !== undefined ? ` step ${step}` : ''} effect of ${id}`, async () => {
      // Done already: the effect completed without asking (its result was recorded before a restart,
      // or a compensation with nothing to undo was skipped).
      if (((await this.#rt.get(id))?.seq ?? -1) >= target) return true;
      const a = this.#gates.take(this.#gen, kind, step);
      if (!a) return false;
      a.release(directive);
      return true;
    });
  }

  async #fire(id: string, name: string, target: number): Promise<void> {
    await this.#settle();
    const v = await this.#view(id);
    const due = v.context.timers[name];
    if (due === undefined)
      throw new HarnessError(
        `no '${name}' timer is armed on ${id} (state ${v.state}, timers ${JSON.stringify(v.context.timers)})`,
      );
    this.clock.advanceTo(Math.max(due, this.clock.now()));
    await this.#until(`timer.${name} of ${id} to fire`, async () => ((await this.#rt.get(id))?.seq ?? -1) >= target);
  }

  async #caseIds(): Promise<string[]> {
    const agent = await this.#rt.get(this.episodeId);
    return agent ? [...(agent.context as AgentContext).caseIds] : [];
  }

  /** Reviewers (or deadlines) decide the agent's current case. */
  async #resolve(outcome: string, planClass: PlanClass | undefined, operator: boolean): Promise<void> {
    const caseId = (await this.#caseIds()).at(-1);
    if (!caseId) throw new HarnessError('the agent has no open case to resolve');
    const v = await this.#view(caseId);
    const c = v.context as CaseContext;
    if (v.status !== 'active') throw new HarnessError(`case ${caseId} is already ${v.state}`);
    const spec = c.tiers[c.tier - 1]!;
    const fx = this.fixtures;
    const opTier = this.model.config.operator ?? DEFAULT_OPERATOR_TIER;
    const people: Reviewer[] = operator
      ? [fx.operator, { id: 'qa-operator-2', roles: [opTier.roles[0]!] }]
      : (fx.reviewers[c.tier - 1]?.allowed ?? []).filter((r) => r.id !== c.requestedBy);
    const [first, second] = people;
    if (!first || !second) throw new HarnessError(`not enough reviewers for tier ${c.tier} of ${caseId}`);
    const send = (type: string, r: Reviewer, extra: Record<string, unknown> = {}) => this.#send(caseId, type, r, extra);
    switch (outcome) {
      case 'approved':
      case 'modified': {
        // One distinct reviewer per approval step, in order; the first approves or edits.
        const steps = approvalSteps(operator ? opTier : spec);
        const used: string[] = [];
        for (const [k, step] of steps.entries()) {
          const r = people.find((x) => !used.includes(x.id) && x.roles.some((role) => step.roles.includes(role)));
          if (!r)
            throw new HarnessError(
              `no reviewer left for approval ${k + 1} (${step.roles.join(', ')}) at tier ${c.tier} of ${caseId}`,
            );
          used.push(r.id);
          await send('claim', r);
          if (k > 0 || outcome === 'approved')
            await send('approve', r, {
              comment: k > 0 ? `approval ${k + 1} by a test reviewer` : 'checked by a test reviewer',
            });
          else {
            const source = fixtureClassOf(fx, c.plan);
            const edited = source && planClass ? fx.regated[source]?.[planClass] : undefined;
            if (!edited)
              throw new HarnessError(
                `no fixture edit of the '${source ?? 'edited'}' plan that leads to gate branch '${planClass}'`,
              );
            const actions = edited.actions.map((a) => ({ type: a.type, args: a.args }));
            await send('modify', r, { actions, comment: 'edited by a test reviewer' });
          }
        }
        return;
      }
      case 'rejected':
        await send('claim', first);
        await send('reject', first, { reason: 'rejected by a test reviewer' });
        return;
      case 'expired':
        for (let i = 0; i < 100; i++) {
          await this.#settle();
          const cv = await this.#view(caseId);
          if (cv.status !== 'active') return;
          const due = Math.min(...Object.values(cv.context.timers).filter((d): d is number => d !== undefined));
          if (!Number.isFinite(due)) throw new HarnessError(`case ${caseId} has no deadline left to pass`);
          this.clock.advanceTo(Math.max(due, this.clock.now()));
          await this.#until(
            `a deadline of ${caseId} to fire`,
            async () => ((await this.#rt.get(caseId))?.seq ?? -1) > cv.seq,
          );
        }
        throw new HarnessError(`case ${caseId} did not expire after 100 deadlines`);
    }
  }

  async #send(caseId: string, type: string, reviewer: Reviewer, extra: Record<string, unknown>): Promise<void> {
    const cmd = {
      type: `handoff.case.${type}`,
      schemaVersion: SCHEMA_VERSION,
      commandId: `qa-${this.#gen}-${++this.#commands}`,
      caseId,
      reviewer,
      ...extra,
    };
    await this.#rt.command(cmd);
  }

  #commandFor(type: string, by: string, invalid: boolean, c: CaseContext): Record<string, unknown> {
    const reviewer = identify(this.model, this.fixtures, c.tier, by);
    return {
      type: `handoff.case.${type}`,
      schemaVersion: SCHEMA_VERSION,
      commandId: `qa-${this.#gen}-${++this.#commands}`,
      caseId: this.#subject,
      reviewer,
      ...commandPayload(this.fixtures, type, classOf(c.decision), invalid),
    };
  }

  async #command(type: string, by: string, invalid: boolean, after = 0): Promise<void> {
    if (after > 0) {
      // Time passes first (no deadline falls in it: the generator waits less than the next one).
      this.clock.advanceTo(this.clock.now() + after);
      await this.#settle();
    }
    const v = await this.#view(this.#subject);
    await this.#rt.command(this.#commandFor(type, by, invalid, v.context as CaseContext));
  }

  async #refused(action: Action, expect: Expectation): Promise<void> {
    const refused = expect.refused!;
    if (!('by' in action) && action.do !== 'redeliver')
      throw new HarnessError(`only reviewer commands and redeliveries can be refused (got ${describeAction(action)})`);
    const before = await this.#view(this.#subject);
    let error: unknown;
    try {
      if (action.do === 'redeliver') {
        // The last event of this type the actor took, delivered again now (twice, late, out of order).
        let last: { type: string } | undefined;
        for await (const e of this.#rt.journal(this.#subject)) if (e.event.type === action.event) last = e.event;
        if (!last) throw new HarnessError(`no ${action.event} in the journal of ${this.#subject} to deliver again`);
        await this.#rt.send(this.#subject, last as never);
      } else
        await this.#rt.command(this.#commandFor(action.do, action.by, !!action.invalid, before.context as CaseContext));
    } catch (err) {
      if (err instanceof HarnessError) throw err;
      error = err;
    }
    if (!error)
      throw new HarnessError(
        `${describeAction(action)} was accepted; ` +
          `expected a refusal (${refused.code}${refused.rule ? `, rule ${refused.rule}` : ''})`,
      );
    const code = error instanceof HandoffError ? error.code : 'internal';
    const rule = error instanceof HandoffError ? error.details.rule : undefined;
    if (code !== refused.code || (refused.rule !== undefined && rule !== refused.rule))
      throw new HarnessError(
        `${describeAction(action)} was refused with ${code}${rule ? ` (rule ${String(rule)})` : ''}; ` +
          `expected ${refused.code}${refused.rule ? ` (rule ${refused.rule})` : ''}: ${(error as Error).message}`,
      );
    await this.#settle();
    const after = await this.#view(this.#subject);
    if (after.seq !== before.seq || after.state !== before.state)
      throw new HarnessError(
        `a refused command changed ${this.#subject}: ` +
          `seq ${before.seq} → ${after.seq}, state ${before.state} → ${after.state}`,
      );
    const kinds = await this.#auditKinds(this.#subject);
    if (kinds.length) throw new HarnessError(`a refused command appended audit entries ${JSON.stringify(kinds)}`);
  }

  // ----------------------------------------------------------------------------------------------
  // Checking
  // ----------------------------------------------------------------------------------------------

  /** Carries the previous expectation forward; per-step keys do not carry, and a step that names no
   * audit entries expects none when the scenario's start named them (generated suites do). */
  #merge(delta: Expectation): Expectation {
    const { event: _e, refused: _r, audit: _a, agent: _g, ...carried } = this.#expected;
    return { ...carried, ...(this.#trackAudit ? { audit: [] } : {}), ...delta };
  }

  async #check(expect: Expectation, seq: number, label: string): Promise<void> {
    const id = this.#subject;
    const problems: string[] = [];
    if (expect.event !== undefined || seq > 0) {
      const entry = await this.#journalEntry(id, seq);
      if (!entry) problems.push(`no journal entry ${seq}`);
      else {
        if (expect.event !== undefined && entry.event.type !== expect.event)
          problems.push(`journaled event ${entry.event.type}, expected ${expect.event}`);
        if (expect.state !== undefined && entry.state !== expect.state)
          problems.push(`state ${entry.state} after the event, expected ${expect.state}`);
      }
    }
    const v = await this.#view(id);
    const queue = this.machine === 'case' ? this.#queues.get(id) : undefined;
    if (v.seq === seq) problems.push(...viewProblems(expect, v, this.machine, this.fixtures.t0, queue));
    problems.push(...(this.machine === 'agent' ? agentInvariants(v, this.model) : caseInvariants(v)));
    if (expect.ledger) {
      const { keys, repeated } = await ledgerOf(this.#world, this.episodeId);
      if (!isDeepStrictEqual(keys, expect.ledger))
        problems.push(`effects ledger holds ${JSON.stringify(keys)}, expected ${JSON.stringify(expect.ledger)}`);
      if (repeated.length) problems.push(`effects applied more than once: ${repeated.join(', ')}`);
    }
    const kinds = await this.#auditKinds(id);
    if (expect.audit && !isDeepStrictEqual(kinds, expect.audit))
      problems.push(`audit entries ${JSON.stringify(kinds)}, expected ${JSON.stringify(expect.audit)}`);
    if (expect.agent !== undefined) {
      const state = await this.#agentAfterResolution();
      if (state !== expect.agent)
        problems.push(`the agent went to ${state} on the case's resolution, expected ${expect.agent}`);
    }
    if (problems.length) throw new HarnessError(`after ${label}: ${problems.join('; ')}`);
  }

  async #agentAfterResolution(): Promise<string> {
    let found: string | undefined;
    await this.#until('the agent to receive the case resolution', async () => {
      for await (const e of this.#rt.journal(this.episodeId)) if (e.event.type === 'case.resolved') found = e.state;
      return found !== undefined;
    });
    return found!;
  }

  async #auditKinds(actor: string): Promise<string[]> {
    const kinds: string[] = [];
    let last = this.#auditFrom - 1;
    for await (const e of this.#store.audit(this.#auditFrom)) {
      last = e.seq;
      if (e.actor === actor) kinds.push(e.kind);
    }
    this.#auditFrom = last + 1;
    return kinds;
  }

  async #journalEntry(id: string, seq: number) {
    for await (const e of this.#rt.journal(id)) if (e.seq === seq) return e;
    return undefined;
  }

  async #view(id: string): Promise<ActorView> {
    const v = await this.#rt.get(id);
    if (!v) throw new HarnessError(`no actor ${id}`);
    return v;
  }

  // ----------------------------------------------------------------------------------------------
  // Waiting
  // ----------------------------------------------------------------------------------------------

  /** Waits until nothing runs in the runtime except effects held at the gates. */
  #settle(): Promise<void> {
    return settle(this.#idle);
  }

  /** Polls `done` until it holds; fails when the runtime is idle without it holding, or after `timeoutMs`. */
  #until(what: string, done: () => Promise<boolean>): Promise<void> {
    return until(this.#idle, what, done);
  }

  async #waitSeq(id: string, seq: number): Promise<void> {
    await this.#until(`${id} to reach version ${seq}`, async () => ((await this.#rt.get(id))?.seq ?? -1) >= seq);
  }

  async #waitExists(id: string): Promise<void> {
    await this.#until(`${id} to exist`, async () => (await this.#rt.get(id)) !== undefined);
  }

  async #describe(): Promise<string> {
    const ids = [this.episodeId, ...(await this.#caseIds())];
    return describeRuntime(this.#rt, ids, this.#gates.pending(this.#gen));
  }

  async #guard(label: string, fn: () => Promise<void>): Promise<void> {
    try {
      await fn();
    } catch (err) {
      const trail = this.#done.length ? ` after ${this.#done.join(' → ')}` : '';
      const gen = this.#opts.crashEachStep ? ` (runtime generation ${this.#gen})` : '';
      if (err instanceof Error)
        err.message = `${this.model.name} ${this.machine} path, step '${label}'${trail}${gen}: ${err.message}`;
      throw err;
    }
  }
}
