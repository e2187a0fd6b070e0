/**
 * A suite of scenarios (what generated files call): where the model and the fixtures come from, loaded
 * once, and a fresh scenario (harness.ts) on its own store for each test.
 */
import { readFile } from 'node:fs/promises';
import { loadModel, type LoadedModel } from '../models/loader.ts';
import type { Fixtures, PlanClass } from './fixtures.ts';
import { Scenario, type SuiteOptions } from './harness.ts';
import { simulateHttpActions } from './simulated-http.ts';

/** A suite: where the model and fixtures come from, and how scenarios run. */
export interface Suite {
  readonly options: SuiteOptions;
  load(): Promise<{ model: LoadedModel; fixtures: Fixtures }>;
  /** Runs an agent-episode scenario: starts one episode, then `body` walks it. */
  agent(body: (s: Scenario) => Promise<void>): Promise<void>;
  /** Runs a review-case scenario: an episode whose plan takes gate branch `start` opens the case. */
  case(start: PlanClass, body: (s: Scenario) => Promise<void>): Promise<void>;
}

export function defineSuite(options: SuiteOptions): Suite {
  let loaded: Promise<{ model: LoadedModel; fixtures: Fixtures }> | undefined;
  const load = () =>
    (loaded ??= (async () => {
      // HTTP actions of model.json become simulated effects: a suite never calls the network.
      const model = simulateHttpActions(
        typeof options.model === 'string' ? await loadModel(options.model) : options.model,
      );
      const fixtures =
        typeof options.fixtures === 'string'
          ? (JSON.parse(await readFile(options.fixtures, 'utf8')) as Fixtures)
          : options.fixtures;
      if (fixtures.model !== model.name)
        throw new Error(`fixtures are for model '${fixtures.model}', not '${model.name}'`);
      return { model, fixtures };
    })());
  const run = async (machine: 'agent' | 'case', start: PlanClass | undefined, body: (s: Scenario) => Promise<void>) => {
    const { model, fixtures } = await load();
    const s = await Scenario.open(options, model, fixtures, machine, start);
    try {
      await body(s);
    } finally {
      await s.dispose();
    }
  };
  return {
    options,
    load,
    agent: (body) => run('agent', undefined, body),
    case: (start, body) => run('case', start, body),
  };
}
