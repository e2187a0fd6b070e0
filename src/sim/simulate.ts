/**
 * `handoff simulate`: a synthetic workload for one model on the embedded runtime and a simulated
 * clock (days of SLA time pass in seconds), with simulated reviewers (`ReviewerPool`) and fault
 * injection, ending with the run's service numbers and a check of the runtime's invariants.
 *
 * Faults are injected by wrapping the effects, not the runtime: a planner wrapper and a wrapper of
 * the model's handlers (perceiver, actions, compensations) throw a transient `EffectError` with the
 * given probability, drawn from the step's seeded draw, so the same seed injects the same faults.
 */
import type { Keyring } from '../security/keyring.ts';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { rulePlanner, type Planner } from '../actors/planners/planner.ts';
import { EffectError, HandoffError } from '../contracts/errors.ts';
import { ARG_REF, ENV_REF } from '../contracts/http-action.ts';
import type { Plan } from '../contracts/plan.ts';
import type { AgentContext } from '../machines/agent.ts';
import type { CaseContext } from '../machines/review-case.ts';
import type { ModelHandlers } from '../models/define.ts';
import { loadModel, type LoadedModel } from '../models/loader.ts';
import { verifyAudit } from '../base/audit-log.ts';
import { SimulatedClock } from '../base/clock.ts';
import { serveCommands } from '../runtime/command-server.ts';
import type { FaultSpec } from '../base/faults.ts';
import { LevelStore } from '../runtime/level-store.ts';
import { Rng } from '../base/rng.ts';
import { Runtime } from '../runtime/runtime.ts';
import { LevelWorld } from '../runtime/world.ts';
import { HandoffClient } from '../transport/client.ts';
import { ReviewerPool } from './reviewers.ts';
import { summarize, type RunSummary } from './summary.ts';
import type { ProcessTelemetry } from '../telemetry/process.ts';

/** `12` (that many reviewers, as the demo builds them) or `support-lead=4,refunds-manager=2`. */
export type ReviewerSpec = number | Record<string, number>;

export function parseReviewers(text: string): ReviewerSpec {
  const t = text.trim();
  if (/^\d+$/.test(t)) {
    const n = Number(t);
    if (n < 1) throw new Error('--reviewers needs at least one reviewer');
    return n;
  }
  const spec: Record<string, number> = {};
  for (const part of t.split(',').filter(Boolean)) {
    const [role, count] = part.split('=');
    const n = Number(count);
    if (!role || !Number.isInteger(n) || n < 0) throw new Error(`bad reviewers spec '${part}': expected role=count`);
    spec[role.trim()] = (spec[role.trim()] ?? 0) + n;
  }
  if (Object.values(spec).reduce((a, b) => a + b, 0) < 1) throw new Error('--reviewers needs at least one reviewer');
  return spec;
}

export interface SimulateOptions {
  /** Model folder, or a loaded model. */
  model: string | LoadedModel;
  /** Traces and metrics of this process (`OTEL_*`, `--metrics`); spans carry the simulated times. @default none */
  telemetry?: ProcessTelemetry | undefined;
  cases: number;
  reviewers: ReviewerSpec;
  /** Probability that a perceive / plan / execute / compensate step fails transiently; `store` fails LevelDB batches. */
  faults?: FaultSpec;
  seed: number;
  /** Data folder; a temporary one (removed afterwards) when absent. */
  data?: string;
  /** Data keys: seal the store's values at rest (docs/encryption.md). @default undefined (plaintext) */
  keyring?: Keyring | undefined;
  /** Mean simulated time between arriving episodes. @default 90 s */
  arrivalMs?: number;
  onProgress?: (p: { finished: number; total: number; simulatedAt: number }) => void;
  /**
   * Let the model's HTTP actions call their services. Without it, a model with HTTP actions is refused
   * ({@link LiveHttpRefusedError}). @default false
   */
  liveHttp?: boolean;
}

export interface SimulationReport extends RunSummary {
  model: string;
  seed: number;
  reviewers: { count: number; byRole: Record<string, number> };
  faults: FaultSpec;
  /** Faults injected by kind. */
  injected: Record<'perceive' | 'plan' | 'execute' | 'compensate', number>;
  invariants: {
    /** What was checked, with counts. */
    checked: { episodes: number; cases: number; effects: number; auditEntries: number };
    violations: number;
    /** The first 50 violations, each naming the actor or key. */
    details: string[];
  };
  refusedCommands: Record<string, number>;
  reviewerActivity: Record<string, number>;
  /** Tiers with no reviewer able to take their cases (from the reviewers spec). */
  unstaffedTiers: string[];
  simulatedMs: number;
  /** Wall time: the only field that differs between two runs with the same seed. */
  wallMs: number;
}

const START = Date.UTC(2026, 0, 5, 8, 0, 0);

/**
 * A simulated clock that fires one timer at a time. The simulation lets everything a timer set off
 * (commands, commits, effects, deliveries) run to quiescence before the next timer fires, so the
 * order in which the seeded reviewers and faults draw their numbers never depends on I/O timing:
 * the same seed gives the same run. (A clock that fires every timer due at once lets their flows
 * race on LevelDB's I/O.)
 */
type Counter = SimulationReport['injected'];

function fault(spec: FaultSpec, kind: keyof Counter, draw: number, count: Counter, what: string): void {
  const p = spec[kind] ?? 0;
  if (p > 0 && draw < p) {
    count[kind]++;
    throw new EffectError(`injected ${kind} fault: ${what}`, { transient: true, code: 'fault.injected' });
  }
}

/** The model with its perceiver and actions wrapped to fail transiently with the spec's probabilities. */
export function faultyModel(model: LoadedModel, spec: FaultSpec, count: Counter): LoadedModel {
  const h = model.handlers;
  const actions: LoadedModel['handlers']['actions'] = {};
  for (const [type, impl] of Object.entries(h.actions)) {
    actions[type] = {
      args: impl.args,
      async execute(args, ctx) {
        const kind = ctx.key.endsWith('/compensate') ? 'compensate' : 'execute';
        fault(spec, kind, ctx.draw(`fault:${kind}`), count, `${type} (${ctx.key})`);
        return impl.execute(args, ctx);
      },
    };
  }
  const handlers: ModelHandlers = {
    ...h,
    actions,
    async perceive(signal, ctx) {
      fault(spec, 'perceive', ctx.draw('fault:perceive'), count, 'perceive');
      return h.perceive(signal, ctx);
    },
  };
  return { ...model, handlers };
}

/** A planner that fails transiently with the spec's probability before the model's own planner runs. */
export function faultyPlanner(spec: FaultSpec, count: Counter, inner: Planner = rulePlanner): Planner {
  return {
    name: inner.name,
    plan(model, episodeId, observation, ctx) {
      fault(spec, 'plan', ctx.draw('fault:plan'), count, `plan of ${episodeId}`);
      return inner.plan(model, episodeId, observation, ctx);
    },
  };
}

/** The model as the reviewer pool sees it: its reviewers replaced by the spec's, role by role. */
function staffed(model: LoadedModel, spec: ReviewerSpec): { model: LoadedModel; count: number } {
  if (typeof spec === 'number') return { model, count: spec };
  const operatorRoles = model.config.operator?.roles ?? ['operator'];
  const known = new Set([...Object.keys(model.config.roles), ...operatorRoles]);
  const reviewers: LoadedModel['config']['reviewers'] = [];
  for (const [role, n] of Object.entries(spec)) {
    if (!known.has(role))
      throw new HandoffError(
        'simulate.unknown_role',
        `reviewers spec: model ${model.name} has no role '${role}' (roles: ${[...known].join(', ')})`,
        { role },
      );
    for (let i = 1; i <= n; i++) reviewers.push({ id: `sim-${role}-${i}`, name: `${role} ${i}`, roles: [role] });
  }
  return { model: { ...model, config: { ...model.config, reviewers } }, count: reviewers.length };
}

/** An HTTP action of a model: what `simulate` or `demo` would call. */
export interface HttpCallout {
  action: string;
  method: string;
  /** The host of its URL once `${env:…}` is filled in (`host:port`), or the template when it has none. */
  host: string;
}

/** The HTTP actions of a model, each with the host its URL points at (from the environment). */
export function httpCallouts(model: Pick<LoadedModel, 'config'>, env: NodeJS.ProcessEnv = process.env): HttpCallout[] {
  const out: HttpCallout[] = [];
  for (const [action, a] of Object.entries(model.config.actions)) {
    if (!a.http) continue;
    const filled = a.http.url.replace(ENV_REF, (_, v: string) => env[v] ?? '').replace(ARG_REF, 'x');
    let host = a.http.url;
    try {
      host = new URL(filled).host || host;
    } catch {
      // Not an absolute URL once filled in: loading the model says so; the template names it here.
    }
    out.push({ action, method: a.http.method, host });
  }
  return out;
}

/**
 * `simulate` or `demo` on a model whose HTTP actions would call real services, without `--live-http`.
 * Details: the actions and the hosts they would call.
 */
export class LiveHttpRefusedError extends HandoffError {
  constructor(command: string, model: string, callouts: HttpCallout[]) {
    const hosts = [...new Set(callouts.map((c) => c.host))];
    super(
      'sim.http_actions_live',
      `${command} would call real services: model ${model} has HTTP actions ` +
        `(${callouts.map((c) => `${c.action}: ${c.method} ${c.host}`).join(', ')}). Pass --live-http to let ` +
        `them call ${hosts.join(', ')} (point their variables at a test instance), or generate suites with ` +
        '`handoff testgen`, which simulates HTTP actions.',
      { model, actions: callouts.map((c) => c.action), hosts, callouts },
    );
  }
}

/** Refuses a model with HTTP actions unless `live` (`--live-http`). */
export function refuseLiveHttp(command: string, model: Pick<LoadedModel, 'config' | 'name'>, live: boolean): void {
  const callouts = httpCallouts(model);
  if (callouts.length > 0 && !live) throw new LiveHttpRefusedError(command, model.name, callouts);
}

/**
 * `handoff demo`'s check before it runs: the model it would run (with `resume`, the one of the run
 * in `data`) refused when it has HTTP actions and `live` is not set.
 */
export async function refuseDemoLiveHttp(opts: {
  model: string;
  data: string;
  resume: boolean;
  live: boolean;
  keyring?: Keyring | undefined;
}): Promise<void> {
  if (opts.live) return;
  let dir: string | undefined = opts.model;
  if (opts.resume) {
    dir = undefined;
    // A folder without a run (or one the store cannot open) is the demo's own error to report.
    if (!existsSync(opts.data) || (await readdir(opts.data)).length === 0) return;
    try {
      const store = await LevelStore.open(opts.data, { keyring: opts.keyring });
      try {
        dir = (await store.getMeta<{ model?: string }>('demo'))?.model;
      } finally {
        await store.close();
      }
    } catch {
      return;
    }
  }
  if (dir === undefined) return;
  refuseLiveHttp('handoff demo', await loadModel(dir), false);
}

/** Runs the simulation and checks the invariants; deterministic for a seed. */
export async function runSimulation(opts: SimulateOptions): Promise<SimulationReport> {
  const wall0 = performance.now();
  const original = typeof opts.model === 'string' ? await loadModel(opts.model) : opts.model;
  refuseLiveHttp('handoff simulate', original, !!opts.liveHttp);
  const spec = opts.faults ?? {};
  const injected: Counter = { perceive: 0, plan: 0, execute: 0, compensate: 0 };
  const model = faultyModel(original, spec, injected);
  const own = !opts.data;
  const data = opts.data ?? (await mkdtemp(join(tmpdir(), 'handoff-simulate-')));
  const store = await LevelStore.open(data, {
    faultRate: spec.store ?? 0,
    faultSeed: opts.seed,
    keyring: opts.keyring,
  });
  try {
    const clock = new SimulatedClock(START);
    const world = new LevelWorld(store);
    const rt = await Runtime.open({
      store,
      world,
      models: [model],
      clock,
      seed: String(opts.seed),
      planners: { [model.name]: faultyPlanner(spec, injected) },
      logger: pino({ level: 'silent' }),
      // Every deadline resident in memory: no timer-index reads race with the steps of the clock.
      timerHorizonMs: 10 * 365 * 86_400_000,
      ...(opts.telemetry?.hook ? { telemetry: opts.telemetry.hook } : {}),
    });
    await opts.telemetry?.attach(rt);
    const server = serveCommands(rt);
    const client = new HandoffClient(rt.transport, { namespace: rt.namespace });
    const people = staffed(original, opts.reviewers);
    const pool = new ReviewerPool({
      runtime: client,
      transport: rt.transport,
      namespace: rt.namespace,
      model: people.model,
      clock,
      rng: new Rng(opts.seed * 7919 + 1),
      count: people.count,
      run: 1,
    });
    pool.readPlansWith(
      async (id) => ((await rt.get(id))?.context as CaseContext | undefined)?.plan ?? (null as Plan | null),
    );

    let finished = 0;
    rt.onTransition((n) => {
      if (n.kind === 'agent' && n.status === 'done') finished++;
    });

    const signals = new Rng(opts.seed);
    const gaps = new Rng(opts.seed + 1);
    const arrivalMs = opts.arrivalMs ?? 90_000;
    let t = START;
    const starts: Promise<unknown>[] = [];
    const notStarted: string[] = [];
    let starting = 0;
    for (let i = 0; i < opts.cases; i++) {
      const signal = original.handlers.synthesize(signals, i);
      t += Math.round(-Math.log(1 - gaps.next()) * arrivalMs);
      const id = `sim-${String(i + 1).padStart(6, '0')}`;
      const start = (attempt: number): void => {
        // Counted until it settles: starting reads the store before the runtime counts it as busy.
        starting++;
        starts.push(
          rt
            .startEpisode(model.name, signal, { episodeId: id })
            .finally(() => starting--)
            .catch((err: unknown) => {
              if (err instanceof HandoffError && err.code === 'store.write_failed' && attempt < 20)
                clock.setTimeout(() => start(attempt + 1), 1000);
              else notStarted.push(`episode ${id} did not start: ${err instanceof Error ? err.message : String(err)}`);
            }),
        );
      };
      clock.setTimeout(() => start(1), Math.max(0, t - clock.now()));
    }

    let lastProgress = 0;
    for (;;) {
      do {
        await rt.whenIdle();
        await new Promise((r) => setImmediate(r));
      } while (rt.busy > 0 || pool.busy > 0 || starting > 0);
      if (!clock.fireNext()) break;
      const now = performance.now();
      if (opts.onProgress && now - lastProgress > 200) {
        lastProgress = now;
        opts.onProgress({ finished, total: opts.cases, simulatedAt: clock.now() });
      }
    }
    await Promise.all(starts);
    opts.onProgress?.({ finished, total: opts.cases, simulatedAt: clock.now() });
    pool.stop();
    server.unsubscribe();
    await rt.close();

    const summary = await summarize(store, world, original.config.review.tiers.length);
    const invariants = await checkInvariants(store, world);
    invariants.violations += notStarted.length;
    invariants.details.push(...notStarted.slice(0, Math.max(0, 50 - invariants.details.length)));
    const byRole: Record<string, number> = {};
    for (const r of pool.reviewers) for (const role of r.roles) byRole[role] = (byRole[role] ?? 0) + 1;
    const unstaffedTiers = original.config.review.tiers
      .filter((tier) => !pool.reviewers.some((r) => r.roles.some((x) => tier.roles.includes(x))))
      .map((tier) => tier.name);
    return {
      model: original.name,
      seed: opts.seed,
      reviewers: {
        count: pool.reviewers.length,
        byRole: Object.fromEntries(Object.entries(byRole).sort(([a], [b]) => (a < b ? -1 : 1))),
      },
      faults: spec,
      injected,
      ...summary,
      invariants,
      refusedCommands: Object.fromEntries(Object.entries(pool.refusals).sort(([a], [b]) => (a < b ? -1 : 1))),
      reviewerActivity: { ...pool.decisions },
      unstaffedTiers,
      simulatedMs: clock.now() - START,
      wallMs: Math.round(performance.now() - wall0),
    };
  } finally {
    await store.close();
    if (own) await rm(data, { recursive: true, force: true });
  }
}

/**
 * What must hold after any run, faults or not: each episode finished with exactly one outcome (and
 * one `episode.outcome` audit entry), no effect applied twice, every case either closed with a
 * resolution or live with its deadlines in the timer index, and an intact audit chain.
 */
export async function checkInvariants(store: LevelStore, world: LevelWorld): Promise<SimulationReport['invariants']> {
  const details: string[] = [];
  let violations = 0;
  const violate = (s: string) => {
    violations++;
    if (details.length < 50) details.push(s);
  };
  const outcomes = new Map<string, number>();
  let auditEntries = 0;
  for await (const e of store.audit()) {
    auditEntries++;
    if (e.kind === 'episode.outcome') outcomes.set(e.actor, (outcomes.get(e.actor) ?? 0) + 1);
  }
  const live = new Set<string>();
  for await (const l of store.liveIndex()) live.add(l.id);
  const timers = new Map<string, Set<string>>();
  for await (const t of store.dueTimers(Number.MAX_SAFE_INTEGER))
    timers.set(t.actorId, (timers.get(t.actorId) ?? new Set()).add(t.name));
  let episodes = 0;
  let cases = 0;
  for await (const rec of store.actors()) {
    if (rec.kind === 'agent') {
      episodes++;
      const c = (rec.snapshot as { context: AgentContext }).context;
      if (rec.status !== 'done' && rec.status !== 'stopped')
        violate(`episode ${rec.id} did not finish (state ${rec.state})`);
      else if (!c.outcome) violate(`episode ${rec.id} finished without an outcome`);
      const n = outcomes.get(rec.id) ?? 0;
      if (rec.status === 'done' && n !== 1) violate(`episode ${rec.id} has ${n} outcome entries in the audit log`);
    } else {
      cases++;
      const c = (rec.snapshot as { context: CaseContext }).context;
      if (rec.status === 'done') {
        if (!c.resolution) violate(`case ${rec.id} closed without a resolution`);
        if (live.has(rec.id)) violate(`case ${rec.id} is closed but still in the live index`);
      } else if (rec.status === 'active') {
        if (!live.has(rec.id)) violate(`case ${rec.id} is open but not in the live index`);
        const armed = Object.entries(c.timers)
          .filter(([, d]) => d !== undefined)
          .map(([k]) => k);
        if (armed.length === 0 || armed.some((k) => !timers.get(rec.id)?.has(k)))
          violate(`case ${rec.id} is open without its deadlines in the timer index`);
      } else violate(`case ${rec.id} is ${rec.status}`);
    }
  }
  let effects = 0;
  for await (const e of world.entries()) {
    effects++;
    if (e.applications !== 1) violate(`effect ${e.key} (${e.action}) applied ${e.applications} times`);
  }
  const audit = await verifyAudit(store.audit());
  if (!audit.ok) violate(`audit chain broken at entry ${audit.firstBroken}: ${audit.reason}`);
  return { checked: { episodes, cases, effects, auditEntries }, violations, details };
}
