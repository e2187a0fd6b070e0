/**
 * CLI failures are typed and bounded: each ends the process at once with a message naming what is
 * wrong and exit code 2, never a hang, a stack trace or a silent exit. On main before these tests:
 * `--cases 100000000` grew to 4 GB, `--nats notaurl` and `--data /proc/x` hung, `start --port` on a
 * port in use printed a stack trace and stayed alive, and an action that never settled made the demo
 * exit 13 with no output.
 */
import { copyFile, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from './cli.ts';
import { cleanup, tempDir } from './helpers.ts';

const ROOT = join(import.meta.dirname, '..', '..');
afterAll(cleanup);

const error = (stdout: string) => (JSON.parse(stdout) as { error: { code: string; message: string } }).error;

describe('CLI failures', () => {
  it('--cases past the bound is a usage error naming the bound', async () => {
    const r = await runCli(['demo', '--cases', '100000000', '--data', join(await tempDir(), 'd')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--cases must be at most 1,000,000/);
  });

  it('--nats that is not a server URL is refused at once', async () => {
    const r = await runCli(['demo', '--nats', 'notaurl', '--cases', '5']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/'notaurl' is not a NATS server URL/);
  });

  it('--nats with no server answering: a typed message naming the servers after the bounded wait, exit 2', async () => {
    const t0 = Date.now();
    const r = await runCli(['start', '--nats', 'nats://127.0.0.1:1', '--port', '0'], {
      env: { HANDOFF_NATS_CONNECT_TIMEOUT_MS: '1500' },
    });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('no NATS server answered at nats://127.0.0.1:1 within 1.5 s');
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(Date.now() - t0).toBeLessThan(60_000);
  });

  it('--data where no folder can be made is refused at once, naming it', async () => {
    const r = await runCli(['demo', '--data', '/proc/handoff-x/data', '--cases', '5', '--json']);
    expect(r.code).toBe(2);
    expect(error(r.stdout)).toMatchObject({ code: 'data.unusable' });
    expect(r.stderr).toMatch(/cannot create \/proc\/handoff-x/);
  });

  it('start on a port in use: a typed message, exit 2, and the process ends', async () => {
    const blocker: Server = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = (blocker.address() as { port: number }).port;
    try {
      const r = await runCli(['start', '--port', String(port), '--data', join(await tempDir(), 'console'), '--json']);
      expect(r.code, r.stderr).toBe(2);
      expect(error(r.stdout)).toMatchObject({ code: 'net.port_in_use' });
      expect(r.stderr).toMatch(new RegExp(`port ${port} on 127.0.0.1 is already in use`));
      expect(r.stderr).not.toMatch(/\n\s+at /);
    } finally {
      blocker.close();
    }
  }, 30_000);

  it('an action that never settles times out naming itself; the demo finishes instead of exiting 13', async () => {
    const model = await tempDir();
    await copyFile(join(ROOT, 'models/refunds/model.json'), join(model, 'model.json'));
    await writeFile(join(model, 'package.json'), '{"type":"module"}\n');
    await writeFile(
      join(model, 'handlers.ts'),
      `import refunds from ${JSON.stringify(join(ROOT, 'models/refunds/handlers.ts'))};
const actions = Object.fromEntries(Object.entries(refunds.actions).map(([k, a]) => [k, k === 'issueRefund' ? { ...a, execute: () => new Promise(() => undefined) } : a]));
export default { ...refunds, actions };
`,
    );
    const r = await runCli(
      ['demo', '--model', model, '--cases', '12', '--data', join(await tempDir(), 'd'), '--progress', 'off', '--json'],
      {
        env: { HANDOFF_ACTION_TIMEOUT_MS: '50', HANDOFF_LOG_LEVEL: 'warn' },
      },
    );
    expect(r.code, r.stderr).not.toBe(13);
    const summary = JSON.parse(r.stdout) as { episodes: number; unfinished: number; outcomes: Record<string, number> };
    expect(summary).toMatchObject({ episodes: 12, unfinished: 0 });
    // Episodes whose refund hung ended failed (or were compensated), not stuck.
    expect(summary.outcomes.failed! + summary.outcomes.compensated!).toBeGreaterThan(0);
  }, 30_000);

  it('demo --resume refuses a --model, --cases or --seed other than the run it continues, naming each', async () => {
    const data = join(await tempDir(), 'd');
    const first = await runCli(['demo', '--data', data, '--cases', '6', '--seed', '3', '--progress', 'off', '--json']);
    expect(first.code, first.stderr).toBe(0);
    const again = await runCli(['demo', '--data', data, '--cases', '6', '--progress', 'off']);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/pass --resume to continue its run, --fresh to empty it/);
    const other = await runCli([
      'demo',
      '--resume',
      '--data',
      data,
      '--model',
      'incidents',
      '--cases',
      '9',
      '--seed',
      '3',
      '--json',
    ]);
    expect(other.code).toBe(2);
    expect(error(other.stdout)).toMatchObject({ code: 'demo.resume_mismatch' });
    expect(other.stderr).toContain('--model incidents (the run has refunds), --cases 9 (the run has 6)');
    expect(other.stderr).not.toContain('--seed');
    // The same options, or none, resume the run.
    const same = await runCli(['demo', '--resume', '--data', data, '--cases', '6', '--progress', 'off', '--json']);
    expect(same.code, same.stderr).toBe(0);
    expect(JSON.parse(same.stdout)).toMatchObject({ episodes: 6, resumed: true, seed: 3 });
  }, 60_000);
});
