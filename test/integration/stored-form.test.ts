/**
 * The stored form of review cases on a real LevelDB (src/runtime/record-codec.ts): the observation,
 * plan, decision, tiers and resolution are written once per case, every read puts them back, a
 * restarted node does not write them again, and redaction or journal deletion leaves none of the
 * removed data behind.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { ActorRecord } from '../../src/runtime/store.ts';
import {
  LEAD,
  agentCtx,
  caseCtx,
  cleanup,
  closeEnv,
  cmd,
  collect,
  drive,
  openEnv,
  reviewSignals,
  settle,
  type Env,
} from './helpers.ts';

afterEach(cleanup);

/** Every raw key and value under the case's record prefix (`a:<id>` and its blob groups). */
async function rawCase(env: Env, caseId: string): Promise<[string, string][]> {
  const out: [string, string][] = [];
  for await (const [k, v] of env.store.db.iterator({ gte: `a:${caseId}`, lte: `a:${caseId}\u0000\uffff` }))
    out.push([k, JSON.stringify(v)]);
  return out;
}

/** Every raw value of the store, as text. */
async function rawAll(env: Env): Promise<string> {
  const parts: string[] = [];
  for await (const [k, v] of env.store.db.iterator()) parts.push(`${k}=${JSON.stringify(v)}`);
  return parts.join('\n');
}

async function openCase(env: Env, id: string): Promise<string> {
  const [c] = await reviewSignals();
  await env.rt.startEpisode('refunds', c!.signal, { episodeId: id });
  await drive(env.rt, env.clock, async () => agentCtx(await env.rt.get(id)).caseIds.length > 0);
  await settle(env.rt);
  return agentCtx(await env.rt.get(id)).caseIds[0]!;
}

describe('a review case stores its large objects once', () => {
  it('writes them with the case’s first commit only, and reads back the case as the runtime holds it', async () => {
    const env = await openEnv();
    const caseId = await openCase(env, 'ep-form');
    const opened = caseCtx(await env.rt.get(caseId));
    const groupsAfterOpen = (await rawCase(env, caseId)).filter(([k]) => k.includes('\u0000'));
    expect(groupsAfterOpen).toHaveLength(1);
    const [record] = await rawCase(env, caseId);
    // The record refers to the blobs: the plan's rationale and the observation's fields are not in it.
    expect(record![1]).toContain('"$blob"');
    expect(record![1]).not.toContain(opened.plan.rationale);
    expect(record![1]).not.toContain(JSON.stringify(opened.observation.fields));

    await env.rt.command(cmd('claim', caseId, LEAD));
    await settle(env.rt);
    // A claim rewrites the record, not the blobs.
    expect((await rawCase(env, caseId)).filter(([k]) => k.includes('\u0000'))).toEqual(groupsAfterOpen);
    const loaded = (await env.store.load(caseId))!;
    const ctx = (loaded.snapshot as { context: typeof opened }).context;
    // The record read back is the case as the runtime holds it.
    expect(ctx).toEqual(JSON.parse(JSON.stringify(caseCtx(await env.rt.get(caseId)))));
    expect(ctx.plan).toEqual(opened.plan);
    expect(ctx.observation).toEqual(opened.observation);
    expect(ctx.decision).toEqual(opened.decision);
    expect(ctx.tiers).toEqual(opened.tiers);
    expect(ctx.proposedPlan).toBe(ctx.plan);
    expect(ctx.claim?.reviewer).toBe(LEAD.id);
    // The journal's first entry carries the case's input, read back whole.
    const [init] = await collect(env.store.journal(caseId));
    expect((init!.event as unknown as { input: { plan: unknown } }).input.plan).toEqual(opened.plan);
    // Scans put the blobs back too.
    const scanned = (await collect(env.store.actors('case'))).find((r) => r.id === caseId)!;
    expect(scanned).toEqual(loaded);
    await closeEnv(env);
  });

  it('after a restart, a passivated case is rehydrated from record + blobs and decided without writing its blobs again', async () => {
    const env = await openEnv();
    const caseId = await openCase(env, 'ep-restart');
    const before = caseCtx(await env.rt.get(caseId));
    await closeEnv(env);

    const env2 = await openEnv({ dir: env.dir, start: env.clock.now() });
    await env2.rt.command(cmd('claim', caseId, LEAD));
    await env2.rt.command(cmd('approve', caseId, LEAD));
    await drive(env2.rt, env2.clock, async () => (await env2.rt.get('ep-restart'))?.status === 'done');
    const raw = await rawCase(env2, caseId);
    // The group of the first commit, and one for the resolution (a new object): nothing else.
    expect(raw.filter(([k]) => k.includes('\u0000')).map(([k]) => k.split('\u0000')[1])).toEqual([
      '0000000000',
      expect.stringMatching(/^\d{10}$/),
    ]);
    const done = (await env2.store.load(caseId))!;
    const ctx = caseCtx({ ...done, context: (done.snapshot as { context: unknown }).context } as never);
    expect(ctx.plan).toEqual(before.plan);
    expect(ctx.resolution?.outcome).toBe('approved');
    expect((done.snapshot as { output: unknown }).output).toBe(ctx.resolution);
    expect(agentCtx(await env2.rt.get('ep-restart')).outcome).toBeDefined();
    await closeEnv(env2);
  });

  it('redaction and journal deletion leave no removed data in any blob', async () => {
    const env = await openEnv();
    const caseId = await openCase(env, 'ep-scrub');
    await env.rt.command(cmd('claim', caseId, LEAD));
    await env.rt.command(cmd('approve', caseId, LEAD));
    await drive(env.rt, env.clock, async () => (await env.rt.get('ep-scrub'))?.status === 'done');
    await settle(env.rt);
    const rec = (await env.store.load(caseId))!;
    const snap = rec.snapshot as { context: { observation: { fields: Record<string, unknown> } } };
    const secret = JSON.stringify(snap.context.observation.fields);
    expect(await rawAll(env)).toContain(secret);

    // Retention's order: the journal first, then the record, redacted.
    await env.store.deleteJournal(caseId);
    await env.store.deleteJournal('ep-scrub');
    const redacted: ActorRecord = {
      ...rec,
      snapshot: {
        ...(rec.snapshot as object),
        context: { ...snap.context, observation: { ...snap.context.observation, fields: { redacted: true } } },
      },
    };
    await env.store.replaceFinishedRecord(redacted);
    // The agent's record still holds its own copy; replace it too, as retention does.
    const agent = (await env.store.load('ep-scrub'))!;
    const actx = (agent.snapshot as { context: Record<string, unknown> }).context;
    await env.store.replaceFinishedRecord({
      ...agent,
      snapshot: { ...(agent.snapshot as object), context: { ...actx, observation: { redacted: true } } },
    });

    const all = await rawAll(env);
    expect(all).not.toContain(secret);
    const back = (await env.store.load(caseId))!;
    expect((back.snapshot as { context: { observation: { fields: unknown } } }).context.observation.fields).toEqual({
      redacted: true,
    });
    // What was not redacted is still whole.
    expect((back.snapshot as { context: { plan: unknown } }).context.plan).toEqual(
      (rec.snapshot as { context: { plan: unknown } }).context.plan,
    );
    await closeEnv(env);
  });
});

describe('listing the live actors', () => {
  it('reads every live actor as load() does, across read chunks, with blobs of several commits, and no finished actor', async () => {
    const env = await openEnv();
    // An open, claimed case; its agent waits for it, with blobs written by two commits (the
    // observation when it perceived, the plan and the gate's decision when it planned).
    const open = await openCase(env, 'ep-live-open');
    await env.rt.command(cmd('claim', open, LEAD));
    // A modified and an approved case: both finish and leave the live index (their agents act, then finish).
    const modified = await openCase(env, 'ep-live-mod');
    await env.rt.command(cmd('claim', modified, LEAD));
    const plan = caseCtx(await env.rt.get(modified)).plan;
    const amended = plan.actions.map((a, i) => ({
      type: a.type,
      args:
        i === 0 && typeof a.args.amount === 'number'
          ? { ...a.args, amount: Math.max(0.01, Math.round(a.args.amount * 50) / 100) }
          : i === 0
            ? { ...a.args, reason: `${String(a.args.reason)} (amended)` }
            : a.args,
    }));
    await env.rt.command(cmd('modify', modified, LEAD, { actions: amended, comment: 'amended' }));
    const decided = await openCase(env, 'ep-live-done');
    await env.rt.command(cmd('claim', decided, LEAD));
    await env.rt.command(cmd('approve', decided, LEAD));
    await drive(
      env.rt,
      env.clock,
      async () =>
        (await env.rt.get('ep-live-done'))?.status === 'done' && (await env.rt.get('ep-live-mod'))?.status === 'done',
    );
    // More cases than one read chunk (256), opened straight into the runtime.
    const base = caseCtx(await env.rt.get(open));
    const input = {
      model: 'refunds',
      tier: 1,
      tiers: base.tiers,
      leaseMs: 60_000,
      plan: base.plan,
      decision: base.decision,
      observation: base.observation,
    };
    await Promise.all(
      Array.from({ length: 300 }, (_, i) =>
        env.rt.openCase({ ...input, caseId: `bulk-${i}.case-1`, episodeId: `bulk-${i}`, openedAt: env.clock.now() }),
      ),
    );
    await settle(env.rt);

    const live: string[] = [];
    for await (const key of env.store.db.keys({ gt: 'l:', lt: 'l;' })) live.push(key.slice(2));
    const listed = await collect(env.store.liveActors());
    expect(listed.map((r) => r.id)).toEqual(live);
    expect(live).toEqual(expect.arrayContaining([open, 'ep-live-open']));
    for (const gone of [modified, decided, 'ep-live-mod', 'ep-live-done']) expect(live).not.toContain(gone);
    expect(live.length).toBe(302);
    const agentGroups = (await rawCase(env, 'ep-live-open')).filter(([k]) => k.includes('\u0000'));
    expect(agentGroups.length).toBeGreaterThanOrEqual(2);
    for (const rec of listed) expect(rec).toEqual(await env.store.load(rec.id));
    const agent = listed.find((r) => r.id === 'ep-live-open')!;
    expect((agent.snapshot as { context: { caseIds: string[] } }).context.caseIds).toEqual([open]);
    await closeEnv(env);
  });
});
