/**
 * Retention on a real LevelStore with the refunds model: compaction removes the journals of old
 * finished episodes (and their cases), keeps held and unfinished ones, leaves the audit chain
 * verifiable, and the lineage still shows what the journal held; legal holds are audited; the CLI.
 */
import { createHash } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { buildLineage, type Lineage } from '../../src/lineage/lineage.ts';
import { storeLineageSource } from '../../src/lineage/source.ts';
import { summaryKey, type CompactionSummary } from '../../src/lineage/retention-records.ts';
import {
  LegalHoldError,
  clearHold,
  listHolds,
  retentionOf,
  runRetention,
  scheduleRetention,
  setHold,
} from '../../src/retention/retention.ts';
import { REDACTED, Redactor } from '../../src/inspect/redact.ts';
import type { AgentContext } from '../../src/machines/agent.ts';
import { canonicalJson, verifyAudit } from '../../src/base/audit-log.ts';
import { SimulatedClock } from '../../src/base/clock.ts';
import { runCli } from './cli.ts';
import {
  LEAD,
  agentCtx,
  autoSignals,
  cleanup,
  closeEnv,
  cmd,
  collect,
  drive,
  driveUntilDone,
  openEnv,
  reviewSignals,
  type Env,
} from './helpers.ts';

afterEach(cleanup);

const DAY = 86_400_000;

/** Three finished episodes (one reviewed), and one left waiting for review. */
async function seed(env: Env): Promise<void> {
  const autos = await autoSignals();
  const [review, open] = await reviewSignals({ tier: 1 });
  await env.rt.startEpisode('refunds', autos[0]!.signal, { episodeId: 'ep-1' });
  await driveUntilDone(env, 'ep-1');
  await env.rt.startEpisode('refunds', review!.signal, { episodeId: 'ep-2' });
  await drive(env.rt, env.clock, async () => !!(await env.rt.get('ep-2.case-1')));
  await env.rt.command(cmd('claim', 'ep-2.case-1', LEAD));
  await env.rt.command(cmd('approve', 'ep-2.case-1', LEAD));
  await driveUntilDone(env, 'ep-2');
  await env.rt.startEpisode('refunds', autos[1]!.signal, { episodeId: 'ep-3' });
  await driveUntilDone(env, 'ep-3');
  await env.rt.startEpisode('refunds', open!.signal, { episodeId: 'ep-open' });
  await drive(env.rt, env.clock, async () => !!(await env.rt.get('ep-open.case-1')));
}

const lineage = (env: Env, id: string): Promise<Lineage> =>
  buildLineage(id, storeLineageSource(env.store, { effect: (k) => env.world.lookup(k) }));
const journal = (env: Env, id: string) => collect(env.store.journal(id));

describe('retention: compaction', () => {
  it('removes old finished journals, keeps held and unfinished ones; the audit chain verifies; lineage shows the summary', async () => {
    const env = await openEnv();
    await seed(env);
    const policy = retentionOf([env.model]);
    expect(policy.get('refunds')).toEqual({ keepDays: 365 });
    const before = { ep1: await lineage(env, 'ep-1'), ep2: await lineage(env, 'ep-2') };
    const ep2Journals = { agent: await journal(env, 'ep-2'), case: await journal(env, 'ep-2.case-1') };
    expect(ep2Journals.agent.length).toBeGreaterThan(3);
    expect((await journal(env, 'ep-open')).length).toBeGreaterThan(0);

    await setHold(env.store, { episodeId: 'ep-3', reason: 'litigation #42', by: 'legal:ann', at: env.clock.now() });
    // Within the retention period: nothing happens.
    const early = await runRetention(env.store, { retention: policy, now: env.clock.now() + 364 * DAY });
    expect(early.compacted).toEqual([]);
    expect(early.kept).toMatchObject({ young: 3, unfinished: 1 });

    const now = env.clock.now() + 366 * DAY;
    const dry = await runRetention(env.store, { retention: policy, now, dryRun: true });
    expect(dry.compacted.map((c) => c.episodeId).sort()).toEqual(['ep-1', 'ep-2']);
    expect((await journal(env, 'ep-1')).length).toBeGreaterThan(0);

    const heldBefore = JSON.stringify(await env.store.load('ep-3'));
    const report = await runRetention(env.store, {
      retention: policy,
      now,
      by: 'test',
      redactor: new Redactor([env.model]),
    });
    expect(report.compacted.map((c) => c.episodeId).sort()).toEqual(['ep-1', 'ep-2']);
    expect(report.compacted.find((c) => c.episodeId === 'ep-2')).toMatchObject({
      actors: ['ep-2', 'ep-2.case-1'],
      journalEntries: ep2Journals.agent.length + ep2Journals.case.length,
    });
    expect(report.held).toEqual(['ep-3']);
    expect(report.kept.unfinished).toBe(1);
    // Journals gone for the compacted ones, kept for the held and the unfinished.
    for (const id of ['ep-1', 'ep-2', 'ep-2.case-1']) expect(await journal(env, id), id).toEqual([]);
    expect((await journal(env, 'ep-3')).length).toBeGreaterThan(0);
    expect((await journal(env, 'ep-open')).length).toBeGreaterThan(0);
    expect((await journal(env, 'ep-open.case-1')).length).toBeGreaterThan(0);
    // The actor records stay (ids stay unique, dashboards keep their history), scrubbed of personal
    // data: no IBAN, e-mail or name of the customer is left in them; the held episode's is untouched.
    const ep2 = (await env.store.load('ep-2'))!;
    expect(ep2.state).toBe('done');
    const case2 = (await env.store.load('ep-2.case-1'))!;
    const ctx2 = (ep2.snapshot as { context: AgentContext }).context;
    const fields = ctx2.observation!.fields as { customer: { iban: string; email: string; name: string } };
    expect(fields.customer).toMatchObject({ iban: REDACTED, email: REDACTED, name: REDACTED });
    for (const rec of [ep2, case2]) {
      const text = JSON.stringify(rec);
      for (const [k, v] of [
        ['iban', /"iban":"(?!\[REDACTED\])/],
        ['email', /"email":"(?!\[REDACTED\])/],
      ] as const)
        expect(text, `${rec.id} ${k}`).not.toMatch(v);
    }
    expect(JSON.stringify(await env.store.load('ep-3'))).toBe(heldBefore);
    expect(heldBefore).toMatch(/"iban":"(?!\[REDACTED\])/);

    // The audit chain was only appended to, and verifies.
    const audit = await collect(env.store.audit());
    expect((await verifyAudit(env.store.audit())).ok).toBe(true);
    const compacted = audit.filter((e) => e.kind === 'retention.compacted');
    expect(compacted.map((e) => e.actor).sort()).toEqual(['ep-1', 'ep-2']);
    const digest = (entries: unknown[]) => {
      const h = createHash('sha256');
      for (const e of entries) h.update(canonicalJson(e)).update('\n');
      return h.digest('hex');
    };
    const e2 = compacted.find((e) => e.actor === 'ep-2')!;
    expect(e2.by).toBe('test');
    expect(e2.data.journals).toEqual([
      {
        actor: 'ep-2',
        entries: ep2Journals.agent.length,
        lastSeq: ep2Journals.agent.at(-1)!.seq,
        sha256: digest(ep2Journals.agent),
      },
      {
        actor: 'ep-2.case-1',
        entries: ep2Journals.case.length,
        lastSeq: ep2Journals.case.at(-1)!.seq,
        sha256: digest(ep2Journals.case),
      },
    ]);

    // Lineage after compaction: the same chain, the journal part from the summary.
    for (const [id, old] of [
      ['ep-1', before.ep1],
      ['ep-2', before.ep2],
    ] as const) {
      const now2 = await lineage(env, id);
      expect(now2.history).toMatchObject({ journal: 'compacted', keepDays: 365 });
      const { history: _h1, other: o1, auditSeqs: a1, ...rest1 } = now2;
      const { history: _h0, other: o0, auditSeqs: a0, ...rest0 } = old;
      expect(rest1).toEqual(rest0);
      expect(o1.map((o) => o.kind)).toEqual([...o0.map((o) => o.kind), 'retention.compacted']);
      expect(a1.slice(0, -1)).toEqual(a0);
    }
    const summary = await env.store.getMeta<CompactionSummary>(summaryKey('ep-2'));
    expect(summary?.observations[0]).toMatchObject({ source: 'shop-orders' });
    expect(JSON.stringify(summary)).not.toContain('iban');

    // A second pass changes nothing; clearing the hold lets the next one compact ep-3.
    const again = await runRetention(env.store, { retention: policy, now });
    expect(again.compacted).toEqual([]);
    expect(again.kept.alreadyCompacted).toBe(2);
    await clearHold(env.store, { episodeId: 'ep-3', reason: 'case closed', by: 'legal:ann', at: env.clock.now() });
    expect((await runRetention(env.store, { retention: policy, now })).compacted.map((c) => c.episodeId)).toEqual([
      'ep-3',
    ]);
    expect((await verifyAudit(env.store.audit())).ok).toBe(true);
    // A model without retention is never compacted.
    expect(
      (await runRetention(env.store, { retention: new Map([['refunds', undefined]]), now: now + 1000 * DAY })).kept
        .noPolicy,
    ).toBe(4);
  }, 60_000);

  it('a pass stopped between the deletes and its audit entry is finished by the next pass', async () => {
    const env = await openEnv();
    await env.rt.startEpisode('refunds', (await autoSignals())[0]!.signal, { episodeId: 'ep-i' });
    await driveUntilDone(env, 'ep-i');
    const entries = (await journal(env, 'ep-i')).length;
    const policy = retentionOf([env.model]);
    const now = env.clock.now() + 366 * DAY;
    // The audit write fails once: the summary is written and the journal deleted, the entry is not.
    const store = env.store;
    const failing = new Proxy(store, {
      get(target, prop, receiver) {
        if (prop === 'appendAudit') return () => Promise.reject(new Error('power cut'));
        const v = Reflect.get(target, prop, receiver) as unknown;
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
    await expect(runRetention(failing, { retention: policy, now })).rejects.toThrow('power cut');
    expect(await journal(env, 'ep-i')).toEqual([]);
    expect((await env.store.getMeta<CompactionSummary>(summaryKey('ep-i')))?.audited).toBeUndefined();
    expect((await collect(env.store.audit())).filter((e) => e.kind === 'retention.compacted')).toEqual([]);

    const next = await runRetention(env.store, { retention: policy, now });
    expect(next.kept.alreadyCompacted).toBe(1);
    const written = (await collect(env.store.audit())).filter((e) => e.kind === 'retention.compacted');
    expect(written).toHaveLength(1);
    expect(written[0]!.data).toMatchObject({ journalEntries: entries });
    const summary = (await env.store.getMeta<CompactionSummary>(summaryKey('ep-i')))!;
    expect(summary.audited).toBe(true);
    // The entry anchors the summary kept outside the chain.
    const { audited: _a, ...content } = summary;
    expect(written[0]!.data.summarySha256).toBe(createHash('sha256').update(canonicalJson(content)).digest('hex'));
    // Written once: a third pass adds nothing.
    await runRetention(env.store, { retention: policy, now });
    expect((await collect(env.store.audit())).filter((e) => e.kind === 'retention.compacted')).toHaveLength(1);
    expect((await verifyAudit(env.store.audit())).ok).toBe(true);
  });

  it('the scheduled pass of a running node runs on its clock and stops cleanly', async () => {
    const env = await openEnv();
    await env.rt.startEpisode('refunds', (await autoSignals())[0]!.signal, { episodeId: 'ep-s' });
    await driveUntilDone(env, 'ep-s');
    const clock = new SimulatedClock(env.clock.now());
    const passes: number[] = [];
    const s = scheduleRetention({
      store: env.store,
      clock,
      retention: new Map([['refunds', { keepDays: 1 }]]),
      intervalMs: DAY,
      firstAfterMs: 60_000,
      onPass: (r) => passes.push(r.compacted.length),
    });
    // Each pass is awaited by its count, not by a sleep: under load a pass can take longer than any fixed wait.
    const passed = async (n: number) => {
      for (const end = Date.now() + 30_000; passes.length < n; await new Promise((r) => setTimeout(r, 10)))
        if (Date.now() > end) throw new Error(`pass ${n} did not run within 30 s (passes: ${JSON.stringify(passes)})`);
    };
    clock.advanceTo(clock.now() + 60_000);
    await passed(1);
    clock.advanceTo(clock.now() + DAY);
    await passed(2);
    clock.advanceTo(clock.now() + DAY);
    await passed(3);
    await s.stop();
    // First pass: not a day old yet; a day later: compacted; then nothing left to do.
    expect(passes).toEqual([0, 1, 0]);
    expect(await journal(env, 'ep-s')).toEqual([]);
  });
});

describe('legal holds', () => {
  it('are audited, refuse bad input with the field named, and list', async () => {
    const env = await openEnv();
    await env.rt.startEpisode('refunds', (await autoSignals())[0]!.signal, { episodeId: 'ep-h' });
    await driveUntilDone(env, 'ep-h');
    const at = env.clock.now();
    await expect(setHold(env.store, { episodeId: 'ep-h', reason: '  ', by: 'x', at })).rejects.toMatchObject({
      code: 'contract.invalid',
      path: 'reason',
    });
    await expect(setHold(env.store, { episodeId: 'nope', reason: 'r', by: 'x', at })).rejects.toMatchObject({
      code: 'actor.not_found',
    });
    await setHold(env.store, { episodeId: 'ep-h', reason: 'audit request', by: 'legal:ann', at });
    await expect(setHold(env.store, { episodeId: 'ep-h', reason: 'again', by: 'x', at })).rejects.toBeInstanceOf(
      LegalHoldError,
    );
    expect(await listHolds(env.store)).toEqual([{ episodeId: 'ep-h', reason: 'audit request', by: 'legal:ann', at }]);
    expect((await lineage(env, 'ep-h')).hold).toMatchObject({ reason: 'audit request' });
    await clearHold(env.store, { episodeId: 'ep-h', reason: 'done', by: 'legal:ann', at: at + 1 });
    await expect(
      clearHold(env.store, { episodeId: 'ep-h', reason: 'done', by: 'legal:ann', at }),
    ).rejects.toMatchObject({ code: 'hold.not_found' });
    const entries = (await collect(env.store.audit())).filter((e) => e.kind.startsWith('hold.'));
    expect(entries.map((e) => [e.kind, e.actor, e.by, e.data.reason])).toEqual([
      ['hold.set', 'ep-h', 'legal:ann', 'audit request'],
      ['hold.cleared', 'ep-h', 'legal:ann', 'done'],
    ]);
  });

  it('handoff hold set | list | clear and handoff retention run (--json), with typed errors', async () => {
    const env = await openEnv();
    await env.rt.startEpisode('refunds', (await autoSignals())[0]!.signal, { episodeId: 'ep-c1' });
    await driveUntilDone(env, 'ep-c1');
    await env.rt.startEpisode('refunds', (await autoSignals())[1]!.signal, { episodeId: 'ep-c2' });
    await driveUntilDone(env, 'ep-c2');
    const ended = agentCtx(await env.rt.get('ep-c2')).endedAt!;
    await closeEnv(env);
    const cli = async (...args: string[]) => {
      const r = await runCli([...args, '--data', env.dir, '--json']);
      return { code: r.code, body: JSON.parse(r.stdout) as Record<string, unknown>, stderr: r.stderr };
    };
    const set = await cli('hold', 'set', 'ep-c1', '--reason', 'regulator inquiry', '--by', 'legal:ann');
    expect(set.code, set.stderr).toBe(0);
    expect(set.body).toMatchObject({
      ok: true,
      hold: { episodeId: 'ep-c1', reason: 'regulator inquiry', by: 'legal:ann' },
    });
    expect((await cli('hold', 'set', 'ep-c2')).body).toMatchObject({
      ok: false,
      error: { code: 'contract.invalid', details: { issues: [{ path: 'reason' }] } },
    });
    expect((await cli('hold', 'set', 'ep-c1.case-1', '--reason', 'x')).body).toMatchObject({
      ok: false,
      error: { code: 'actor.not_found' },
    });
    expect((await cli('hold', 'list')).body).toMatchObject({ count: 1, holds: [{ episodeId: 'ep-c1' }] });
    const bad = await cli('retention', 'run', '--now', 'next year');
    expect(bad.code).toBe(2);
    expect(bad.body).toMatchObject({
      ok: false,
      error: { code: 'contract.invalid', details: { issues: [{ path: 'now' }] } },
    });
    const run = await cli(
      'retention',
      'run',
      '--now',
      new Date(ended + 400 * DAY).toISOString(),
      '--model',
      'models/refunds',
    );
    expect(run.code, run.stderr).toBe(0);
    expect(run.body).toMatchObject({
      dryRun: false,
      held: ['ep-c1'],
      compacted: [{ episodeId: 'ep-c2', model: 'refunds' }],
    });
    const cleared = await cli('hold', 'clear', 'ep-c1', '--reason', 'inquiry closed');
    expect(cleared.body).toMatchObject({ ok: true, cleared: { episodeId: 'ep-c1' } });
    const verify = await cli('audit', 'verify');
    expect(verify.body).toMatchObject({ ok: true });
  }, 180_000); // nine CLI processes: about 10 s on a quiet machine, a minute and more beside CPU burners
});
