import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from './cli.ts';

describe('demo: SIGKILL in the middle, then --resume', () => {
  const dirs: string[] = [];
  afterAll(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  // Two kills land exactly between an effect and the durable record of its result (the window in
  // which a runtime without idempotency keys would repeat the effect), one at a random moment.
  it('every episode ends exactly once, with no duplicate effect, across three hard kills', async () => {
    const data = await mkdtemp(join(tmpdir(), 'handoff-kill-'));
    dirs.push(data);
    const cases = 1200;
    const common = ['--data', data, '--progress', 'lines', '--json'];

    const first = await runCli(['demo', '--cases', String(cases), '--seed', '7', ...common], {
      failpoints: 'after-effect:300',
    });
    expect(first.signal, first.stderr).toBe('SIGKILL');

    const second = await runCli(['demo', '--resume', ...common], { failpoints: 'after-effect:500' });
    expect(second.signal, second.stderr).toBe('SIGKILL');

    const third = await runCli(['demo', '--resume', ...common], { killAfter: 900 });
    expect(third.signal, third.stderr).toBe('SIGKILL');

    const last = await runCli(['demo', '--resume', ...common]);
    expect(last.code, last.stderr).toBe(0);
    const summary = JSON.parse(last.stdout) as {
      episodes: number;
      outcomes: Record<string, number>;
      unfinished: number;
      duplicateEffects: number;
      effects: number;
      resumed: boolean;
    };
    const total = Object.values(summary.outcomes).reduce((a, b) => a + b, 0);
    console.log(
      `kill/resume: ${JSON.stringify(summary.outcomes)} effects=${summary.effects} duplicates=${summary.duplicateEffects}`,
    );
    expect(summary.resumed).toBe(true);
    expect(summary.episodes).toBe(cases);
    expect(total).toBe(cases);
    expect(summary.unfinished).toBe(0);
    expect(summary.duplicateEffects).toBe(0);
    expect(summary.effects).toBeGreaterThan(cases);

    const verify = await runCli(['audit', 'verify', '--data', data, '--json']);
    expect(verify.code, verify.stderr).toBe(0);
    expect(JSON.parse(verify.stdout)).toMatchObject({ ok: true });
  }, 180_000);
});
