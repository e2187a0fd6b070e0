import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Level } from 'level';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AgentContext } from '../../src/machines/agent.ts';
import type { AuditEntry } from '../../src/base/audit-log.ts';
import { drawFor } from '../../src/base/rng.ts';
import { launch, ROOT, runCli, shot, signIn, startServer, watchErrors, type Server } from './helpers.ts';
import { seedHistory, type OpenCase } from './seed.ts';

/**
 * The reviewer console in a real browser (Debian's chromium through playwright-core), against
 * `handoff start` on a data folder holding six hours of review history.
 */
describe('reviewer console, end to end', () => {
  let data: string;
  let server: Server;
  let browser: Browser;
  let target: OpenCase;
  let tier2: OpenCase;
  let toApprove: OpenCase;
  const contexts: BrowserContext[] = [];
  const errors: string[] = [];

  async function open(id: string): Promise<Page> {
    const ctx = await browser.newContext({
      viewport: { width: 1440, height: 900 },
      locale: 'en-GB',
      timezoneId: 'UTC',
    });
    contexts.push(ctx);
    const page = await ctx.newPage();
    errors.push(...watchErrors(page));
    await signIn(page, server.url, id);
    return page;
  }

  async function search(page: Page, text: string): Promise<void> {
    await page.fill('input.search', text);
    await page.waitForFunction(
      (t) =>
        new URLSearchParams(
          (globalThis as unknown as { location: { hash: string } }).location.hash.split('?')[1] ?? '',
        ).get('q') === t,
      text,
    );
    await page.waitForTimeout(300);
  }

  beforeAll(async () => {
    data = await mkdtemp(join(tmpdir(), 'handoff-e2e-'));
    const seeded = await seedHistory({
      data,
      model: join(ROOT, 'models/refunds'),
      hours: 6,
      arrivalMs: 50_000,
      seed: 11,
      fresh: 30,
      reviewers: 12,
    });
    const fresh = seeded.open.filter((c) => c.id.startsWith('new-') && c.claimedBy === null);
    // A refund whose customer's mailbox accepts mail (the refunds model bounces ~2% of addresses for good).
    const delivers = (c: OpenCase) => drawFor('refunds', 'mailbox-bounces', String(c.args[1]?.email)) >= 0.02;
    target = fresh.find(
      (c) => c.tier === 1 && c.requestedBy === null && c.actions[0] === 'issueRefund' && delivers(c),
    )!;
    // Fresh, so its deadlines are far off: an older one could escalate to tier 3 during the test.
    tier2 = fresh.find((c) => c.tier === 2 && c.requestedBy === null)!;
    toApprove = fresh.find((c) => c.tier === 1 && c.requestedBy === null && c.id !== target.id)!;
    expect(target, 'a fresh tier-1 refund case').toBeDefined();
    expect(toApprove, 'a second fresh tier-1 case').toBeDefined();
    expect(tier2, 'an open tier-2 case').toBeDefined();
    server = await startServer(['--data', data, '--model', 'models/refunds']);
    browser = await launch();
  }, 60_000);

  afterAll(async () => {
    for (const c of contexts) await c.close().catch(() => undefined);
    await browser?.close();
    if (server && server.child.exitCode === null) await server.stop();
    if (data) await rm(data, { recursive: true, force: true });
  });

  it('log in, claim, modify, approve; the agent acts; a second reviewer sees the case leave live', async () => {
    const amelie = await open('r-amelie');
    await expect.poll(() => amelie.locator('tr.row').count()).toBeGreaterThan(3);
    await expect(amelie.locator('.queue-item.active .badge').innerText()).resolves.toMatch(/^\d+$/);
    await shot(amelie, 'queue');

    const jonas = await open('r-jonas');
    await search(jonas, target.subject);
    const row = jonas.locator(`tr.row[data-id="${target.id}"]`);
    await expect(row.locator('.owner').innerText()).resolves.toBe('Unclaimed');
    await jonas.evaluate(() => ((globalThis as unknown as { __noReload: boolean }).__noReload = true));

    // Amélie opens the case from her queue and claims it with the keyboard.
    await search(amelie, target.subject);
    await amelie.click(`tr.row[data-id="${target.id}"]`);
    await amelie.waitForSelector('.case-head h1');
    await amelie.waitForSelector('#audit tbody tr');
    await expect(amelie.locator('.case-head h1').innerText()).resolves.toContain(target.subject);
    await shot(amelie, 'case');
    await amelie.keyboard.press('c');
    await amelie.waitForSelector('#case-banner:has-text("You hold this case")');

    // Jonas sees the claim arrive without reloading.
    await expect.poll(() => row.locator('.owner').innerText(), { timeout: 5000 }).toBe('Amélie Laurent');

    // Modify: halve the refund in the generated form, review the diff, send.
    await amelie.keyboard.press('m');
    const amount = amelie.locator('#a0-amount');
    await amount.waitFor();
    const before = Number(await amount.inputValue());
    const after = Math.round(before * 50) / 100;
    await amount.fill('-3');
    await amelie.fill('#modify-comment', 'Only one item of the order was damaged: half refund.');
    await amelie.click('[data-action="review-modify"]');
    // Client-side validation from the schema: a refund must be positive.
    await expect(amelie.locator('#a0-amount-err').innerText()).resolves.toMatch(/more than 0/);
    await amount.fill(String(after));
    await amelie.click('[data-action="review-modify"]');
    await amelie.waitForSelector('table.diff td.ins');
    await expect(amelie.locator('table.diff td.ins').first().innerText()).resolves.toBe(String(after));
    await shot(amelie, 'modify-diff');
    await amelie.click('[data-action="send-modify"]');

    // The agent acts on the modified plan: the episode ends done, outcome modified.
    await amelie.waitForSelector('#episode-state:has-text("Done · outcome modified")', { timeout: 20_000 });
    await expect(amelie.locator('.chip.state-modified').count()).resolves.toBe(1);
    await expect
      .poll(() => amelie.locator('#audit tbody tr[data-kind="case.modified"]').count(), { timeout: 5000 })
      .toBe(1);
    await shot(amelie, 'case-decided', true);
    // The lineage card: sources → plans (the planner's and Amélie's) → gate → review → actions, with audit numbers.
    await expect
      .poll(() => amelie.locator('#lineage .lineage-stage[data-stage="plans"] .lineage-item').count(), {
        timeout: 5000,
      })
      .toBe(2);
    await expect(amelie.locator('#lineage .lineage-stage[data-stage="sources"]').innerText()).resolves.toContain(
      'shop-orders',
    );
    await expect(amelie.locator('#lineage').innerText()).resolves.toContain('modified by r-amelie');
    await expect.poll(() => amelie.locator('#lineage .lineage-seq').count(), { timeout: 5000 }).toBeGreaterThan(3);
    // An audit number shows its entry in the audit trail and stays on the case page.
    const hashBefore = await amelie.evaluate(
      () => (globalThis as unknown as { location: { hash: string } }).location.hash,
    );
    const firstSeq = (await amelie.locator('#lineage .lineage-seq').first().innerText()).slice(1);
    await amelie.locator('#lineage .lineage-seq').first().click();
    await amelie.waitForSelector(`#audit tbody tr[data-seq="${firstSeq}"].flash`, { timeout: 2000 });
    expect(await amelie.evaluate(() => (globalThis as unknown as { location: { hash: string } }).location.hash)).toBe(
      hashBefore,
    );
    await shot(amelie, 'lineage');

    // ... and the case leaves Jonas's queue, live.
    await row.waitFor({ state: 'detached', timeout: 5000 });
    expect(await jonas.evaluate(() => (globalThis as unknown as { __noReload?: boolean }).__noReload)).toBe(true);

    // The dashboards.
    await amelie.goto(`${server.url}/#/dashboards`);
    await amelie.waitForSelector('.chart-grid[data-rendered="1"]');
    await amelie.waitForTimeout(300);
    await shot(amelie, 'dashboard');
    // Queue depth, times, SLA attainment, auto-rate, escalations.
    await expect(amelie.locator('.uplot').count()).resolves.toBe(5);
    expect(errors).toEqual([]);
  }, 60_000);

  it('a reviewer without the role can neither see nor decide a tier-2 case', async () => {
    const jonas = await open('r-jonas');
    await search(jonas, tier2.subject);
    await expect(jonas.locator(`tr.row[data-id="${tier2.id}"]`).count()).resolves.toBe(0);
    await expect(jonas.locator('.queue-item', { hasText: 'Refunds manager' }).count()).resolves.toBe(0);
    await jonas.goto(`${server.url}/#/case/${encodeURIComponent(tier2.id)}`);
    await jonas.waitForSelector('text=You may not open this case.');
    const session = await jonas.request.get(`${server.url}/api/session`);
    const { csrfToken } = (await session.json()) as { csrfToken: string };
    const res = await jonas.request.post(`${server.url}/api/cases/${encodeURIComponent(tier2.id)}/commands`, {
      headers: { 'X-CSRF-Token': csrfToken, Origin: server.url },
      data: { type: 'handoff.case.claim', schemaVersion: 1, commandId: 'e2e-forbidden-claim' },
    });
    expect(res.status()).toBe(403);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('auth.forbidden');

    // A refunds manager sees it and may claim it.
    const ingrid = await open('r-ingrid');
    await search(ingrid, tier2.subject);
    await ingrid.click(`tr.row[data-id="${tier2.id}"]`);
    await ingrid.waitForSelector('[data-action="claim"]:not([disabled])');
  }, 30_000);

  it('approve through the dialog: the dialog closes and says the agent acts', async () => {
    const amelie = await open('r-amelie');
    await amelie.goto(`${server.url}/#/case/${encodeURIComponent(toApprove.id)}`);
    await amelie.waitForSelector('.case-head h1');
    await amelie.keyboard.press('c');
    await amelie.waitForSelector('#case-banner:has-text("You hold this case")');
    await amelie.keyboard.press('a');
    await amelie.fill('#dialog-text', 'Checked the order and the carrier status.');
    await amelie.click('[data-action="confirm"]');
    await amelie.waitForSelector('.toast:has-text("Approved. The agent acts now.")', { timeout: 10_000 });
    await amelie.locator('#dialog-text').waitFor({ state: 'detached', timeout: 5000 });
    expect(errors).toEqual([]);
  }, 30_000);

  it('the agent really acted, and a tampered audit entry is caught by `handoff audit verify`', async () => {
    expect(await server.stop()).toBe(0);
    const ok = await runCli(['audit', 'verify', '--data', data, '--json']);
    expect(ok.code, ok.stderr).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({ ok: true });

    const db = new Level<string, unknown>(data, { valueEncoding: 'json' });
    await db.open();
    const agent = (await db.get(`a:${target.episodeId}`)) as { status: string; snapshot: { context: AgentContext } };
    expect(agent.status).toBe('done');
    expect(agent.snapshot.context.outcome).toBe('modified');
    let victim: AuditEntry | undefined;
    for await (const [, v] of db.iterator({ gt: 'x:', lt: 'x;' })) {
      const e = v as AuditEntry;
      if (e.actor === target.id && e.kind === 'case.modified') victim = e;
    }
    expect(victim).toBeDefined();
    // A changed field, written straight into LevelDB: the hash no longer matches.
    await db.put(`x:${String(victim!.seq).padStart(12, '0')}`, {
      ...victim!,
      data: { ...victim!.data, note: 'approved in full' },
    });
    await db.close();

    const broken = await runCli(['audit', 'verify', '--data', data, '--json']);
    expect(broken.code).toBe(1);
    const out = JSON.parse(broken.stdout) as { ok: boolean; firstBroken: number; reason: string };
    expect(out).toMatchObject({ ok: false, firstBroken: victim!.seq });
    expect(out.reason).toMatch(/altered/);
  }, 30_000);
});
