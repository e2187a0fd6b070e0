/**
 * What the drift tests share (split from test/unit/drift.test.ts by describe block): the refunds model,
 * loaded before the file's tests, temp folders removed after them, an in-memory meta store, a plan
 * builder and one observation.
 */
import { rm } from 'node:fs/promises';
import { afterAll, beforeAll } from 'vitest';
import type { Observation } from '../../../src/contracts/observation.ts';
import type { Plan } from '../../../src/contracts/plan.ts';
import { loadModel, type LoadedModel } from '../../../src/models/loader.ts';
import type { MetaStore } from '../../../src/policy/drift.ts';

export let model: LoadedModel;
export const dirs: string[] = [];
beforeAll(async () => {
  model = await loadModel('models/refunds');
});
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

export class MemoryMeta implements MetaStore {
  data = new Map<string, unknown>();
  async getMeta<T>(key: string): Promise<T | undefined> {
    return structuredClone(this.data.get(key)) as T | undefined;
  }
  async putMeta(key: string, value: unknown): Promise<void> {
    this.data.set(key, structuredClone(value));
  }
}

export function mkPlan(
  id: string,
  confidence: number,
  actions: Plan['actions'] = [
    { type: 'declineRefund', args: { orderId: 'ORD-00000001', reason: 'outside the window' } },
  ],
  score = 0.1,
): Plan {
  return model.validatePlan({
    id,
    planner: 'test',
    actions,
    confidence,
    rationale: 'test',
    risk: { score, factors: [] },
    citedInputs: [],
  });
}

export const obs: Observation = {
  id: 'obs-1',
  kind: 'refund-request',
  subject: 'ORD-00000001',
  provenance: { source: 'test', observedAt: '2026-01-01T00:00:00.000Z', transforms: [] },
  classification: 'internal',
  dataClasses: ['internal'],
  fields: { reason: 'The mug arrived broken.' },
};
