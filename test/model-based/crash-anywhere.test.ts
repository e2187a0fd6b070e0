/**
 * Issue 22 item 4, crash anywhere: the refunds model runs in a child process that is SIGKILLed in the
 * middle of steps (failpoints drawn from a seed: around a store batch, before an action runs, after
 * it ran and before its result is journaled), resumed on the same data folder after each kill; at the
 * end every episode has one outcome and every effect is in the world's ledger exactly once. Then the
 * same against the refunds service of examples/ (real HTTP, its own idempotency table): every refund
 * applied there exactly once. About 15 s and 15 s on a quiet two-core machine.
 */
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { exactlyOnceProblems, startRefundsService } from '../../examples/refunds-service/service.ts';
import { LevelStore } from '../../src/runtime/level-store.ts';
import { LevelWorld } from '../../src/runtime/world.ts';
import { CRASH_POINTS, drawKills, runCrashAnywhere, writeSuite } from '../../src/testing/index.ts';
import { REPO, tempDir } from './support.ts';

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

describe('crash anywhere: SIGKILL in the middle of a step, then resume', () => {
  it('kill points are drawn from the seed: same seed, same points; over a few seeds, every point', () => {
    expect(drawKills(7, 3, 30)).toEqual(drawKills(7, 3, 30));
    expect(drawKills(7, 3, 30)).not.toEqual(drawKills(8, 3, 30));
    const seen = new Set(Array.from({ length: 10 }, (_, s) => drawKills(s + 1, 3, 30).map((k) => k.point)).flat());
    expect([...seen].sort()).toEqual([...CRASH_POINTS].sort());
    for (const k of drawKills(3, 3, 30)) expect(k.hit).toBeGreaterThanOrEqual(1);
  });

  it('refunds, three kills drawn from seed 1: every episode one outcome, every effect once, audit intact', async () => {
    const r = await runCrashAnywhere({ model: join(REPO, 'models', 'refunds'), seed: 1, crashes: 3, cases: 30 });
    console.log(r.report);
    expect(r.ok, r.report).toBe(true);
    expect(r.problems).toEqual([]);
    // The kills happened mid-step (not a graceful stop): at least two of the three drawn points were reached.
    expect(r.kills.filter((k) => k.killed).length, r.report).toBeGreaterThanOrEqual(2);
    expect(r.summary).toMatchObject({ episodes: 30, unfinished: 0, duplicateEffects: 0 });
    expect(Object.values(r.summary!.outcomes).reduce((a, b) => a + b, 0)).toBe(30);
    expect(r.summary!.effects).toBeGreaterThan(0);
    expect(r.auditOk).toBe(true);
    // The report names the seed and every kill point, to run it again.
    expect(r.report).toContain('seed 1');
    for (const k of r.kills) expect(r.report).toContain(`${k.point}:${k.hit}`);
    expect(r.data).toBeUndefined();
  }, 120_000);

  it('an HTTP model and a real service: killed around its calls, every refund applied once there', async () => {
    // The service drops some answers after applying and fails some requests before: the runtime must
    // retry under the same Idempotency-Key, after a kill too, and never apply a change twice.
    const svcData = await tempDir('crash-svc');
    dirs.push(svcData);
    const svc = await startRefundsService({
      data: svcData,
      token: 'crash-test',
      dropRate: 0.1,
      failRate: 0.05,
    });
    const data = await tempDir('crash-http');
    dirs.push(data);
    try {
      const r = await runCrashAnywhere({
        model: join(REPO, 'examples', 'refunds-service', 'model'),
        seed: 4,
        crashes: 2,
        cases: 20,
        points: ['before-effect', 'after-effect'],
        data,
        liveHttp: true,
        env: { REFUNDS_SERVICE_URL: svc.url, REFUNDS_SERVICE_TOKEN: 'crash-test' },
      });
      console.log(r.report);
      expect(r.ok, r.report).toBe(true);
      expect(r.kills.filter((k) => k.killed).length, r.report).toBeGreaterThanOrEqual(1);
      const ledger = await svc.ledger();
      expect(exactlyOnceProblems(ledger)).toEqual([]);
      // What the runtime recorded as done is exactly what the service applied, one for one.
      const store = await LevelStore.open(data);
      const recorded: Record<string, number> = {};
      try {
        for await (const e of new LevelWorld(store).entries()) recorded[e.action] = (recorded[e.action] ?? 0) + 1;
      } finally {
        await store.close();
      }
      const applied = (type: string) => ledger.events.filter((e) => e.type === type).length;
      expect(applied('refund.applied')).toBe(recorded.issueRefund);
      expect(applied('notification.sent')).toBe(recorded.notifyCustomer ?? 0);
      expect(applied('refund.reversed')).toBe(recorded.reverseRefund ?? 0);
      expect(applied('refund.applied')).toBeGreaterThan(0);
    } finally {
      await svc.close();
    }
  }, 120_000);

  it('testgen --crash mid-step writes <model>.crash.test.ts that runs this check with a fixed seed', async () => {
    const out = await tempDir('mbt-crash-mid');
    dirs.push(out);
    await writeSuite(join(REPO, 'models', 'refunds'), out, { crash: 'mid-step', seed: 5 });
    const text = await readFile(join(out, 'refunds.crash.test.ts'), 'utf8');
    expect(text).toContain('runCrashAnywhere({ model, seed: 5, crashes: 3, cases: 30 })');
    for (const line of text.split('\n')) expect(line.length).toBeLessThanOrEqual(120);
  });
});
