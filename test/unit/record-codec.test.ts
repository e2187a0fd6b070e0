import { describe, expect, it } from 'vitest';
import { packRecord, unpackRecord } from '../../src/runtime/record-codec.ts';
import type { ActorRecord } from '../../src/runtime/store.ts';

const plan = { id: 'ep-1.plan-1', actions: [{ type: 'issueRefund', args: { amount: 10 } }] };
const resolution = { caseId: 'ep-1.case-1', outcome: 'approved', plan };
const record = (context: Record<string, unknown>, output?: unknown): ActorRecord => ({
  id: 'ep-1.case-1',
  kind: 'case',
  model: 'refunds',
  seq: 3,
  status: output === undefined ? 'active' : 'done',
  state: output === undefined ? 'claimed' : 'approved',
  snapshot: { status: output === undefined ? 'active' : 'done', value: 'approved', context, ...(output !== undefined ? { output } : {}), children: {} },
  updatedAt: 1,
});
// What LevelDB's JSON encoding does to a value.
const stored = (r: ActorRecord): ActorRecord => JSON.parse(JSON.stringify(packRecord(r))) as ActorRecord;

describe('stored form of actor records', () => {
  it('stores a case’s unmodified proposed plan and its output once, and reads back the same record', () => {
    const open = record({ plan, proposedPlan: plan, resolution: null });
    const done = record({ plan, proposedPlan: plan, resolution }, resolution);
    for (const r of [open, done]) {
      const s = stored(r);
      expect(JSON.stringify(s).length).toBeLessThan(JSON.stringify(r).length);
      expect(unpackRecord(s)).toEqual(JSON.parse(JSON.stringify(r)));
    }
    expect(JSON.stringify(stored(done))).not.toContain('"output":{"caseId"');
  });

  it('keeps copies that differ (a modified plan), other kinds, and records stored before packing, as they are', () => {
    const modified = record({ plan: { ...plan, id: 'ep-1.plan-1.r1' }, proposedPlan: plan, resolution: null });
    expect(stored(modified)).toEqual(JSON.parse(JSON.stringify(modified)));
    const agent = { ...record({ plan, proposedPlan: plan }), kind: 'agent' as const };
    expect(packRecord(agent)).toBe(agent);
    const old = JSON.parse(JSON.stringify(record({ plan, proposedPlan: plan, resolution }, resolution))) as ActorRecord;
    expect(unpackRecord(old)).toEqual(old);
    expect(unpackRecord(undefined)).toBeUndefined();
  });
});
