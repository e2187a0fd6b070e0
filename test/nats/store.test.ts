/**
 * The JetStream store against a real nats-server: the Store contract (commit, load, journal, command
 * ids, timers, outbox, the audit chain), fencing (a write without the lease is refused; after an
 * adoption the former owner can no longer write), and the repair of derived writes a dead owner left.
 */
import { jetstream } from '@nats-io/jetstream';
import { headers, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NatsServer } from '../../src/cluster/nats-harness.ts';
import { tok } from '../../src/cluster/keys.ts';
import { verifyAudit } from '../../src/base/audit-log.ts';
import { JetStreamStore, type OwnershipGuard } from '../../src/cluster/jetstream-store.ts';
import { JetStreamWorld } from '../../src/cluster/world.ts';
import type { ActorRecord, Commit, TimerEntry } from '../../src/runtime/store.ts';
import { freshNamespace, natsConnect, startServer } from './helpers.ts';

const rec = (
  id: string,
  seq: number,
  status: ActorRecord['status'] = 'active',
  kind: ActorRecord['kind'] = 'agent',
): ActorRecord => ({
  id,
  kind,
  model: 'refunds',
  seq,
  status,
  state: `s${seq}`,
  snapshot: { context: { seq } },
  updatedAt: 1000 + seq,
});
const commit = (id: string, seq: number, extra: Partial<Commit> = {}): Commit => ({
  actor: rec(id, seq, extra.actor?.status ?? 'active', extra.actor?.kind ?? 'agent'),
  journal: { seq, at: 1000 + seq, event: { type: seq === 0 ? 'xstate.init' : `e${seq}` }, state: `s${seq}` },
  audit: [{ at: 1000 + seq, kind: 'test.step', actor: id, by: 'runtime', data: { seq } }],
  ...extra,
});
const collect = async <T>(it: AsyncIterable<T>) => {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
};

/** A guard whose ownership the test switches. */
class Switch implements OwnershipGuard {
  owned = new Set<string>();
  token = 1;
  mayWrite(id: string): boolean {
    return this.owned.has(id.split('.')[0]!.split('/')[0]!);
  }
  fencingToken(): number {
    return this.token;
  }
}

describe('JetStreamStore', () => {
  let server: NatsServer;
  let nc: NatsConnection;
  const stores: JetStreamStore[] = [];
  const open = async (opts: Partial<Parameters<typeof JetStreamStore.open>[0]> & { namespace: string }) => {
    const s = await JetStreamStore.open({ nc, ...opts });
    stores.push(s);
    return s;
  };
  beforeAll(async () => {
    server = await startServer();
    nc = await natsConnect(server.url);
  });
  afterAll(async () => {
    for (const s of stores) await s.close();
    await nc?.close();
    await server?.dispose();
  });

  it('keeps the Store contract: durable commits, journal, command ids, timers, outbox, one audit chain', async () => {
    const ns = freshNamespace('st');
    const store = await open({ namespace: ns });
    const timer: TimerEntry = { actorId: 'ep-1', name: 'retry', dueAt: 5000 };
    // Commits of one actor may be issued before the previous one is durable: they land in order.
    await Promise.all([
      store.commit(commit('ep-1', 0, { hot: true })),
      store.commit(commit('ep-1', 1, { timersSet: [timer], commandId: 'cmd-1' })),
      store.commit(commit('ep-1.case-1', 0, { actor: rec('ep-1.case-1', 0, 'active', 'case') })),
    ]);
    await store.commit(
      commit('ep-1.case-1', 1, {
        actor: rec('ep-1.case-1', 1, 'done', 'case'),
        outboxPut: [{ id: 'ep-1.case-1.resolution', to: 'ep-1', event: { type: 'case.resolved', at: 1 } }],
      }),
    );
    expect((await store.load('ep-1'))?.seq).toBe(1);
    expect((await store.load('ep-1.case-1'))?.status).toBe('done');
    expect((await collect(store.journal('ep-1'))).map((j) => j.seq)).toEqual([0, 1]);
    expect(await store.hasCommand('cmd-1')).toBe(true);
    expect(await store.hasCommand('cmd-2')).toBe(false);
    expect(await collect(store.dueTimers(10_000))).toEqual([timer]);
    expect(await store.nextTimerAfter(0)).toBe(5000);
    expect((await collect(store.outbox())).map((m) => m.id)).toEqual(['ep-1.case-1.resolution']);
    expect((await collect(store.liveIndex())).map((e) => e.id).sort()).toEqual(['ep-1']);
    await store.commit(
      commit('ep-1', 2, {
        actor: rec('ep-1', 2, 'done'),
        timersCleared: [timer],
        outboxDone: ['ep-1.case-1.resolution'],
      }),
    );
    expect(await collect(store.dueTimers(10_000))).toEqual([]);
    expect(await collect(store.outbox())).toEqual([]);
    await store.appendAudit([{ at: 9, kind: 'auth.login', actor: 'r-x', by: 'r-x', data: {} }]);
    await store.flush();
    await store.auditSettled();
    const audit = await collect(store.audit());
    expect(audit).toHaveLength(6);
    expect(await verifyAudit(store.audit())).toEqual({ ok: true, entries: 6 });
    // A version that does not follow the durable one is refused.
    await expect(store.commit(commit('ep-1', 2))).rejects.toMatchObject({ code: 'store.write_failed' });
    // Meta and dead letters.
    await store.putMeta('k', { v: 1 });
    expect(await store.getMeta('k')).toEqual({ v: 1 });
    await store.deleteMeta('k');
    expect(await store.getMeta('k')).toBeUndefined();
  });

  it('fences: no write without the lease; after an adoption the former owner can no longer write', async () => {
    const ns = freshNamespace('sf');
    const ga = new Switch();
    const gb = new Switch();
    const a = await open({ namespace: ns, guard: ga, writer: 'node-a', auditSequencer: true });
    const b = await open({ namespace: ns, guard: gb, writer: 'node-b' });
    await expect(a.commit(commit('ep-7', 0))).rejects.toMatchObject({ code: 'lease.lost' });
    expect(await a.load('ep-7')).toBeUndefined();
    ga.owned.add('ep-7');
    await a.commit(commit('ep-7', 0));
    await a.commit(commit('ep-7', 1));
    // b takes the group over (the lease moved; a has not noticed yet): b fences the actor.
    gb.owned.add('ep-7');
    gb.token = 2;
    const adopted = await b.adoptGroup('ep-7');
    expect(adopted.active).toEqual(['ep-7']);
    // a still believes it owns the group: its write fails the compare-and-set and changes nothing.
    await expect(a.commit(commit('ep-7', 2))).rejects.toMatchObject({ code: 'store.write_failed' });
    ga.owned.delete('ep-7');
    await expect(a.commit(commit('ep-7', 2))).rejects.toMatchObject({ code: 'lease.lost' });
    await b.commit(commit('ep-7', 2, { actor: rec('ep-7', 2, 'done') }));
    await b.flush();
    expect((await b.load('ep-7'))?.seq).toBe(2);
    expect((await collect(b.journal('ep-7'))).map((j) => j.seq)).toEqual([0, 1, 2]);
  });

  it('journal-only commits: the entry is the commit, compare-and-set on the journal; an adopter fences the journal', async () => {
    const ns = freshNamespace('sj');
    const ga = new Switch();
    const gb = new Switch();
    const a = await open({ namespace: ns, guard: ga, writer: 'node-a', auditSequencer: true });
    const b = await open({ namespace: ns, guard: gb, writer: 'node-b' });
    expect(a.journalTail).toBe(true);
    // What the runtime sends between checkpoints: the journal entry, no snapshot.
    const jo = (seq: number, extra: Partial<Commit> = {}): Commit =>
      commit('ep-5', seq, { hot: true, checkpoint: false, actor: { ...rec('ep-5', seq), snapshot: null }, ...extra });
    ga.owned.add('ep-5');
    await a.commit(commit('ep-5', 0, { hot: true }));
    await a.commit(jo(1, { commandId: 'cmd-j1' }));
    await a.commit(jo(2));
    expect(a.stats.journalOnly).toBe(2);
    // The record stays at the checkpoint; the journal holds every entry, and the command id is indexed.
    expect((await a.load('ep-5'))?.seq).toBe(0);
    expect((await collect(a.journal('ep-5'))).map((j) => j.seq)).toEqual([0, 1, 2]);
    await a.flush();
    expect(await a.hasCommand('cmd-j1')).toBe(true);
    // A commit that skips a version is refused.
    ga.owned.add('ep-6');
    await a.commit(commit('ep-6', 0, { hot: true }));
    await expect(a.commit(commit('ep-6', 2, { checkpoint: false }))).rejects.toMatchObject({
      code: 'store.write_failed',
    });
    const js = jetstream(nc);
    const subject = `ho.${ns}.jnl.a.${tok('ep-5')}.${tok('ep-5')}`;
    // A writer that died right after its journal-only commit: entry 3 landed, its command id did not.
    const dead = {
      actor: 'ep-5',
      journal: { seq: 3, at: 3, event: { type: 'e3' }, state: 's3' },
      by: 'node-dead',
      tails: [
        {
          k: 'cmd',
          subject: `ho.${ns}.idx.cmd.${tok('cmd-j3')}`,
          msgId: 'cmd:cmd-j3',
          data: { actor: 'ep-5', seq: 3 },
        },
      ],
    };
    await js.publish(subject, JSON.stringify(dead));
    expect(await b.hasCommand('cmd-j3')).toBe(false);
    // b takes the group over: it fences the record and the journal, and repairs what entry 3 owed.
    gb.owned.add('ep-5');
    gb.token = 2;
    const adopted = await b.adoptGroup('ep-5');
    expect(adopted.active).toEqual(['ep-5']);
    expect(b.stats.journalFences).toBe(1);
    await b.flush();
    expect(await b.hasCommand('cmd-j3')).toBe(true);
    // a still believes it owns the group: its journal-only commit fails the compare-and-set on the
    // journal; tried again, a reads the actor back and finds it written under lease revision 2.
    await expect(a.commit(jo(3))).rejects.toMatchObject({ code: 'store.write_failed' });
    await expect(a.commit(jo(3))).rejects.toMatchObject({ code: 'lease.lost' });
    await expect(a.commit(jo(4))).rejects.toMatchObject({ code: 'lease.lost' });
    // b goes on from the journal's version (3), not the record's (0).
    await b.commit(jo(4));
    await b.commit(commit('ep-5', 5, { actor: rec('ep-5', 5, 'done') }));
    await b.flush();
    expect((await b.load('ep-5'))?.seq).toBe(5);
    expect((await collect(b.journal('ep-5'))).map((j) => j.seq)).toEqual([0, 1, 2, 3, 4, 5]);
    await a.auditSettled();
    // ep-5's entries 0, 1, 2, 4 and 5 (the dead writer's carried none) and ep-6's 0, linked once each.
    expect(await verifyAudit(a.audit())).toEqual({ ok: true, entries: 6 });
  });

  it('reads the audit log from any entry on: the same entries as a full scan, without scanning', async () => {
    const ns = freshNamespace('au');
    const store = await open({ namespace: ns });
    // Appended in batches of varying size, so audit messages hold several entries each.
    for (let b = 0; b < 40; b++)
      await store.appendAudit(
        Array.from({ length: 1 + (b % 5) }, (_, k) => ({
          at: b * 10 + k,
          kind: 'test.batch',
          actor: `a-${b}`,
          by: 'runtime',
          data: { b, k },
        })),
      );
    await store.auditSettled();
    const all = await collect(store.audit());
    expect(all.map((e) => e.seq)).toEqual(all.map((_, i) => i + 1));
    for (const from of [1, 2, 7, 33, all.length - 1, all.length]) {
      expect(
        (await collect(store.audit(from))).map((e) => e.seq),
        `from ${from}`,
      ).toEqual(all.slice(from - 1).map((e) => e.seq));
    }
    expect(await collect(store.audit(all.length + 1))).toEqual([]);
    // An early stop reads one entry (the console's point reads).
    for await (const e of store.audit(50)) {
      expect(e).toEqual(all[49]);
      break;
    }
    await store.close();
  });

  it('an adopter completes the derived writes a dead owner left unconfirmed (journal, command id, outbox, audit)', async () => {
    const ns = freshNamespace('sr');
    const g = new Switch();
    g.owned.add('ep-9');
    const survivor = await open({ namespace: ns, guard: g, writer: 'survivor', auditSequencer: true });
    // What a writer killed right after its commit leaves: the ACT message (durable, acknowledged)
    // with its derived writes still pending.
    const js = jetstream(nc);
    const record = rec('ep-9.case-1', 1, 'done', 'case');
    const jnl = {
      actor: record.id,
      journal: { seq: 1, at: 1, event: { type: 'approve' }, state: 'approved' },
      audit: [{ at: 1, kind: 'case.approved', actor: record.id, by: 'r-x', data: {} }],
    };
    const out = { id: 'ep-9.case-1.resolution', to: 'ep-9', event: { type: 'case.resolved', at: 1 } };
    const msg = {
      v: 1,
      record,
      hot: false,
      timers: [],
      by: 'dead-writer',
      tails: [
        {
          k: 'jnl',
          subject: `ho.${ns}.jnl.a.${tok('ep-9')}.${tok(record.id)}`,
          msgId: `jnl:${record.id}:1`,
          data: jnl,
          seq: 1,
        },
        {
          k: 'cmd',
          subject: `ho.${ns}.idx.cmd.${tok('cmd-9')}`,
          msgId: 'cmd:cmd-9',
          data: { actor: record.id, seq: 1 },
        },
        {
          k: 'outPut',
          subject: `ho.${ns}.idx.out.${tok('ep-9')}.${tok(out.id)}`,
          msgId: `outp:${out.id}`,
          data: { msg: out },
        },
      ],
    };
    const h = headers();
    h.set('Handoff-Index', JSON.stringify({ k: 'case', m: 'refunds', s: 'done', h: false, q: 1, t: [] }));
    await js.publish(`ho.${ns}.act.${tok('ep-9')}.${tok(record.id)}`, JSON.stringify(msg), { headers: h });
    expect(await survivor.hasCommand('cmd-9')).toBe(false);
    const adopted = await survivor.adoptGroup('ep-9');
    expect(adopted.outbox.map((m) => m.id)).toEqual([out.id]);
    expect(await survivor.hasCommand('cmd-9')).toBe(true);
    expect((await collect(survivor.journal(record.id))).map((j) => j.seq)).toEqual([1]);
    await survivor.auditSettled();
    expect((await collect(survivor.audit())).map((e) => e.kind)).toEqual(['case.approved']);
    // Adopting again repairs nothing twice.
    await survivor.adoptGroup('ep-9');
    await survivor.flush();
    expect((await collect(survivor.journal(record.id))).map((j) => j.seq)).toEqual([1]);
  });
  it('the world: a lookup claims an unwritten key in one write; a stale token is refused at the key, even with its claim remembered', async () => {
    const ns = freshNamespace('wd');
    const store = await open({ namespace: ns });
    const a = new JetStreamWorld(store);
    const b = new JetStreamWorld(store);
    const fence = (token: number) => ({ token, check: () => undefined });
    // First attempt of an effect: claimed with one compare-and-set write against an empty key, applied once.
    expect(await a.lookup('ep-1/0', fence(5))).toBeUndefined();
    expect(a.stats.claims).toBe(1);
    await a.apply('ep-1/0', 'refund', { amount: 1 }, { id: 'r-1' }, fence(5));
    expect(await b.lookup('ep-1/0', fence(5))).toMatchObject({ applications: 1, result: { id: 'r-1' } });
    expect(b.stats.claims).toBe(0);
    // A lookup by the same token again writes nothing more.
    expect(await a.lookup('ep-2/0', fence(5))).toBeUndefined();
    expect(await a.lookup('ep-2/0', fence(5))).toBeUndefined();
    expect(a.stats.claims).toBe(2);
    // A (token 5) claimed ep-3/0 and remembers its claim; B takes the episode over (token 9) and claims
    // it too: A's application, written against its remembered claim, fails the compare-and-set, reads
    // the key and is refused as stale. B's lands once.
    await a.lookup('ep-3/0', fence(5));
    expect(await b.lookup('ep-3/0', fence(9))).toBeUndefined();
    await expect(a.apply('ep-3/0', 'refund', {}, { id: 'r-3' }, fence(5))).rejects.toMatchObject({
      code: 'lease.lost',
    });
    expect(a.stats.refusedStale).toBe(1);
    await b.apply('ep-3/0', 'refund', {}, { id: 'r-3' }, fence(9));
    // A stale claim of a key a newer token holds is refused too.
    await expect(a.lookup('ep-3/1', fence(5)).then(() => b.lookup('ep-3/1', fence(9)))).resolves.toBeUndefined();
    await expect(a.lookup('ep-3/1', fence(5))).rejects.toMatchObject({ code: 'lease.lost' });
    const totals = await a.totals();
    expect(totals).toEqual({ effects: 2, duplicates: 0 });
    // Under its episode's first token (a lease created on a never-written key) the lookup only reads
    // the key: no claim written. A takeover's claim (token 9) still refuses the first owner's application.
    const first = await open({ namespace: ns, trackAll: false });
    first.markFresh('ep-4', 5);
    first.markFresh('ep-5', 5);
    const f = new JetStreamWorld(first);
    expect(await f.lookup('ep-4/0', fence(5))).toBeUndefined();
    expect(f.stats.claims).toBe(0);
    await f.apply('ep-4/0', 'refund', {}, { id: 'r-4' }, fence(5));
    expect(await b.lookup('ep-4/0', fence(9))).toMatchObject({ applications: 1, epoch: 5 });
    expect(await f.lookup('ep-5/0', fence(5))).toBeUndefined();
    expect(await b.lookup('ep-5/0', fence(9))).toBeUndefined();
    await expect(f.apply('ep-5/0', 'refund', {}, { id: 'r-5' }, fence(5))).rejects.toMatchObject({
      code: 'lease.lost',
    });
    await expect(f.lookup('ep-5/0', fence(5))).rejects.toMatchObject({ code: 'lease.lost' });
    expect(f.stats.claims).toBe(0);
    expect(await a.totals()).toEqual({ effects: 3, duplicates: 0 });
  });
  it('a fresh group (its lease key never written): untracked actors load as absent without a read; a failed write sends reads to the store again', async () => {
    const ns = freshNamespace('fr');
    const other = await open({ namespace: ns });
    await other.commit(commit('ep-9', 0));
    const store = await open({ namespace: ns, trackAll: false });
    // A wrong hint (ep-9 was written without its lease): trusted for the read, refused by the write.
    store.markFresh('ep-9', 1);
    expect(await store.load('ep-9')).toBeUndefined();
    await expect(store.commit(commit('ep-9', 0))).rejects.toMatchObject({ code: 'store.write_failed' });
    expect((await store.load('ep-9'))?.seq).toBe(0);
    // A fresh group's own commits are tracked and read as usual; its other actors are absent.
    store.markFresh('ep-10', 1);
    await store.commit(commit('ep-10', 0));
    expect((await store.load('ep-10'))?.seq).toBe(0);
    expect(await store.load('ep-10.case-1')).toBeUndefined();
    store.releaseGroup('ep-10');
    await other.commit(commit('ep-10.case-1', 0, { actor: rec('ep-10.case-1', 0, 'active', 'case') }));
    expect((await store.load('ep-10.case-1'))?.seq).toBe(0);
  });
});
