import { describe, expect, it } from 'vitest';
import {
  BlobError,
  BlobPacker,
  blobRefs,
  blobsByRef,
  newSink,
  unpackLegacyRecord,
} from '../../src/runtime/record-codec.ts';
import type { ActorRecord } from '../../src/runtime/store.ts';

const observation = { id: 'ep-1.obs', fields: { orderId: 'ORD-1', email: 'a@example.com' } };
const plan = { id: 'ep-1.plan-1', actions: [{ type: 'issueRefund', args: { amount: 10 } }] };
const decision = { outcome: 'review', rules: [{ id: 'confidence', passed: false }] };
const tiers = [{ queue: 'refunds', roles: ['lead'] }];
const json = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T;

const caseRecord = (seq: number, context: Record<string, unknown>, output?: unknown): ActorRecord => ({
  id: 'ep-1.case-1',
  kind: 'case',
  model: 'refunds',
  seq,
  status: output === undefined ? 'active' : 'done',
  state: output === undefined ? 'pending' : 'approved',
  snapshot: {
    status: output === undefined ? 'active' : 'done',
    value: 'pending',
    context,
    ...(output !== undefined ? { output } : {}),
    children: {},
  },
  updatedAt: seq,
});

/** Packs `values` as one commit would, and returns their stored form (as LevelDB's JSON gives it back) and the blobs written. */
function commit(packer: BlobPacker, actor: string, group: string, ...values: unknown[]) {
  const sink = newSink(group);
  const stored = values.map((v) => json(packer.pack(actor, v, sink)));
  return { stored, blobs: blobsByRef(sink.n > 0 ? [[group, json(sink.members)]] : []), sink };
}

describe('stored form of review cases (blobs)', () => {
  it('stores each large object once across the journal entry and the records of later commits, and reads back equal values', () => {
    const packer = new BlobPacker();
    const input = { caseId: 'ep-1.case-1', observation, plan, decision, tiers };
    const ctx0 = { ...input, proposedPlan: plan, claim: null, resolution: null };
    const c0 = commit(packer, 'ep-1.case-1', '0000000000', caseRecord(0, ctx0), {
      seq: 0,
      event: { type: 'xstate.init', input },
    });
    // Four blobs, the proposed plan being the plan (one object): one write for all of them.
    expect(c0.sink.n).toBe(4);
    expect(JSON.stringify(c0.stored)).not.toContain('ORD-1');
    // A later commit with the same objects (a claim) writes no blob.
    const ctx1 = { ...ctx0, claim: { reviewer: 'r-1' } };
    const c1 = commit(packer, 'ep-1.case-1', '0000000001', caseRecord(1, ctx1));
    expect(c1.sink.n).toBe(0);
    expect(JSON.stringify(c1.stored[0])).not.toMatch(/ORD-1|issueRefund|confidence|"lead"/);
    // The resolution is new; its plan is the plan already stored.
    const resolution = { caseId: 'ep-1.case-1', outcome: 'approved', plan };
    const c2 = commit(packer, 'ep-1.case-1', '0000000002', caseRecord(2, { ...ctx1, resolution }, resolution));
    expect(c2.sink.n).toBe(1);

    const all = new Map([...c0.blobs, ...c1.blobs, ...c2.blobs]);
    const reader = new BlobPacker();
    const back = reader.unpack('ep-1.case-1', c2.stored[0], (ref) => all.get(ref)) as ActorRecord;
    expect(back).toEqual(json(caseRecord(2, { ...ctx1, resolution }, resolution)));
    const ctx = (back.snapshot as { context: Record<string, unknown>; output: unknown }).context;
    // Shared objects come back shared.
    expect(ctx.proposedPlan).toBe(ctx.plan);
    expect((ctx.resolution as { plan: unknown }).plan).toBe(ctx.plan);
    expect((back.snapshot as { output: unknown }).output).toBe(ctx.resolution);
    expect(reader.unpack('ep-1.case-1', c0.stored[1], (ref) => all.get(ref))).toEqual(
      json({ seq: 0, event: { type: 'xstate.init', input } }),
    );

    // What was read is known as stored: re-packing it (a rehydrated case's next commit) writes no blob.
    const again = commit(reader, 'ep-1.case-1', '0000000003', { ...back, seq: 3 });
    expect(again.sink.n).toBe(0);
    expect(blobRefs(again.stored[0])).toEqual(blobRefs(c2.stored[0]));
  });

  it('gives a changed object (a modified plan) a blob of its own, and never shares blobs between actors', () => {
    const packer = new BlobPacker();
    commit(packer, 'a.case-1', '0000000000', caseRecord(0, { plan, proposedPlan: plan }));
    const modified = { ...plan, id: 'ep-1.plan-1.r1' };
    expect(commit(packer, 'a.case-1', '0000000001', caseRecord(1, { plan: modified, proposedPlan: plan })).sink.n).toBe(
      1,
    );
    // The same object in another actor's value is stored again, for that actor.
    expect(commit(packer, 'b.case-1', '0000000000', caseRecord(0, { plan, proposedPlan: plan })).sink.n).toBe(1);
  });

  it('forgets the blobs of a batch that was not written, and fails loudly on a missing blob', () => {
    const packer = new BlobPacker();
    const c0 = commit(packer, 'c', '0000000000', caseRecord(0, { plan }));
    packer.forget(c0.sink.registered);
    expect(commit(packer, 'c', '0000000001', caseRecord(1, { plan })).sink.n).toBe(1);
    expect(() => new BlobPacker().unpack('c', c0.stored[0], () => undefined)).toThrow(BlobError);
  });

  it('passes values without blob fields, and other values, through unchanged', () => {
    const packer = new BlobPacker();
    const entry = { seq: 4, event: { type: 'claim', reviewer: { id: 'r-1' } } };
    const sink = newSink('0000000004');
    expect(packer.pack('c', entry, sink)).toBe(entry);
    expect(packer.pack('c', 'text', sink)).toBe('text');
    expect(sink.n).toBe(0);
    expect(packer.unpack('c', entry, () => undefined)).toBe(entry);
  });

  it('reads records stored by the earlier $same packing', () => {
    const resolution = { caseId: 'ep-1.case-1', outcome: 'approved', plan };
    const legacy = json(
      caseRecord(3, { plan, proposedPlan: { $same: 'plan' }, resolution }, { $same: 'context.resolution' }),
    );
    const back = unpackLegacyRecord(legacy)!;
    expect(back).toEqual(json(caseRecord(3, { plan, proposedPlan: plan, resolution }, resolution)));
    const agent = { ...caseRecord(1, { plan }), kind: 'agent' as const };
    expect(unpackLegacyRecord(agent)).toBe(agent);
    expect(unpackLegacyRecord(undefined)).toBeUndefined();
  });
});
