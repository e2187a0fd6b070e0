// Type-checked with `tsc --noEmit` (module nodenext, strict) against the installed package's .d.ts.
import {
  Runtime,
  LevelStore,
  defineHandlers,
  simulatedAction,
  Rng,
  type RuntimeOptions,
  type ModelHandlers,
  type LoadedModel,
} from '@handoff-hitl/runtime';
import { ModelConfig, HandoffError } from '@handoff-hitl/runtime/contracts';
import { defineSuite, type SuiteOptions } from '@handoff-hitl/runtime/testing';
import { HandoffClient } from '@handoff-hitl/runtime/client';
import { z } from 'zod';

export async function open(dir: string, models: LoadedModel[]): Promise<Runtime> {
  const store = await LevelStore.open(dir);
  const opts: RuntimeOptions = {
    store,
    world: { ledger: undefined as never } as unknown as RuntimeOptions['world'],
    models,
  };
  return Runtime.open(opts);
}
export const action = simulatedAction('noop', z.object({ id: z.string() }), (args) => ({ ok: args.id }));
export const draw: number = new Rng(1).next();
export const handlers: typeof defineHandlers = defineHandlers;
export type H = ModelHandlers;
export type C = z.infer<typeof ModelConfig>;
export const suite: typeof defineSuite = defineSuite;
export type S = SuiteOptions;
export const E = HandoffError;
export const client = HandoffClient;
