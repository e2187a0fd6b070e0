import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from './cli.ts';

/**
 * 8,000 episodes in the default suite (CI's time budget); `npm run test:long` runs 20,000
 * (HANDOFF_LOAD_CASES). The kills fall at the same shares of the run either way.
 */
const CASES = Number(process.env.HANDOFF_LOAD_CASES ?? 8_000);

describe('crash under load: thousands of episodes, faults on, five SIGKILLs', () => {
  const dirs: string[] = [];
  afterAll(async () => {
    if (process.env.HANDOFF_KEEP_DATA) console.log(`data kept in ${dirs.join(', ')}`);
    else for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  it('every episode has exactly one outcome; no duplicate or missing effect; failed sagas compensated or under an operator case', async () => {
    const data = await mkdtemp(join(tmpdir(), 'handoff-load-'));
    dirs.push(data);
    const cases = CASES;
    const at = (share: number) => Math.round(cases * share);
    // Arrivals every second of simulated time on average: thousands of episodes and cases in flight.
    const common = ['--data', data, '--progress', 'lines', '--json', '--faults', '0.05'];
    const kills: { args: string[]; killAfter?: number; failpoints?: string }[] = [
      {
        args: ['demo', '--cases', String(cases), '--seed', '11', '--arrival-ms', '1000', ...common],
        killAfter: at(0.125),
      },
      { args: ['demo', '--resume', ...common], failpoints: 'after-effect:400' },
      { args: ['demo', '--resume', ...common], killAfter: at(0.4) },
      { args: ['demo', '--resume', ...common], failpoints: 'after-effect:900' },
      { args: ['demo', '--resume', ...common], killAfter: at(0.7) },
    ];
    const t0 = Date.now();
    for (const [i, k] of kills.entries()) {
      const run = await runCli(k.args, k);
      expect(run.signal, `kill ${i + 1}: ${run.stderr.slice(-500)}`).toBe('SIGKILL');
    }
    const last = await runCli(['demo', '--resume', ...common]);
    const summary = JSON.parse(last.stdout) as {
      episodes: number;
      outcomes: Record<string, number>;
      unfinished: number;
      duplicateEffects: number;
      effects: number;
      invariantViolations: Record<string, number>;
    };
    console.log(
      `crash under load: ${((Date.now() - t0) / 1000).toFixed(0)} s, ${JSON.stringify(summary.outcomes)}, effects ${summary.effects}, violations ${JSON.stringify(summary.invariantViolations)}`,
    );
    expect(last.code, last.stderr.slice(-2000)).toBe(0);
    expect(summary.episodes).toBe(cases);
    expect(Object.values(summary.outcomes).reduce((a, b) => a + b, 0)).toBe(cases);
    expect(summary.unfinished).toBe(0);
    expect(summary.duplicateEffects).toBe(0);
    expect(summary.invariantViolations).toEqual({
      missingEffects: 0,
      missingCompensations: 0,
      sagasWithoutOperatorCase: 0,
      outcomeMismatch: 0,
    });
    expect(summary.outcomes.compensated).toBeGreaterThan(0);

    const verify = await runCli(['audit', 'verify', '--data', data, '--json']);
    expect(JSON.parse(verify.stdout)).toMatchObject({ ok: true });
  }, 600_000);
});
