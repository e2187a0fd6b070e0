import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type LlmPlannerOptions } from '../../../src/actors/planners/llm-planner.ts';
import type { AgentContext } from '../../../src/machines/agent.ts';
import type { CaseContext } from '../../../src/machines/review-case.ts';
import { SimulatedClock } from '../../../src/base/clock.ts';
import { LevelStore } from '../../../src/runtime/level-store.ts';
import { Runtime } from '../../../src/runtime/runtime.ts';
import { LevelWorld } from '../../../src/runtime/world.ts';
import { type Script, fakeLlm, toolReply, model, signal, ctx, goodCalls, planner, gateOf } from './fixtures.ts';

// -------------------------------------------------------------------------------------------------
// On the real runtime
// -------------------------------------------------------------------------------------------------

describe('LLM planner on the runtime', () => {
  const dirs: string[] = [];
  afterAll(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  async function runEpisode(s: Script, over: Partial<LlmPlannerOptions['config']> = {}) {
    fakeLlm.script = s;
    const dir = await mkdtemp(join(tmpdir(), 'handoff-llm-'));
    dirs.push(dir);
    const store = await LevelStore.open(dir);
    const clock = new SimulatedClock(ctx.now);
    const llm = planner({ maxRepairs: 1, maxRetries: 0, ...over }, { clock });
    const world = new LevelWorld(store);
    const rt = await Runtime.open({
      store,
      world,
      models: [model],
      clock,
      planners: { refunds: llm },
      gateFor: gateOf,
      timerHorizonMs: 86_400_000,
    });
    try {
      await rt.startEpisode('refunds', signal, { episodeId: 'ep-1' });
      for (let i = 0; i < 200; i++) {
        await rt.whenIdle();
        await new Promise((r) => setTimeout(r, 2));
        const ep = await rt.get('ep-1');
        if (ep?.status === 'done' || ep?.state === 'awaitingReview') break;
        const next = clock.nextDue();
        if (next !== undefined) clock.advanceTo(next);
      }
      await rt.whenIdle();
      const agent = (await rt.get('ep-1'))!;
      const kase =
        agent.state === 'awaitingReview'
          ? ((await rt.get('ep-1.case-1'))?.context as CaseContext | undefined)
          : undefined;
      const effects = await world.lookup('ep-1/0');
      return { agent, context: agent.context as AgentContext, kase, effects };
    } finally {
      await rt.close();
      await store.close();
    }
  }

  it('a malformed LLM never gets an action executed: the episode waits in review with the failure shown', async () => {
    const { agent, context, kase, effects } = await runEpisode(() => ({ body: toolReply(goodCalls().slice(0, 2)) }));
    expect(agent.state).toBe('awaitingReview');
    expect(context.results).toEqual([]);
    expect(effects).toBeUndefined();
    expect(kase?.plan.confidence).toBe(0);
    expect(kase?.decision).toMatchObject({ outcome: 'review', ruleId: 'planner-fallback' });
    expect(kase?.plan.rationale).toMatch(/submit_plan was not called/);
  });

  it('an endpoint that rejects the request fails the episode with the cause', async () => {
    const { agent, context } = await runEpisode(() => ({
      status: 400,
      body: { error: { message: "model 'test-model' not found, try pulling it first" } },
    }));
    expect(agent.status).toBe('done');
    expect(context.outcome).toBe('failed');
    expect(context.error?.message).toMatch(/rejected the request \(400\): model 'test-model' not found/);
    expect(context.results).toEqual([]);
  });

  it('a good reply on the runtime: planned by the LLM, gated by the policy', async () => {
    const { context } = await runEpisode(() => ({ body: toolReply(goodCalls()) }));
    expect(context.plan?.planner).toBe('refunds/llm:test-model@1.0.0');
    expect(context.decision?.outcome).toBe(model.gate(context.plan!, context.observation!).outcome);
  });
});
