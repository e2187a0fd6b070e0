/**
 * `GET /api/v1/episodes` over real HTTP on a real LevelDB holding 10,000 more episodes than the
 * runtime ran (written through the store, the fast path): every page walked with and without filters,
 * nothing repeated or missed, and the cursor a range read (the last page costs what the first costs,
 * measured in this test as a ratio). And an episode's links: its own URLs and the console page of its
 * lineage, followed.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { episodeIdFor } from '../../src/contracts/ingest.ts';
import { startConsole, type RunningConsole } from '../../src/app/embedded-console.ts';
import { ServiceAccounts } from '../../src/gateway/service-accounts.ts';
import type { AgentContext } from '../../src/machines/agent.ts';
import { Rng } from '../../src/base/rng.ts';
import type { ActorRecord } from '../../src/runtime/store.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const EXTRA = 10_000;
const OUTCOMES = ['autoActed', 'approved', 'rejected', 'denied', 'failed'] as const;

let data: string;
let running: RunningConsole;
let readerKey: string;
/** The episodes the runtime ran (the rest were written through the store). */
const real = new Set<string>();
const rng = new Rng(4040);
let n = 0;

async function api(path: string, key = readerKey) {
  const res = await fetch(`${running.url}${path}`, { headers: { Authorization: `Bearer ${key}` } });
  return { status: res.status, json: (await res.json()) as any };
}

async function submit(model: string, key: string, signal: Record<string, unknown>): Promise<string> {
  const res = await fetch(`${running.url}/api/v1/models/${model}/signals`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ idempotencyKey: `real-${n}`, signal }),
  });
  expect(res.status).toBe(202);
  return ((await res.json()) as any).accepted[0].episodeId as string;
}

const synth = (model: string) =>
  running.runtime.models.get(model)!.handlers.synthesize(rng, n++) as Record<string, unknown>;

type Row = { id: string; model: string; outcome: string | null; startedAt: number | null };

/** Every page of a listing; the time of each request. */
async function walk(query: string): Promise<{ rows: Row[]; pages: number; cursors: string[] }> {
  const rows: Row[] = [];
  const cursors: string[] = [];
  let cursor: string | null = null;
  let pages = 0;
  do {
    const page = await api(`/api/v1/episodes?${query}${cursor ? `&cursor=${cursor}` : ''}`);
    expect(page.status).toBe(200);
    rows.push(...(page.json.episodes as Row[]));
    cursor = page.json.next as string | null;
    if (cursor) cursors.push(cursor);
    pages++;
  } while (cursor && pages < 1000);
  return { rows, pages, cursors };
}

/** What the store holds, read in full: the expected answer of every listing. */
async function stored(): Promise<Row[]> {
  const out: Row[] = [];
  for await (const rec of running.store.actors('agent')) {
    const c = (rec.snapshot as { context: AgentContext }).context;
    out.push({ id: rec.id, model: rec.model, outcome: c.outcome ?? null, startedAt: c.startedAt ?? null });
  }
  return out;
}

let t0 = 0;

beforeAll(async () => {
  data = await mkdtemp(join(tmpdir(), 'handoff-api-episodes-'));
  running = await startConsole({
    data,
    models: [join(ROOT, 'models/refunds'), join(ROOT, 'models/incidents')],
    port: 0,
    apiLimits: { perAccountPerSecond: 100_000, perAccountBurst: 100_000 },
  });
  const accounts = new ServiceAccounts(running.store);
  const producer = await accounts.create('producer', {
    refunds: ['signals:submit'],
    incidents: ['signals:submit'],
  });
  readerKey = (await accounts.create('reader', { refunds: ['episodes:read'], incidents: ['episodes:read'] })).key;
  // Real episodes of both models, some reviewed (the templates of the ones written below).
  for (let i = 0; i < 16; i++) {
    const model = i % 4 === 0 ? 'incidents' : 'refunds';
    real.add(await submit(model, producer.key, synth(model)));
  }
  await running.runtime.whenIdle();
  const agents: ActorRecord[] = [];
  const cases: ActorRecord[] = [];
  for await (const rec of running.store.actors()) (rec.kind === 'agent' ? agents : cases).push(rec);
  expect(cases.length, 'a reviewed episode among 16').toBeGreaterThan(0);
  // 10,000 episodes through the store itself, ids spread among the real ones; one in four with a case
  // record right after it in key order (what the range read steps over).
  t0 = Date.now() - EXTRA * 1000;
  const writes: Promise<void>[] = [];
  for (let i = 0; i < EXTRA; i++) {
    const template = agents[i % agents.length]!;
    const id = episodeIdFor(template.model, `bulk-${i}`);
    const rec = structuredClone(template);
    const context = (rec.snapshot as { context: AgentContext }).context;
    rec.id = id;
    rec.status = 'done';
    context.episodeId = id;
    context.outcome = OUTCOMES[i % OUTCOMES.length]!;
    context.startedAt = t0 + i * 1000;
    context.endedAt = t0 + i * 1000 + 500;
    context.caseIds = i % 4 === 0 ? [`${id}.case-1`] : [];
    writes.push(
      running.store.commit({
        actor: rec,
        journal: { seq: rec.seq, at: context.startedAt, event: { type: 'test.written' }, state: rec.state },
        liveChanged: false,
      }),
    );
    if (i % 4 === 0) {
      const c = structuredClone(cases[i % cases.length]!);
      c.id = `${id}.case-1`;
      c.status = 'done';
      writes.push(
        running.store.commit({
          actor: c,
          journal: { seq: c.seq, at: context.startedAt, event: { type: 'test.written' }, state: c.state },
          liveChanged: false,
        }),
      );
    }
    if (writes.length >= 2000) await Promise.all(writes.splice(0));
  }
  await Promise.all(writes);
}, 180_000);

afterAll(async () => {
  await running?.close();
  if (data) await rm(data, { recursive: true, force: true });
});

describe('GET /api/v1/episodes on a large store', () => {
  it('walks every page: each episode exactly once, in id order, filters applied', async () => {
    const all = await stored();
    expect(all.length).toBeGreaterThanOrEqual(EXTRA + 16);

    const everything = await walk('limit=200');
    const ids = everything.rows.map((r) => r.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids).toEqual(all.map((r) => r.id));
    expect(ids).toEqual([...ids].sort());
    expect(everything.pages).toBeGreaterThanOrEqual(Math.ceil(all.length / 200));

    const since = t0 + 4000 * 1000;
    const filtered = await walk(`model=refunds&outcome=approved&since=${since}&limit=37`);
    const want = all.filter((r) => r.model === 'refunds' && r.outcome === 'approved' && (r.startedAt ?? 0) >= since);
    expect(want.length).toBeGreaterThan(100);
    expect(filtered.rows.map((r) => r.id)).toEqual(want.map((r) => r.id));
    for (const r of filtered.rows) expect(r).toMatchObject({ model: 'refunds', outcome: 'approved' });

    const incidents = await walk('model=incidents&limit=200');
    expect(incidents.rows.map((r) => r.id)).toEqual(all.filter((r) => r.model === 'incidents').map((r) => r.id));
  }, 120_000);

  it('reads a page after the cursor, not from the start: the last page costs what the first costs', async () => {
    const { cursors } = await walk('limit=50');
    expect(cursors.length).toBeGreaterThan(150);
    const last = cursors.at(-1)!;
    const time = async (query: string) => {
      const start = performance.now();
      const page = await api(`/api/v1/episodes?${query}`);
      expect(page.status).toBe(200);
      expect(page.json.episodes.length).toBeGreaterThan(0);
      return performance.now() - start;
    };
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    const first: number[] = [];
    const lastTimes: number[] = [];
    for (let i = 0; i < 3; i++) await time('limit=50');
    for (let i = 0; i < 15; i++) {
      first.push(await time('limit=50'));
      lastTimes.push(await time(`limit=50&cursor=${last}`));
    }
    // A scan from the start reads about 10,000 records for the last page: 167 times the first here
    // before the cursor became a range read; about 0.6 after it (the last page is a short one).
    const ratio = median(lastTimes) / median(first);
    const ms = (xs: number[]) => `${median(xs).toFixed(1)} ms`;
    console.log(`first page ${ms(first)}, last page ${ms(lastTimes)} (ratio ${ratio.toFixed(2)})`);
    expect(ratio).toBeLessThanOrEqual(5);
  }, 120_000);
});

describe('GET /api/v1/episodes/{id}: links', () => {
  const REVIEWER_OF_TIER: Record<number, [string, string]> = {
    1: ['r-amelie', 'demo-amelie'],
    2: ['r-ingrid', 'demo-ingrid'],
    3: ['r-pieter', 'demo-pieter'],
  };

  it('links its own URL, its outcome stream and the console page of its lineage, each of which answers', async () => {
    const withCase: string[] = [];
    const without: string[] = [];
    for (const id of real) {
      const rec = (await running.store.load(id))!;
      const cases = (rec.snapshot as { context: AgentContext }).context.caseIds;
      if (rec.model === 'refunds') (cases.length > 0 ? withCase : without).push(id);
    }
    expect(withCase.length, 'a reviewed refunds episode among 12').toBeGreaterThan(0);
    expect(without.length, 'a refunds episode without review among 12').toBeGreaterThan(0);
    const reviewed = (await api(`/api/v1/episodes/${withCase[0]}`)).json;
    expect(reviewed.cases.length).toBeGreaterThan(0);
    const caseId = reviewed.cases[0].id as string;
    expect(reviewed.links).toEqual({
      self: `/api/v1/episodes/${reviewed.id}`,
      events: `/api/v1/episodes/${reviewed.id}/events`,
      lineage: `/#/case/${encodeURIComponent(caseId)}`,
    });
    // self: the same episode.
    expect((await api(reviewed.links.self)).json).toMatchObject({ id: reviewed.id, state: reviewed.state });
    // events: the outcome stream, opening with the episode as it is.
    const abort = new AbortController();
    const res = await fetch(`${running.url}${reviewed.links.events}`, {
      headers: { Authorization: `Bearer ${readerKey}` },
      signal: abort.signal,
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const reader = res.body!.getReader();
    let text = '';
    while (!text.includes('event: state')) text += new TextDecoder().decode((await reader.read()).value);
    expect(text).toContain(`"id":"${reviewed.id}"`);
    abort.abort();
    // lineage: the console's case page, whose Lineage card reads the case's lineage: this episode's.
    const page = await fetch(`${running.url}${reviewed.links.lineage.split('#')[0]}`);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('<html');
    const route = /^\/#\/case\/(.+)$/.exec(reviewed.links.lineage)!;
    expect(decodeURIComponent(route[1]!)).toBe(caseId);
    const [who, password] = REVIEWER_OF_TIER[reviewed.cases[0].tier as number]!;
    const login = await fetch(`${running.url}/api/login`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ id: who, password }),
    });
    expect(login.status).toBe(200);
    const cookie = login.headers.get('set-cookie')!.split(';')[0]!;
    const lineage = await fetch(`${running.url}/api/cases/${encodeURIComponent(caseId)}/lineage`, {
      headers: { Cookie: cookie },
    });
    expect(lineage.status).toBe(200);
    expect(JSON.stringify(await lineage.json())).toContain(reviewed.id);

    // An episode without a case has no console page of its lineage.
    const plain = (await api(`/api/v1/episodes/${without[0]}`)).json;
    expect(plain.cases).toEqual([]);
    expect(plain.links).toEqual({
      self: `/api/v1/episodes/${plain.id}`,
      events: `/api/v1/episodes/${plain.id}/events`,
      lineage: null,
    });
  }, 60_000);
});
