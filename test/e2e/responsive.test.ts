import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launch, ROOT, shot, signIn, startServer, watchErrors, type Server } from './helpers.ts';
import { seedHistory, type OpenCase } from './seed.ts';

/**
 * The reviewer console on a phone (390×844) and a laptop (1,440×900): queue, case and dashboards
 * laid out without horizontal scrolling or cut-off columns, rows that are links, P1 the most
 * urgent, escalation history on the row, WCAG AA contrast for all text, text alternatives for
 * charts, reviewer text isolated against right-to-left overrides, a claim race that names the
 * winner (issue 17). Polls on conditions with generous limits: the suite runs under CPU load.
 */
const PHONE = { width: 390, height: 844 };
const LAPTOP = { width: 1440, height: 900 };

/** Runs in the page: every visible text below WCAG AA contrast against its effective background. */
function contrastFailures(): { text: string; ratio: number; fg: string; bg: string }[] {
  type RGBA = [number, number, number, number];
  const parse = (c: string): RGBA => {
    const m = /rgba?\(([^)]+)\)/.exec(c);
    if (!m) return [0, 0, 0, 0];
    const p = m[1]!
      .split(/[\s,/]+/)
      .filter(Boolean)
      .map(Number);
    return [p[0]!, p[1]!, p[2]!, p.length > 3 ? p[3]! : 1];
  };
  const blend = (top: RGBA, under: RGBA): RGBA => {
    const a = top[3];
    return [top[0] * a + under[0] * (1 - a), top[1] * a + under[1] * (1 - a), top[2] * a + under[2] * (1 - a), 1];
  };
  const lum = (c: RGBA) => {
    const f = (v: number) => {
      const s = v / 255;
      return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
    };
    return 0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2]);
  };
  const doc = (globalThis as unknown as { document: any }).document;
  const win = globalThis as unknown as { getComputedStyle(e: unknown): any };
  const background = (el: any): RGBA => {
    const layers: RGBA[] = [];
    for (let e = el; e; e = e.parentElement) {
      const bg = parse(win.getComputedStyle(e).backgroundColor);
      if (bg[3] > 0) layers.push(bg);
      if (bg[3] >= 1) break;
    }
    let out: RGBA = [255, 255, 255, 1];
    for (const l of layers.reverse()) out = blend(l, out);
    return out;
  };
  const out: { text: string; ratio: number; fg: string; bg: string }[] = [];
  const walker = doc.createTreeWalker(doc.body, 4 /* text */);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const text = (n.textContent ?? '').trim();
    const el = n.parentElement;
    if (!text || !el || el.closest('svg, canvas, .u-legend, [disabled], .leaving, .toast, option, select')) continue;
    const rect = el.getBoundingClientRect();
    const st = win.getComputedStyle(el);
    if (
      rect.width === 0 ||
      rect.height === 0 ||
      st.visibility === 'hidden' ||
      Number(st.opacity) < 0.99 ||
      el.closest('.sr-only')
    )
      continue;
    const bg = background(el);
    const fg = blend(parse(st.color), bg);
    const l1 = lum(fg);
    const l2 = lum(bg);
    const ratio = (Math.max(l1, l2) + 0.05) / (Math.min(l1, l2) + 0.05);
    const size = parseFloat(st.fontSize);
    const large = size >= 24 || (size >= 18.66 && Number(st.fontWeight) >= 700);
    if (ratio < (large ? 3 : 4.5))
      out.push({
        text: text.slice(0, 40),
        ratio: Math.round(ratio * 100) / 100,
        fg: st.color,
        bg: `rgb(${bg.slice(0, 3).map(Math.round).join(',')})`,
      });
  }
  return out;
}

describe('reviewer console at 390 and 1,440 px wide', () => {
  let data: string;
  let server: Server;
  let browser: Browser;
  let open: OpenCase[];
  const contexts: BrowserContext[] = [];
  const errors: string[] = [];

  async function page(
    id: string,
    viewport: { width: number; height: number },
    opts: { deaf?: boolean } = {},
  ): Promise<Page> {
    const ctx = await browser.newContext({
      viewport,
      locale: 'en-GB',
      timezoneId: 'UTC',
      hasTouch: viewport.width < 500,
      isMobile: viewport.width < 500,
    });
    contexts.push(ctx);
    const p = await ctx.newPage();
    // A page that hears no live updates (its WebSocket answered by a stub), to lose a claim race.
    if (opts.deaf) await p.routeWebSocket(/\/ws$/, () => undefined);
    errors.push(...watchErrors(p));
    await signIn(p, server.url, id);
    return p;
  }

  /** How far the page scrolls sideways (0: it does not), and what sticks out when it does. */
  const noHorizontalScroll = async (p: Page) => {
    const { over, culprits } = await p.evaluate(() => {
      const doc = (globalThis as unknown as { document: any }).document;
      const d = doc.documentElement;
      const out: string[] = [];
      for (const el of doc.body.querySelectorAll('*')) {
        const r = el.getBoundingClientRect();
        if (r.right > d.clientWidth + 1 && out.length < 5)
          out.push(`${el.tagName.toLowerCase()}.${[...el.classList].join('.')} right=${Math.round(r.right)}`);
      }
      return { over: d.scrollWidth - d.clientWidth, culprits: out };
    });
    if (over > 0) console.log(`[responsive] sideways scroll ${over}px: ${culprits.join(' | ')}`);
    return over;
  };

  beforeAll(async () => {
    data = await mkdtemp(join(tmpdir(), 'handoff-responsive-'));
    open = (
      await seedHistory({
        data,
        model: join(ROOT, 'models/refunds'),
        hours: 4,
        arrivalMs: 60_000,
        seed: 11,
        fresh: 12,
        reviewers: 8,
      })
    ).open;
    server = await startServer(['--data', data, '--model', 'models/refunds']);
    browser = await launch();
  }, 90_000);

  afterAll(async () => {
    for (const c of contexts) await c.close().catch(() => undefined);
    await browser?.close();
    if (server && server.child.exitCode === null) await server.stop();
    if (data) await rm(data, { recursive: true, force: true });
  });

  it(
    'queue: links, P1 most urgent, escalation history, nothing cut off, AA contrast',
    { timeout: 90_000 },
    async () => {
      for (const [name, viewport] of [
        ['laptop', LAPTOP],
        ['phone', PHONE],
      ] as const) {
        // A finance controller: tier 3, four eyes, cases escalated there for missed deadlines.
        const p = await page('r-pieter', viewport);
        await expect.poll(() => p.locator('tr.row').count(), { timeout: 20_000 }).toBeGreaterThan(2);
        await shot(p, `responsive-queue-${name}`);
        expect(await noHorizontalScroll(p)).toBeLessThanOrEqual(0);
        // Rows are links, reachable with Tab.
        const rows = await p.locator('tr.row').count();
        expect(await p.locator('tr.row a.case-link[href^="#/case/"]').count()).toBe(rows);
        await p.locator('input.search').focus();
        let reached = false;
        for (let i = 0; i < 30 && !reached; i++) {
          await p.keyboard.press('Tab');
          reached = await p.evaluate(
            () =>
              (
                globalThis as unknown as { document: { activeElement: { matches(s: string): boolean } | null } }
              ).document.activeElement?.matches('a.case-link') ?? false,
          );
        }
        expect(reached, 'Tab reaches a case link').toBe(true);
        // Tier 3 is the most urgent: P1, in the urgent colour.
        const pri = p.locator('tr.row .pri').first();
        expect(await pri.innerText()).toBe('P1');
        expect(await pri.getAttribute('class')).toContain('pri-1');
        // A twice-escalated case says so, and why.
        const twice = open.find(
          (c) => c.tier === 3 && c.claimedBy === null && c.id.startsWith('hist-') && c.id !== 'hist-00032.case-1',
        );
        expect(twice, 'a seeded case escalated to tier 3').toBeDefined();
        await expect.poll(() => p.locator('tr.row .esc').count()).toBeGreaterThan(0);
        expect(await p.locator('tr.row .esc').first().innerText()).toBe('escalated ×2 · ack missed at tier 1, 2');
        expect(await p.locator('tr.row.missed .sla-missed').count()).toBeGreaterThan(0);
        if (name === 'laptop') {
          // Every column fits at 1,440 px, the four-eyes tag included.
          expect(await p.locator('tr.row .tag-four').count()).toBeGreaterThan(0);
          const cut = await p
            .locator('.table-wrap')
            .evaluate(
              (w) =>
                (w as unknown as { scrollWidth: number; clientWidth: number }).scrollWidth -
                (w as unknown as { clientWidth: number }).clientWidth,
            );
          expect(cut).toBeLessThanOrEqual(0);
          const owner = await p.locator('thead th').last().boundingBox();
          expect(owner!.x + owner!.width).toBeLessThanOrEqual(LAPTOP.width);
        }
        expect(await p.evaluate(contrastFailures)).toEqual([]);
      }
    },
  );

  it(
    'case on a phone: claim, reject with a right-to-left override, steps read "not run"; a claim race names the winner',
    { timeout: 90_000 },
    async () => {
      const fresh = open.filter(
        (c) => c.id.startsWith('new-') && c.tier === 1 && c.requestedBy === null && c.claimedBy === null,
      );
      expect(fresh.length).toBeGreaterThanOrEqual(2);
      const [mine, raced] = fresh as [OpenCase, OpenCase];

      const amelie = await page('r-amelie', PHONE);
      await amelie.goto(`${server.url}/#/case/${encodeURIComponent(mine.id)}`);
      await amelie.waitForSelector('.case-head h1');
      expect(await noHorizontalScroll(amelie)).toBeLessThanOrEqual(0);
      const claim = amelie.locator('button[data-action="claim"]');
      const box = await claim.boundingBox();
      expect(box!.x).toBeGreaterThanOrEqual(0);
      expect(box!.x + box!.width).toBeLessThanOrEqual(PHONE.width);
      expect(box!.height).toBeGreaterThanOrEqual(36);
      await claim.click();
      await amelie.waitForSelector('#case-banner:has-text("You hold this case")');
      expect(await amelie.evaluate(contrastFailures)).toEqual([]);
      await shot(amelie, 'responsive-case-phone');

      await amelie.click('button[data-action="reject"]');
      await amelie.waitForSelector('.modal textarea');
      const modal = await amelie.locator('.modal').boundingBox();
      expect(modal!.width).toBeLessThanOrEqual(PHONE.width);
      const reason = 'Customer asked to cancel \u202Ednufer on\u202C; check first';
      await amelie.fill('.modal textarea', reason);
      await shot(amelie, 'responsive-reject-phone');
      await amelie.click('.modal button:has-text("Reject")');
      await amelie.waitForSelector('#case-banner:has-text("Rejected")');
      // The reason is isolated: its override cannot reorder the banner around it.
      expect(await amelie.locator('#case-banner bdi.reason-text').innerText()).toContain('\u202E');
      // The agent never ran the plan: its steps say so.
      await expect
        .poll(() => amelie.locator('#episode .step-status').allInnerTexts(), { timeout: 20_000 })
        .toContain('not run');
      expect(await amelie.locator('#episode .step-status').allInnerTexts()).not.toContain('pending');
      expect(await amelie.evaluate(contrastFailures)).toEqual([]);
      await shot(amelie, 'responsive-case-rejected-phone', true);

      // A claim race: Jonas's page (deaf to live updates) still offers the claim Amélie just took.
      const jonas = await page('r-jonas', LAPTOP, { deaf: true });
      await jonas.goto(`${server.url}/#/case/${encodeURIComponent(raced.id)}`);
      await jonas.waitForSelector('button[data-action="claim"]:not([disabled])');
      const res = await amelie.evaluate(async (id) => {
        const g = globalThis as unknown as { fetch: typeof fetch };
        const s = (await (await g.fetch('/api/session')).json()) as { csrfToken: string };
        const r = await g.fetch(`/api/cases/${encodeURIComponent(id)}/commands`, {
          method: 'POST',
          headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': s.csrfToken },
          body: JSON.stringify({ type: 'handoff.case.claim', schemaVersion: 1, commandId: `race-${Date.now()}` }),
        });
        return r.status;
      }, raced.id);
      expect(res).toBe(200);
      await jonas.click('button[data-action="claim"]');
      await jonas.waitForSelector('.toast:has-text("Amélie Laurent claimed this case first")', { timeout: 15_000 });
      await jonas.waitForSelector('#case-banner:has-text("Claimed by Amélie Laurent")');
      expect(await jonas.locator('#case-banner').innerText()).not.toContain('r-amelie');
      await shot(jonas, 'responsive-case-laptop');
    },
  );

  it('dashboards: escalations chart, text alternatives, both widths', { timeout: 90_000 }, async () => {
    for (const [name, viewport] of [
      ['laptop', LAPTOP],
      ['phone', PHONE],
    ] as const) {
      const p = await page('r-malik', viewport);
      await p.goto(`${server.url}/#/dashboards`);
      await p.waitForSelector('.chart-grid[data-rendered="1"]');
      await expect
        .poll(() => p.locator('.page-count + *, .dash-tools .faint').first().innerText(), { timeout: 20_000 })
        .not.toContain('Loading');
      await p.click('button.seg:has-text("6 hours")');
      await expect
        .poll(() => p.locator('[data-chart="escalations"] .chart-summary').innerText(), { timeout: 20_000 })
        .toMatch(/Acknowledge deadline missed: latest \d+, lowest \d+, highest [1-9]/);
      await shot(p, `responsive-dashboard-${name}`, true);
      for (const label of await p
        .locator('.chart-body[role="img"]')
        .evaluateAll((els) => els.map((e) => e.getAttribute('aria-label') ?? '')))
        expect(label).toMatch(/: .*(latest|no data)/);
      expect(await p.locator('.chart-body').count()).toBe(5);
      expect(await noHorizontalScroll(p)).toBeLessThanOrEqual(0);
      expect(await p.evaluate(contrastFailures)).toEqual([]);
    }
    expect(errors).toEqual([]);
  });
});
