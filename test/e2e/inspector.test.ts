import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { APIRequestContext, Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chartOf } from '../../src/inspect/graph.ts';
import { agentMachine } from '../../src/machines/agent.ts';
import { reviewCaseMachine } from '../../src/machines/review-case.ts';
import { launch, shot, startServer, watchErrors, type Server } from './helpers.ts';

interface QueueRow {
  id: string;
  episodeId: string;
  tier: number;
  claimedBy: string | null;
  requestedBy: string | null;
}

/**
 * The live inspector in a real browser, against `handoff start` with a trickle of synthetic
 * episodes: an engineer watches an agent and its review case while a reviewer decides the case
 * through the console's API.
 */
describe('inspector, end to end', () => {
  let data: string;
  let server: Server;
  let browser: Browser;
  const contexts: BrowserContext[] = [];
  const errors: string[] = [];

  async function engineer(): Promise<Page> {
    const ctx = await browser.newContext({
      viewport: { width: 1440, height: 900 },
      locale: 'en-GB',
      timezoneId: 'UTC',
    });
    contexts.push(ctx);
    const page = await ctx.newPage();
    errors.push(...watchErrors(page));
    await page.goto(`${server.url}/inspector`);
    // Not signed in: the login page, which comes back to the inspector.
    await page.waitForURL(/\/login\?next=\/inspector/);
    await page.fill('#login-id', 'r-kai');
    await page.fill('#login-password', 'demo-kai');
    await page.click('#login-submit');
    await page.waitForURL(/\/inspector/);
    await page.waitForSelector('#live.live-on');
    return page;
  }

  async function reviewer(id: string): Promise<{ req: APIRequestContext; csrf: string }> {
    const ctx = await browser.newContext();
    contexts.push(ctx);
    const login = await ctx.request.post(`${server.url}/api/login`, {
      headers: { Origin: server.url },
      data: { id, password: `demo-${id.replace(/^r-/, '')}` },
    });
    expect(login.status()).toBe(200);
    return { req: ctx.request, csrf: ((await login.json()) as { csrfToken: string }).csrfToken };
  }

  beforeAll(async () => {
    data = await mkdtemp(join(tmpdir(), 'handoff-inspector-'));
    server = await startServer([
      '--data',
      data,
      '--model',
      'models/refunds',
      '--demo-load',
      '30',
      '--demo-burst',
      '16',
      '--demo-seed',
      '4',
    ]);
    browser = await launch();
  }, 60_000);

  afterAll(async () => {
    for (const c of contexts) await c.close().catch(() => undefined);
    await browser?.close();
    if (server && server.child.exitCode === null) await server.stop();
    if (data) await rm(data, { recursive: true, force: true });
  });

  it('draws every state, follows a reviewer decision live, travels back in time', async () => {
    const malik = await reviewer('r-malik');
    // A fresh, unclaimed case Malik may decide.
    let target: QueueRow | undefined;
    await expect
      .poll(
        async () => {
          const res = await malik.req.get(`${server.url}/api/queue?status=unclaimed&limit=50`);
          const rows = ((await res.json()) as { rows: QueueRow[] }).rows;
          target = rows.find((r) => r.tier <= 2 && r.requestedBy !== 'r-malik');
          return !!target;
        },
        { timeout: 20_000 },
      )
      .toBe(true);
    const caseId = target!.id;
    const episodeId = target!.episodeId;

    const page = await engineer();
    // The list of live actors, filtered by kind.
    await page.waitForSelector('.actor-item');
    await page.selectOption('#f-kind', 'agent');
    await expect
      .poll(async () =>
        (
          await page
            .locator('.actor-item')
            .evaluateAll((els) => els.map((e) => (e as unknown as { dataset: { kind: string } }).dataset.kind))
        ).every((k) => k === 'agent'),
      )
      .toBe(true);
    await page.selectOption('#f-kind', '');

    // The agent: its statechart has every state of the machine, awaitingReview lit.
    await page.goto(`${server.url}/inspector#/actor/${encodeURIComponent(episodeId)}`);
    await page.waitForSelector('svg.chart-svg[data-chart="agent"]');
    const agentStates = chartOf(agentMachine)
      .nodes.filter((n) => n.parent !== null)
      .map((n) => n.id);
    const drawn = await page
      .locator('svg.chart-svg g.state')
      .evaluateAll((els) => els.map((e) => e.getAttribute('data-state')));
    expect(new Set(drawn)).toEqual(new Set(agentStates));
    await expect.poll(() => page.locator('svg.chart-svg').getAttribute('data-active')).toBe('awaitingReview');
    expect(await page.locator('.log-item').count()).toBeGreaterThan(3);
    await shot(page, 'inspector-agent');

    // Into the case it opened.
    await page.click(`[data-link="${caseId}"]`);
    await page.waitForSelector('svg.chart-svg[data-chart="reviewCase"]');
    const caseStates = chartOf(reviewCaseMachine)
      .nodes.filter((n) => n.parent !== null)
      .map((n) => n.id);
    const drawnCase = await page
      .locator('svg.chart-svg g.state')
      .evaluateAll((els) => els.map((e) => e.getAttribute('data-state')));
    expect(new Set(drawnCase)).toEqual(new Set(caseStates));
    await expect.poll(() => page.locator('svg.chart-svg').getAttribute('data-active')).toBe('queued');

    // A reviewer claims and approves; the lit state follows within a second each time.
    const command = async (type: string, extra: Record<string, unknown> = {}) => {
      const res = await malik.req.post(`${server.url}/api/cases/${encodeURIComponent(caseId)}/commands`, {
        headers: { 'X-CSRF-Token': malik.csrf, Origin: server.url },
        data: { type, schemaVersion: 1, commandId: `e2e-${type}-${Date.now()}`, ...extra },
      });
      expect(res.status(), await res.text()).toBe(200);
      return performance.now();
    };
    const litWithin = async (state: string, since: number) => {
      await page.waitForFunction(
        (s) =>
          (
            globalThis as unknown as {
              document: { querySelector(q: string): { getAttribute(a: string): string | null } | null };
            }
          ).document
            .querySelector('svg.chart-svg')
            ?.getAttribute('data-active') === s,
        state,
        { timeout: 1000, polling: 'raf' },
      );
      return performance.now() - since;
    };
    const claimedAfter = await litWithin('claimed', await command('handoff.case.claim'));
    expect(claimedAfter).toBeLessThan(1000);
    expect(await page.locator('svg.chart-svg').getAttribute('data-taken')).toBe('reviewCase.queued:claim:0');
    // Stay on the case for the screenshot: no following back yet.
    await page.uncheck('#follow');
    const approvedAfter = await litWithin(
      'approved',
      await command('handoff.case.approve', { comment: 'Checked the order: fine.' }),
    );
    expect(approvedAfter).toBeLessThan(1000);
    await expect.poll(() => page.locator('.log-item').count()).toBe(3);
    await page.waitForTimeout(400);
    await shot(page, 'inspector-case-live');

    // Time travel: the slider shows an earlier state.
    await page.locator('#travel').fill('0');
    await expect.poll(() => page.locator('svg.chart-svg').getAttribute('data-active')).toBe('queued');
    expect(await page.locator('body').getAttribute('data-mode')).toBe('past');
    await expect(page.locator('#travel-label').innerText()).resolves.toMatch(/Past · step 1 of 3/);
    await page.locator('#travel').fill('1');
    await expect.poll(() => page.locator('svg.chart-svg').getAttribute('data-active')).toBe('claimed');
    await expect(page.locator('.diff-row[data-path="claim"]').count()).resolves.toBe(1);
    await shot(page, 'inspector-time-travel', true);

    // ... and back to its episode, which acted on the approval and finished.
    await page.check('#follow');
    await page.click(`[data-link="${episodeId}"]`);
    await page.waitForSelector('svg.chart-svg[data-chart="agent"]');
    await expect
      .poll(() => page.locator('svg.chart-svg').getAttribute('data-active'), { timeout: 15_000 })
      .toBe('done');
    // Travel back over the finished episode: the review is still there.
    const steps = await page.locator('.log-item').count();
    const review = await page
      .locator('.log-item')
      .evaluateAll((els) => els.findIndex((e) => (e.textContent ?? '').includes('→ awaitingReview')));
    expect(review).toBeGreaterThan(0);
    await page.locator('#travel').fill(String(review));
    await expect.poll(() => page.locator('svg.chart-svg').getAttribute('data-active')).toBe('awaitingReview');
    expect(steps).toBeGreaterThan(review);
    await page.evaluate(() => (globalThis as unknown as { scrollTo(x: number, y: number): void }).scrollTo(0, 0));
    await shot(page, 'inspector-agent-travel');

    // A reviewer without the engineer role cannot use the inspector's API.
    const amelie = await reviewer('r-amelie');
    const forbidden = await amelie.req.get(`${server.url}/api/inspect/actors`);
    expect(forbidden.status()).toBe(403);
    // Sensitive fields never reach the page.
    const detail = await page.request.get(`${server.url}/api/inspect/actors/${encodeURIComponent(caseId)}`);
    expect(await detail.text()).toContain('[REDACTED]');
    expect(errors).toEqual([]);
  }, 60_000);
});
