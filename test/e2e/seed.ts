import type { Plan } from '../../src/contracts/plan.ts';
import { rulePlanner, type Planner } from '../../src/actors/planners/planner.ts';
import type { CaseContext } from '../../src/machines/review-case.ts';
import { loadModel, type LoadedModel } from '../../src/models/loader.ts';
import { SimulatedClock } from '../../src/base/clock.ts';
import { serveCommands } from '../../src/runtime/command-server.ts';
import { LevelStore } from '../../src/runtime/level-store.ts';
import { Rng } from '../../src/base/rng.ts';
import { Runtime } from '../../src/runtime/runtime.ts';
import { LevelWorld } from '../../src/runtime/world.ts';
import { ReviewerPool } from '../../src/sim/reviewers.ts';
import { HandoffClient } from '../../src/transport/client.ts';

export interface OpenCase {
  id: string;
  episodeId: string;
  tier: number;
  actions: string[];
  subject: string;
  requestedBy: string | null;
  claimedBy: string | null;
  riskScore: number;
  /** Arguments of the plan's actions (unmasked: the seed reads the store). */
  args: Record<string, unknown>[];
}

async function drain(rt: Runtime, pool?: ReviewerPool): Promise<void> {
  do {
    await rt.whenIdle();
    await new Promise((r) => setImmediate(r));
  } while (rt.busy > 0 || (pool?.busy ?? 0) > 0);
}

async function openCases(store: LevelStore): Promise<OpenCase[]> {
  const out: OpenCase[] = [];
  for await (const rec of store.liveActors()) {
    if (rec.kind !== 'case' || rec.status !== 'active') continue;
    const c = (rec.snapshot as { context: CaseContext }).context;
    out.push({
      id: rec.id,
      episodeId: c.episodeId,
      tier: c.tier,
      actions: c.plan.actions.map((a) => a.type),
      subject: c.observation.subject,
      requestedBy: c.requestedBy,
      claimedBy: c.claim?.reviewer ?? null,
      riskScore: c.decision.riskScore,
      args: c.plan.actions.map((a) => a.args),
    });
  }
  return out;
}

/**
 * A data folder with `hours` of review history up to now: episodes arriving on a simulated clock,
 * worked by simulated reviewers (ids `sim-*`, never the model's people, so the console's users start
 * with a clean slate), then `fresh` more episodes arriving at the end that nobody has touched yet.
 * Everything goes through the real runtime, so the store is exactly what a running node leaves.
 */
export async function seedHistory(opts: {
  data: string;
  model: string;
  hours: number;
  arrivalMs: number;
  seed: number;
  fresh: number;
  reviewers?: number;
}): Promise<{ open: OpenCase[]; episodes: number }> {
  const store = await LevelStore.open(opts.data);
  const model = await loadModel(opts.model);
  const end = Date.now();
  const clock = new SimulatedClock(end - opts.hours * 3600_000);
  const rt = await Runtime.open({
    store,
    world: new LevelWorld(store),
    models: [model],
    clock,
    seed: String(opts.seed),
  });
  const server = serveCommands(rt);
  const client = new HandoffClient(rt.transport, { namespace: rt.namespace });
  const anonymous: LoadedModel = { ...model, config: { ...model.config, reviewers: [] } };
  const pool = new ReviewerPool({
    runtime: client,
    transport: rt.transport,
    namespace: rt.namespace,
    model: anonymous,
    clock,
    rng: new Rng(opts.seed * 31),
    count: opts.reviewers ?? 7,
  });
  pool.readPlansWith(
    async (id) => ((await rt.get(id))?.context as CaseContext | undefined)?.plan ?? (null as Plan | null),
  );
  const signals = new Rng(opts.seed);
  const gaps = new Rng(opts.seed + 1);
  let n = 0;
  for (let t = clock.now(); ;) {
    t += Math.round(-Math.log(1 - gaps.next()) * opts.arrivalMs);
    if (t >= end - 60_000) break;
    const i = n++;
    const signal = model.handlers.synthesize(signals, i);
    clock.setTimeout(
      () =>
        void rt
          .startEpisode(model.name, signal, { episodeId: `hist-${String(i + 1).padStart(5, '0')}` })
          .catch(() => undefined),
      t - clock.now(),
    );
  }
  for (;;) {
    await drain(rt, pool);
    const next = clock.nextDue();
    if (next === undefined || next > end) break;
    clock.advanceTo(next);
  }
  pool.stop();
  // New arrivals nobody has looked at yet.
  const fresh = new Rng(opts.seed + 99);
  for (let i = 0; i < opts.fresh; i++) {
    const signal = model.handlers.synthesize(fresh, 10_000 + i);
    void rt
      .startEpisode(model.name, signal, { episodeId: `new-${String(i + 1).padStart(4, '0')}` })
      .catch(() => undefined);
  }
  // Retries of transient perception failures are a few hundred ms of simulated time away.
  for (let k = 0; k < 200; k++) {
    await drain(rt);
    const next = clock.nextDue();
    if (next === undefined || next > end + 30_000) break;
    clock.advanceTo(next);
  }
  await drain(rt);
  const open = await openCases(store);
  server.unsubscribe();
  await rt.close();
  await store.close();
  return { open, episodes: n + opts.fresh };
}

/** A planner that always asks for review at tier 1 (low confidence, moderate risk): every episode opens a case. */
const reviewEverything: Planner = {
  name: 'e2e-review-everything',
  async plan(model, episodeId, observation, ctx) {
    const p = await rulePlanner.plan(model, episodeId, observation, ctx);
    return { ...p, confidence: 0.6, risk: { ...p.risk, score: Math.min(p.risk.score, 0.45) } };
  },
};

/** `count` open cases (tier 1), created through the runtime with a planner that sends everything to review. */
export async function seedOpenCases(opts: {
  data: string;
  model: string;
  count: number;
  seed: number;
}): Promise<{ open: number; ms: number }> {
  const t0 = performance.now();
  const store = await LevelStore.open(opts.data);
  const model = await loadModel(opts.model);
  const clock = new SimulatedClock(Date.now() - 5 * 60_000);
  const rt = await Runtime.open({
    store,
    world: new LevelWorld(store),
    models: [model],
    clock,
    seed: String(opts.seed),
    planners: { [model.name]: reviewEverything },
    maxResident: 2_000,
  });
  let opened = 0;
  rt.onTransition((n) => {
    if (n.kind === 'case' && n.seq === 0) opened++;
  });
  const signals = new Rng(opts.seed);
  // Some episodes never open a case (order not found, denied): start batches until enough did.
  for (let j = 0; opened < opts.count;) {
    const starts = [];
    const size = Math.min(500, Math.ceil((opts.count - opened) * 1.06));
    for (const end = j + size; j < end; j++)
      starts.push(
        rt
          .startEpisode(model.name, model.handlers.synthesize(signals, j), {
            episodeId: `bulk-${String(j + 1).padStart(6, '0')}`,
          })
          .catch(() => undefined),
      );
    await Promise.all(starts);
    for (let k = 0; k < 20; k++) {
      await drain(rt);
      const next = clock.nextDue();
      if (next === undefined || next > Date.now()) break;
      clock.advanceTo(next);
    }
  }
  await drain(rt);
  let open = 0;
  for await (const e of store.liveIndex()) if (e.kind === 'case') open++;
  await rt.close();
  await store.close();
  return { open, ms: Math.round(performance.now() - t0) };
}
