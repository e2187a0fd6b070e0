import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type { GateDecision } from '../../src/contracts/gate-decision.ts';
import { loadModel, type LoadedModel } from '../../src/models/loader.ts';
import { SimulatedClock } from '../../src/base/clock.ts';
import { LevelStore } from '../../src/runtime/level-store.ts';
import { Rng } from '../../src/base/rng.ts';
import { Runtime, type RuntimeOptions } from '../../src/runtime/runtime.ts';
import type { SupervisionStrategy } from '../../src/runtime/supervisor.ts';
import { LevelWorld } from '../../src/runtime/world.ts';
import type { CaseContext } from '../../src/machines/review-case.ts';
import type { AgentContext } from '../../src/machines/agent.ts';

const dirs: string[] = [];
const open: { rt: Runtime; store: LevelStore }[] = [];
afterEach(async () => {
  for (const o of open.splice(0)) {
    await o.rt.close().catch(() => undefined);
    await o.store.close().catch(() => undefined);
  }
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

let model: LoadedModel;

/** A gate that crashes the agent's `evaluateGate` action while `crashes.left > 0` (a bug in a machine action). */
function crashingGate(m: LoadedModel, crashes: { left: number }) {
  return (plan: Parameters<LoadedModel['gate']>[0], obs: Parameters<LoadedModel['gate']>[1]): GateDecision => {
    if (crashes.left > 0) {
      crashes.left--;
      throw new Error('gate bug: cannot read property of undefined');
    }
    return m.gate(plan, obs);
  };
}

async function setup(
  strategy: Partial<SupervisionStrategy>,
  crashes: { left: number },
  extra: Partial<RuntimeOptions> = {},
) {
  model ??= await loadModel('models/refunds');
  const dir = await mkdtemp(join(tmpdir(), 'handoff-sup-'));
  dirs.push(dir);
  const store = await LevelStore.open(dir);
  const clock = new SimulatedClock();
  const rt = await Runtime.open({
    store,
    world: new LevelWorld(store),
    models: [model],
    clock,
    logger: pino({ level: 'silent' }),
    supervision: { agent: strategy },
    gateFor: (m) => crashingGate(m, crashes),
    ...extra,
  });
  open.push({ rt, store });
  return { rt, store, clock, dir };
}

/** Drives the simulated clock until nothing is due or `until` says stop. */
async function drive(
  rt: Runtime,
  clock: SimulatedClock,
  until: () => boolean | Promise<boolean> = () => false,
  maxSteps = 500,
) {
  for (let i = 0; i < maxSteps; i++) {
    await rt.whenIdle();
    if (await until()) return;
    const next = clock.nextDue();
    if (next === undefined) return;
    clock.advanceTo(next);
  }
}

/** The first synthetic refund signal that perceives and plans (so it reaches the gate). */
function signal(i = 0) {
  return model.handlers.synthesize(new Rng(3), i);
}

async function deadLetters(store: LevelStore) {
  const out = [];
  for await (const d of store.deadLetters()) out.push(d);
  return out;
}

async function startGoodEpisode(rt: Runtime, id: string) {
  // Some synthetic orders do not exist (perception fails for good); pick one that reaches the gate.
  for (let i = 0; i < 50; i++) {
    const sig = signal(i);
    try {
      await model.handlers.perceive(sig, { now: Date.UTC(2026, 0, 1), attempt: 1, draw: () => 0.5 });
      await rt.startEpisode('refunds', sig, { episodeId: id });
      return;
    } catch {
      /* try the next one */
    }
  }
  throw new Error('no usable signal');
}

describe('supervision', () => {
  it('restart: a crash restarts the actor from its last snapshot at once; the poison event is dead-lettered; the episode completes', async () => {
    const { rt, store, clock } = await setup({ strategy: 'restart', maxRestarts: 3 }, { left: 1 });
    await startGoodEpisode(rt, 'ep-1');
    await drive(rt, clock, () => false);
    const ep = await rt.get('ep-1');
    expect(rt.stats.crashes).toBe(1);
    expect(rt.stats.restarts).toBe(1);
    expect(ep?.status === 'done' || ep?.state === 'awaitingReview').toBe(true);
    const letters = await deadLetters(store);
    expect(letters).toHaveLength(1);
    expect(letters[0]).toMatchObject({ actorId: 'ep-1', code: 'actor.crashed' });
    expect(letters[0]!.event.type).toBe('plan.done');
  });

  it('backoff: restarts wait an exponentially growing delay with jitter; commands meanwhile get actor.restarting', async () => {
    const { rt, clock } = await setup(
      { strategy: 'backoff', maxRestarts: 5, backoff: { minMs: 1000, maxMs: 60_000, jitter: 0.2 } },
      { left: 3 },
    );
    await startGoodEpisode(rt, 'ep-1');
    const restartTimes: number[] = [];
    let crashes = 0;
    for (let i = 0; i < 200 && rt.stats.restarts < 3; i++) {
      await rt.whenIdle();
      if (rt.stats.crashes > crashes) {
        crashes = rt.stats.crashes;
        restartTimes.push(clock.now());
        // While the actor restarts, sending it anything is refused with a retry hint.
        await expect(rt.send('ep-1', { type: 'timer.retry', dueAt: 0, at: clock.now() })).rejects.toMatchObject({
          code: 'actor.restarting',
        });
      }
      const next = clock.nextDue();
      if (next === undefined) break;
      clock.advanceTo(next);
    }
    await drive(rt, clock);
    expect(rt.stats.crashes).toBe(3);
    expect(rt.stats.restarts).toBe(3);
    expect(restartTimes).toHaveLength(3);
    const ep = await rt.get('ep-1');
    expect(ep?.status === 'done' || ep?.state === 'awaitingReview').toBe(true);
  });

  it('escalate: the first crash suspends the actor and opens an operator case; approving it resumes the actor', async () => {
    const crashes = { left: 1 };
    const { rt, store, clock } = await setup({ strategy: 'escalate' }, crashes);
    await startGoodEpisode(rt, 'ep-1');
    await drive(rt, clock, async () => (await findOperatorCase(store, 'ep-1')) !== undefined);
    expect(rt.stats.crashes).toBe(1);
    expect(rt.stats.restarts).toBe(0);
    const operatorCase = await findOperatorCase(store, 'ep-1');
    expect(operatorCase).toBeDefined();
    const c = (await rt.get(operatorCase!))!.context as CaseContext;
    expect(c.tiers[0]!.roles).toEqual(['operator']);
    expect(c.plan.rationale).toContain('crashed 1 times');
    // Events sent to a suspended actor are dead-lettered, not lost.
    await expect(rt.send('ep-1', { type: 'timer.retry', dueAt: 0, at: clock.now() })).rejects.toMatchObject({
      code: 'actor.suspended',
    });
    // The suspension is durable: a restarted node keeps the actor suspended.
    await rt.close();
    const rt2 = await Runtime.open({
      store,
      world: new LevelWorld(store),
      models: [model],
      clock,
      logger: pino({ level: 'silent' }),
      supervision: { agent: { strategy: 'escalate' } },
      gateFor: (m) => crashingGate(m, crashes),
    });
    open.push({ rt: rt2, store });
    await expect(rt2.send('ep-1', { type: 'timer.retry', dueAt: 0, at: clock.now() })).rejects.toMatchObject({
      code: 'actor.suspended',
    });
    await escalateResume(rt2, store, clock, operatorCase!);
  });

  async function escalateResume(rt: Runtime, store: LevelStore, clock: SimulatedClock, operatorCase: string) {
    const operator = { id: 'ops-1', roles: ['operator'] };
    await rt.command({
      type: 'handoff.case.claim',
      schemaVersion: 1,
      commandId: 'c1',
      caseId: operatorCase,
      reviewer: operator,
    });
    await rt.command({
      type: 'handoff.case.approve',
      schemaVersion: 1,
      commandId: 'c2',
      caseId: operatorCase,
      reviewer: operator,
      comment: 'gate fixed, resume',
    });
    await drive(rt, clock);
    const ep = await rt.get('ep-1');
    expect(ep?.status === 'done' || ep?.state === 'awaitingReview').toBe(true);
    const kinds = [];
    for await (const e of store.audit()) if (e.actor === 'ep-1') kinds.push(e.kind);
    expect(kinds).toContain('actor.suspended');
    expect(kinds).toContain('actor.resumed');
  }

  it('restart limit: more than maxRestarts crashes in the window escalate; rejecting the operator case stops the episode as failed', async () => {
    const { rt, store, clock } = await setup(
      { strategy: 'restart', maxRestarts: 2, windowMs: 3_600_000 },
      { left: 1000 },
    );
    await startGoodEpisode(rt, 'ep-1');
    await drive(rt, clock, async () => (await findOperatorCase(store, 'ep-1')) !== undefined);
    expect(rt.stats.crashes).toBe(3);
    expect(rt.stats.restarts).toBe(2);
    const operatorCase = await findOperatorCase(store, 'ep-1');
    expect(operatorCase).toBeDefined();
    const operator = { id: 'ops-1', roles: ['operator'] };
    await rt.command({
      type: 'handoff.case.claim',
      schemaVersion: 1,
      commandId: 'c1',
      caseId: operatorCase,
      reviewer: operator,
    });
    await rt.command({
      type: 'handoff.case.reject',
      schemaVersion: 1,
      commandId: 'c2',
      caseId: operatorCase,
      reviewer: operator,
      reason: 'poisoned input, drop it',
    });
    await drive(rt, clock);
    const ep = await rt.get('ep-1');
    expect(ep?.status).toBe('stopped');
    expect((ep?.context as AgentContext).outcome).toBe('failed');
    expect(await deadLetters(store)).toHaveLength(3);
  });

  it('dead letters are listed and replayed: delivered ones are removed', async () => {
    const crashes = { left: 1 };
    const { rt, store, clock } = await setup({ strategy: 'escalate' }, crashes);
    await startGoodEpisode(rt, 'ep-1');
    await drive(rt, clock, async () => (await findOperatorCase(store, 'ep-1')) !== undefined);
    const letters = await deadLetters(store);
    expect(letters.map((l) => l.event.type)).toEqual(['plan.done']);
    // Resume the actor through its operator case, then replay: the recorded plan.done is stale by
    // now (the restarted actor planned again), so the replay is refused and the letter kept.
    const operatorCase = (await findOperatorCase(store, 'ep-1'))!;
    const operator = { id: 'ops-1', roles: ['operator'] };
    await rt.command({
      type: 'handoff.case.claim',
      schemaVersion: 1,
      commandId: 'c1',
      caseId: operatorCase,
      reviewer: operator,
    });
    await rt.command({
      type: 'handoff.case.approve',
      schemaVersion: 1,
      commandId: 'c2',
      caseId: operatorCase,
      reviewer: operator,
    });
    await drive(rt, clock);
    const replay = await rt.replayDeadLetters();
    expect(replay.delivered + replay.failed.length).toBe(1);
    // A letter that is deliverable goes through and is removed.
    const view = await rt.get('ep-1');
    if (view?.state === 'awaitingReview') {
      const c = view.context as AgentContext;
      await store.putDeadLetter({
        id: 'manual-1',
        at: clock.now(),
        actorId: 'ep-1',
        event: { type: 'case.opened', effectId: c.effect?.id ?? 'none', caseId: c.caseIds[0] ?? 'x' },
        reason: 'test',
        code: 'test',
      });
    }
    const second = await rt.replayDeadLetters((id) => id === 'manual-1');
    expect(second.failed.every((f) => f.id === 'manual-1')).toBe(true);
  });
});

describe('supervision: a corrupt snapshot', () => {
  it('does not keep the node from starting; the actor is escalated to an operator case', async () => {
    const { rt, store, clock } = await setup({ strategy: 'escalate' }, { left: 0 });
    await startGoodEpisode(rt, 'ep-1');
    await drive(rt, clock);
    await rt.close();
    // An actor with an effect in flight (loaded eagerly at start) whose snapshot names a state the
    // machine does not have.
    const rec = (await store.load('ep-1'))!;
    const ctx = (rec.snapshot as { context: Record<string, unknown> }).context;
    await store.db.batch([
      {
        type: 'put',
        key: 'a:ep-bad',
        value: {
          ...rec,
          id: 'ep-bad',
          status: 'active',
          state: 'noSuchState',
          snapshot: {
            ...(rec.snapshot as object),
            status: 'active',
            value: 'noSuchState',
            context: { ...ctx, episodeId: 'ep-bad', effect: { id: 'x', kind: 'perceive', attempt: 1 } },
          },
        },
      },
      { type: 'put', key: 'l:ep-bad', value: { kind: 'agent', model: 'refunds', hot: true } },
    ] as never);
    const rt2 = await Runtime.open({
      store,
      world: new LevelWorld(store),
      models: [model],
      clock,
      logger: pino({ level: 'silent' }),
      supervision: { agent: { strategy: 'escalate' } },
    });
    open.push({ rt: rt2, store });
    await drive(rt2, clock, async () => (await findOperatorCase(store, 'ep-bad')) !== undefined);
    expect(await findOperatorCase(store, 'ep-bad')).toBeDefined();
    await expect(rt2.send('ep-bad', { type: 'timer.retry', dueAt: 0, at: clock.now() })).rejects.toMatchObject({
      code: 'actor.suspended',
    });
  });
});

async function findOperatorCase(store: LevelStore, target: string): Promise<string | undefined> {
  for await (const rec of store.actors('case')) if (rec.id.startsWith(`${target}.operator-`)) return rec.id;
  return undefined;
}
