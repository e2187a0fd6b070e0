import { afterAll, describe, expect, it } from 'vitest';
import { assembleReasoning } from '../../src/runtime/reasoning.ts';
import { cleanup, cmd, collect, LEAD, openEnv, refunds, reviewSignals, settle, drive } from './helpers.ts';
import { LevelStore } from '../../src/runtime/level-store.ts';

afterAll(cleanup);

async function operatorCase(store: LevelStore): Promise<string | undefined> {
  for await (const rec of store.actors('case')) if (rec.id.startsWith('drift.refunds.operator-')) return rec.id;
  return undefined;
}

describe('drift: the tightened gate is reported to an operator through a case', () => {
  it('reviewers overriding the agent tighten the gate; an operator case opens; approving it relaxes the gate', async () => {
    const model = await refunds();
    // The reasoning layer needs the store and the runtime needs the reasoning layer's gate: the
    // monitor reaches the store through this handle, filled in once the environment is open.
    let store: LevelStore | undefined;
    const meta = {
      getMeta: <T>(k: string) => (store ? store.getMeta<T>(k) : Promise.resolve(undefined)),
      putMeta: (k: string, v: unknown) => store!.putMeta(k, v),
    } as unknown as LevelStore;
    const { SimulatedClock } = await import('../../src/base/clock.ts');
    const clock = new SimulatedClock(Date.UTC(2026, 0, 5, 9));
    const reasoning = await assembleReasoning({ models: [model], store: meta, clock, drift: true });
    const env = await openEnv({ runtime: { planners: reasoning.planners, gateFor: reasoning.gateFor, clock } });
    store = env.store;
    env.clock = clock;
    reasoning.attach(env.rt);
    const signals = (await reviewSignals({ tier: 1, requestedBy: 'none' })).slice(0, 30);
    expect(signals.length).toBeGreaterThanOrEqual(25);
    let n = 0;
    for (const s of signals) {
      const id = `ep-drift-${++n}`;
      await env.rt.startEpisode('refunds', s.signal, { episodeId: id });
      await settle(env.rt);
      const caseId = `${id}.case-1`;
      if (!(await env.rt.get(caseId))) continue;
      await env.rt.command(cmd('claim', caseId, LEAD));
      await env.rt.command(cmd('reject', caseId, LEAD, { reason: 'wrong refund' }));
      await settle(env.rt);
      if (await operatorCase(env.store)) break;
    }
    const opCase = await operatorCase(env.store);
    expect(opCase, 'an operator case about the drift').toBeDefined();
    const view = await env.rt.get(opCase!);
    expect(view?.state).toBe('queued');
    const audit = await collect(env.store.audit());
    expect(audit.some((e) => e.kind === 'drift.tightened')).toBe(true);

    const operator = { id: 'ops-1', roles: ['operator'] };
    await env.rt.command(cmd('claim', opCase!, operator));
    await env.rt.command(cmd('approve', opCase!, operator, { comment: 'planner fixed' }));
    await drive(
      env.rt,
      env.clock,
      async () => (await collect(env.store.audit())).some((e) => e.kind === 'drift.relaxed'),
      { maxSteps: 20 },
    );
    const after = await collect(env.store.audit());
    expect(after.some((e) => e.kind === 'drift.relaxed')).toBe(true);
    await reasoning.close();
  }, 60_000);
});
