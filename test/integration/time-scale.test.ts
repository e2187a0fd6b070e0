/**
 * `handoff start --time-scale` in embedded mode: SLA deadlines pass at the chosen speed so they can be
 * watched in a demo, the clock is kept in the data folder, and a restart never runs it backwards.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startConsole } from '../../src/app/embedded-console.ts';
import type { CaseContext } from '../../src/machines/review-case.ts';
import { Rng } from '../../src/base/rng.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

describe('embedded --time-scale', () => {
  it('a missed acknowledge deadline escalates in wall seconds at 36,000x; a restart continues the stored clock', async () => {
    const data = await mkdtemp(join(tmpdir(), 'handoff-scale-'));
    dirs.push(data);
    const first = await startConsole({ data, models: [join(ROOT, 'models/refunds')], port: 0, timeScale: 36_000 });
    const model = first.runtime.models.get('refunds')!;
    const rng = new Rng(9);
    for (let i = 0; i < 12; i++)
      void first.runtime
        .startEpisode('refunds', model.handlers.synthesize(rng, i), { episodeId: `ts-${i}` })
        .catch(() => undefined);
    const wall0 = Date.now();
    const clock0 = first.runtime.clock.now();
    // Tier 1 acknowledges within 15 min of clock time: 25 ms of wall time at this speed.
    let escalated: CaseContext | undefined;
    for (let i = 0; i < 600 && !escalated; i++) {
      await new Promise((r) => setTimeout(r, 50));
      for (const row of first.gateway.projection.list(
        {
          id: 'p',
          name: 'p',
          grants: { refunds: { roles: ['support-lead', 'refunds-manager', 'finance-controller'], seeSensitive: true } },
        },
        {},
        0,
        1000,
        first.runtime.clock.now(),
      ).rows) {
        const c = (await first.runtime.get(row.id))?.context as CaseContext | undefined;
        if (c && c.escalations > 0) escalated = c;
      }
    }
    const wallMs = Date.now() - wall0;
    expect(escalated, 'a case escalated for a missed deadline').toBeDefined();
    expect(escalated!.history.find((h) => h.kind === 'escalated')!.note).toMatch(/deadline missed/);
    // The clock ran at the chosen speed (generous: at least 1,000x over the wait, whatever the load).
    expect((first.runtime.clock.now() - clock0) / Math.max(1, Date.now() - wall0)).toBeGreaterThan(1_000);
    console.log(`[time-scale] first escalation after ${wallMs} ms of wall time`);
    const before = first.runtime.clock.now();
    await first.close();

    // Started again without --time-scale: the stored clock carries on at real speed, never backwards.
    const second = await startConsole({ data, models: [join(ROOT, 'models/refunds')], port: 0 });
    expect(second.runtime.clock.now()).toBeGreaterThanOrEqual(before);
    await second.close();
  }, 60_000);
});

describe('start: options that do not apply to the chosen mode are refused', () => {
  it('--data with --nats, and --node without it, exit 2 naming the option', async () => {
    const { spawnSync } = await import('node:child_process');
    const run = (...args: string[]) =>
      spawnSync(process.execPath, [join(ROOT, 'bin/handoff.js'), 'start', ...args], {
        encoding: 'utf8',
        timeout: 30_000,
      });
    const a = run('--nats', 'nats://127.0.0.1:1', '--data', '/tmp/nowhere', '--demo-load', '5');
    expect(a.status).toBe(2);
    expect(a.stderr).toContain('--data, --demo-load apply to the embedded runtime only');
    const b = run('--node', 'n1', '--port', '0');
    expect(b.status).toBe(2);
    expect(b.stderr).toContain('--node applies with --nats only');
  }, 60_000);
});
