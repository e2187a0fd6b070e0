/**
 * A planner given to `Runtime.open({ planners })` is code the runtime does not own: the plans it
 * returns are checked against the plan contract and each action's argument schema before the
 * episode takes them (src/runtime/effects.ts). On the real runtime (LevelDB on disk, the refunds
 * model, a signal its gate lets run on its own):
 * - arguments that fail their schema: the episode fails at planning with `contract.invalid` naming
 *   the field, and no action reaches the world;
 * - fields neither schema knows: stripped, and the action runs with what the schema kept;
 * - the built-in planners say they check their own plans; an LLM planner whose fallback does not
 *   say so is checked like any other.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LlmPlanner } from '../../src/actors/planners/llm-planner.ts';
import { rulePlanner, type Planner } from '../../src/actors/planners/planner.ts';
import type { Plan } from '../../src/contracts/plan.ts';
import type { AgentContext } from '../../src/machines/agent.ts';
import { LevelStore } from '../../src/runtime/level-store.ts';
import { Runtime } from '../../src/runtime/runtime.ts';
import { LevelWorld } from '../../src/runtime/world.ts';
import { autoSignals, benchModel } from '../../bench/lib/workload.ts';

/** The rule planner's plan, changed by `edit` (a planner that does not check its own plans). */
const editing = (edit: (p: Plan) => unknown): Planner => ({
  name: 'editing',
  async plan(model, episodeId, observation, ctx) {
    return edit(await rulePlanner.plan(model, episodeId, observation, ctx)) as Plan;
  },
});

describe('plans from a planner the runtime does not own are checked before they run', () => {
  const dirs: string[] = [];
  afterAll(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  async function runEpisode(planner: Planner) {
    const model = await benchModel();
    const [auto] = await autoSignals(model);
    const dir = await mkdtemp(join(tmpdir(), 'handoff-custom-planner-'));
    dirs.push(dir);
    const store = await LevelStore.open(dir);
    const world = new LevelWorld(store);
    const rt = await Runtime.open({ store, world, models: [model], planners: { [model.name]: planner } });
    try {
      await rt.startEpisode(model.name, auto!.signal, { episodeId: 'ep-1' });
      for (let i = 0; i < 500; i++) {
        await rt.whenIdle();
        const ep = await rt.get('ep-1');
        if (ep && ep.status !== 'active') break;
        await new Promise((r) => setTimeout(r, 5));
      }
      const agent = (await rt.get('ep-1'))!;
      return { agent, context: agent.context as AgentContext, first: await world.lookup('ep-1/0') };
    } finally {
      await rt.close();
      await store.close();
    }
  }

  it('refuses arguments that fail their schema: the episode fails naming the field, nothing is run', async () => {
    const { agent, context, first } = await runEpisode(
      editing((p) => ({
        ...p,
        actions: p.actions.map((a, i) => (i === 0 ? { ...a, args: { ...a.args, amount: 'everything' } } : a)),
      })),
    );
    expect(agent.state).toBe('failed');
    expect(context.error?.code).toBe('contract.invalid');
    expect(context.error?.message).toMatch(/actions\.0\.args\.amount/);
    expect(context.error?.transient).toBe(false);
    expect(context.plan).toBeNull();
    expect(first).toBeUndefined();
  });

  it('strips what neither schema knows, and runs what they kept', async () => {
    const { agent, context, first } = await runEpisode(
      editing((p) => ({
        ...p,
        smuggled: 'not in the contract',
        actions: p.actions.map((a) => ({ ...a, args: { ...a.args, note: 'not in the schema' } })),
      })),
    );
    expect(agent.state).toBe('done');
    expect(context.plan).not.toHaveProperty('smuggled');
    for (const a of context.plan!.actions) expect(a.args).not.toHaveProperty('note');
    expect(first).toBeDefined();
    expect(first!.args).not.toHaveProperty('note');
  });

  it('trusts only planners that check their own plans', () => {
    expect(rulePlanner.validatesPlans).toBe(true);
    const config = { baseUrl: 'http://127.0.0.1:9/v1', model: 'm' };
    expect(new LlmPlanner({ config }).validatesPlans).toBe(true);
    expect(new LlmPlanner({ config, fallback: rulePlanner }).validatesPlans).toBe(true);
    expect(new LlmPlanner({ config, fallback: editing((p) => p) }).validatesPlans).toBe(false);
    expect(editing((p) => p).validatesPlans).toBeUndefined();
  });
});
