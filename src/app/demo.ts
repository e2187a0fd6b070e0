import { readdir } from 'node:fs/promises';
import { resolve } from 'node:path';
import { ensureFolder } from '../base/data-folder.ts';
import { HandoffError } from '../contracts/errors.ts';
import type { Plan } from '../contracts/plan.ts';
import type { CaseContext } from '../machines/review-case.ts';
import { loadModel } from '../models/loader.ts';
import { SimulatedClock } from '../base/clock.ts';
import { serveCommands } from '../runtime/command-server.ts';
import { caseQueueOf } from '../runtime/cell.ts';
import { LevelStore } from '../runtime/level-store.ts';
import type { Keyring } from '../security/keyring.ts';
import { Rng } from '../base/rng.ts';
import type { FaultSpec } from '../base/faults.ts';
import { assembleReasoning } from '../runtime/reasoning.ts';
import { Runtime, type RuntimeOptions } from '../runtime/runtime.ts';
import type { Transport } from '../transport/transport.ts';
import { LevelWorld } from '../runtime/world.ts';
import { HandoffClient } from '../transport/client.ts';
import { ReviewerPool } from '../sim/reviewers.ts';
import { summarize, type RunSummary } from '../sim/summary.ts';
import type { ProcessTelemetry } from '../telemetry/process.ts';

export interface DemoOptions {
  /** Model folder. @default 'models/refunds' */
  model: string;
  /** Traces and metrics of this process (`OTEL_*`, `--metrics`); spans carry the simulated times. @default none */
  telemetry?: ProcessTelemetry | undefined;
  /** Episodes in the whole run. @default 1000 */
  cases: number;
  /** Data folder (LevelDB). */
  data: string;
  /** Simulated reviewers. @default 12 */
  reviewers: number;
  /** @default 1 */
  seed: number;
  /** Continue the unfinished run in `data` instead of starting one. */
  resume: boolean;
  /**
   * The run options the user gave explicitly (the CLI's non-default options). A resumed run keeps the
   * options it started with, so one of these that differs is refused rather than ignored.
   */
  given?: readonly ResumeOption[];
  /** Mean simulated time between two arriving episodes. @default 90 s */
  arrivalMs?: number;
  /** Transient failures injected into perceive / plan / execute / compensate / store steps. */
  faults?: FaultSpec;
  /** fsync every batch (LevelStoreOptions.sync). @default `HANDOFF_STORE_SYNC`, else false */
  sync?: boolean;
  /** Data keys: seal the store's values at rest (docs/encryption.md). @default undefined (plaintext) */
  keyring?: Keyring | undefined;
  /**
   * Drift-aware gating. Off by default in the demo: its simulated reviewers modify or reject about a
   * third of cases at random, which a drift monitor rightly reads as a planner going wrong.
   */
  drift?: boolean;
  onProgress?: (p: DemoProgress) => void;
  /** An inspection stream (src/inspect): hooked into the runtime, publishing on its transport. */
  inspection?: { inspect: NonNullable<RuntimeOptions['inspect']>; attach(transport: Transport): unknown };
}

export interface DemoProgress {
  finished: number;
  total: number;
  simulatedAt: number;
  openCases: number;
}

export interface DemoSummary extends RunSummary {
  model: string;
  seed: number;
  reviewers: number;
  /** Episodes finished by this process per wall-clock second. */
  episodesPerSecond: number;
  wallMs: number;
  simulatedMs: number;
  resumed: boolean;
  reviewerActivity: Record<string, number>;
  refusedCommands: Record<string, number>;
}

interface DemoMeta {
  model: string;
  cases: number;
  seed: number;
  reviewers: number;
  arrivalMs: number;
  startedAt: number;
  runs: number;
}

const START = Date.UTC(2026, 0, 5, 8, 0, 0);

/** Options fixed when a run starts: `--resume` continues with the stored ones. */
export type ResumeOption = 'model' | 'cases' | 'seed' | 'reviewers' | 'arrivalMs';

const RESUME_FLAGS: Record<ResumeOption, string> = {
  model: '--model',
  cases: '--cases',
  seed: '--seed',
  reviewers: '--reviewers',
  arrivalMs: '--arrival-ms',
};

/** A resumed run with an explicitly different model, size or seed is a mistake, not a request: refuse it. */
function refuseChangedOptions(meta: DemoMeta, opts: DemoOptions): void {
  const same = (k: ResumeOption): boolean => {
    if (k !== 'model') return meta[k] === opts[k];
    return meta.model === opts.model || resolve(meta.model) === resolve(opts.model);
  };
  const changed = (opts.given ?? []).filter((k) => opts[k] !== undefined && !same(k));
  if (changed.length === 0) return;
  const list = changed
    .map((k) => `${RESUME_FLAGS[k]} ${String(opts[k])} (the run has ${String(meta[k] ?? '')})`)
    .join(', ');
  throw new HandoffError(
    'demo.resume_mismatch',
    `--resume continues the run in ${opts.data} as it started; ${list}: drop ${changed.length > 1 ? 'them' : 'it'} to resume, or pass --fresh to start a new run`,
  );
}

/**
 * The demo: N episodes of a model on the embedded runtime, on a simulated clock, with simulated
 * reviewers who claim, go silent, miss deadlines and decide. All state lives in the data folder, so a
 * run killed at any point continues with `resume` and its totals still add up.
 */
export async function runDemo(opts: DemoOptions): Promise<DemoSummary> {
  const wall0 = performance.now();
  await ensureFolder(opts.data);
  const empty = (await readdir(opts.data)).length === 0;
  if (!opts.resume && !empty) {
    throw new HandoffError(
      'demo.data_not_empty',
      `data folder ${opts.data} is not empty: pass --resume to continue its run, --fresh to empty it and start a new one, or choose another --data`,
    );
  }
  const store = await LevelStore.open(opts.data, {
    faultRate: opts.faults?.store ?? 0,
    faultSeed: opts.seed,
    keyring: opts.keyring,
    ...(opts.sync !== undefined ? { sync: opts.sync } : {}),
  });
  try {
    let meta = await store.getMeta<DemoMeta>('demo');
    if (opts.resume && !meta)
      throw new HandoffError('demo.nothing_to_resume', `data folder ${opts.data} holds no demo run to resume`);
    if (opts.resume && meta) refuseChangedOptions(meta, opts);
    if (!meta) {
      meta = {
        model: opts.model,
        cases: opts.cases,
        seed: opts.seed,
        reviewers: opts.reviewers,
        arrivalMs: opts.arrivalMs ?? 90_000,
        startedAt: START,
        runs: 0,
      };
    }
    meta = { ...meta, runs: meta.runs + 1 };
    for (let attempt = 1; ; attempt++) {
      try {
        await store.putMeta('demo', meta);
        break;
      } catch (err) {
        if (!(err instanceof HandoffError && err.code === 'store.write_failed') || attempt >= 20) throw err;
      }
    }

    const model = await loadModel(meta.model);
    const started = new Set<string>();
    let lastAt = meta.startedAt;
    for await (const rec of store.actors()) {
      if (rec.kind === 'agent') started.add(rec.id);
      lastAt = Math.max(lastAt, rec.updatedAt);
    }
    const clock = new SimulatedClock(Math.max(lastAt, (await store.getMeta<number>('clock')) ?? 0, meta.startedAt));
    const world = new LevelWorld(store);
    const reasoning = await assembleReasoning({ models: [model], store, clock, drift: opts.drift ?? false });
    const rt = await Runtime.open({
      store,
      world,
      models: [model],
      clock,
      seed: String(meta.seed),
      planners: reasoning.planners,
      gateFor: reasoning.gateFor,
      ...(opts.faults ? { faults: opts.faults } : {}),
      ...(opts.inspection ? { inspect: opts.inspection.inspect } : {}),
      ...(opts.telemetry?.hook ? { telemetry: opts.telemetry.hook } : {}),
    });
    await opts.telemetry?.attach(rt);
    opts.inspection?.attach(rt.transport);
    reasoning.attach(rt);
    const server = serveCommands(rt);
    const client = new HandoffClient(rt.transport, { namespace: rt.namespace });
    const pool = new ReviewerPool({
      runtime: client,
      transport: rt.transport,
      namespace: rt.namespace,
      model,
      clock,
      rng: new Rng(meta.seed * 7919 + meta.runs),
      count: meta.reviewers,
      run: meta.runs,
    });
    pool.readPlansWith(
      async (id) => ((await rt.get(id))?.context as CaseContext | undefined)?.plan ?? (null as Plan | null),
    );

    let finished = 0;
    let finishedHere = 0;
    const openCases = new Set<string>();
    for await (const rec of store.actors()) {
      if (rec.kind === 'agent' && rec.status === 'done') finished++;
      if (rec.kind === 'case' && rec.status === 'active') {
        openCases.add(rec.id);
        const c = (rec.snapshot as { context: CaseContext }).context;
        pool.observe({
          id: rec.id,
          kind: 'case',
          model: rec.model,
          seq: rec.seq,
          at: rec.updatedAt,
          event: 'resume',
          state: rec.state,
          status: 'active',
          queue: caseQueueOf(c),
        });
      }
    }
    rt.onTransition((n) => {
      if (n.kind === 'agent' && n.status === 'done') {
        finished++;
        finishedHere++;
      }
      if (n.kind === 'case') {
        if (n.status === 'active') openCases.add(n.id);
        else openCases.delete(n.id);
      }
    });

    // Arrivals: the same signals and times on every run of this seed; resumed runs skip started ones.
    const signals = new Rng(meta.seed);
    const gaps = new Rng(meta.seed + 1);
    let t = meta.startedAt;
    // Arrivals are scheduled one at a time (the next when one arrives), so a run's memory does not
    // grow with --cases; the signals and times are drawn in the same order as before.
    const starts = new Set<Promise<unknown>>();
    let next = 0;
    const scheduleNext = (): void => {
      while (next < meta.cases) {
        const i = next++;
        const signal = model.handlers.synthesize(signals, i);
        t += Math.round(-Math.log(1 - gaps.next()) * meta.arrivalMs);
        const id = `ep-${String(i + 1).padStart(6, '0')}`;
        if (started.has(id)) continue;
        const start = (attempt: number): void => {
          const p: Promise<unknown> = rt.startEpisode(model.name, signal, { episodeId: id }).catch((err: unknown) => {
            // A lost write (injected store fault) is retried like a client would; anything else is a bug.
            if (err instanceof HandoffError && err.code === 'store.write_failed' && attempt < 20)
              clock.setTimeout(() => start(attempt + 1), 1000);
            else rt.log.error({ err, episode: id }, 'episode did not start');
          });
          starts.add(p);
          void p.finally(() => starts.delete(p));
        };
        clock.setTimeout(
          () => {
            start(1);
            scheduleNext();
          },
          Math.max(0, t - clock.now()),
        );
        return;
      }
    };
    scheduleNext();

    // A damaged database (a corrupt block met by any read) ends the run: it is not run on.
    let damage: HandoffError | undefined = store.damage;
    store.onDamaged = (err) => (damage = err);
    let steps = 0;
    let lastProgress = 0;
    for (;;) {
      do {
        await rt.whenIdle();
        await new Promise((r) => setImmediate(r));
      } while ((rt.busy > 0 || pool.busy > 0) && !damage);
      if (damage) break;
      if (finished >= meta.cases && openCases.size === 0) break;
      // One timer at a time, settling in between: the same seed gives the same run.
      if (!clock.fireNext()) break;
      // Best effort: resume also derives the clock from the actors' last update times.
      if (++steps % 2000 === 0) store.putMeta('clock', clock.now()).catch(() => undefined);
      const now = performance.now();
      if (opts.onProgress && now - lastProgress > 200) {
        lastProgress = now;
        opts.onProgress({ finished, total: meta.cases, simulatedAt: clock.now(), openCases: openCases.size });
      }
    }
    if (damage) {
      pool.stop();
      server.unsubscribe();
      await rt.close().catch(() => undefined);
      await reasoning.close().catch(() => undefined);
      throw damage;
    }
    await Promise.all([...starts]);
    opts.onProgress?.({ finished, total: meta.cases, simulatedAt: clock.now(), openCases: openCases.size });
    await store.putMeta('clock', clock.now()).catch(() => undefined);
    pool.stop();
    server.unsubscribe();
    await rt.close();
    await reasoning.close();

    const summary = await summarize(
      store,
      world,
      model.config.review.tiers.length,
      (t) => model.config.actions[t]?.compensation ?? null,
    );
    const wallMs = Math.round(performance.now() - wall0);
    return {
      model: model.name,
      seed: meta.seed,
      reviewers: pool.reviewers.length,
      ...summary,
      episodesPerSecond: Math.round((finishedHere / (wallMs / 1000)) * 10) / 10,
      wallMs,
      simulatedMs: clock.now() - meta.startedAt,
      resumed: opts.resume,
      reviewerActivity: { ...pool.decisions },
      refusedCommands: { ...pool.refusals },
    };
  } finally {
    await store.close();
  }
}
