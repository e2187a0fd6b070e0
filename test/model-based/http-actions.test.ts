/**
 * Models whose actions are HTTP calls (examples/refunds-service/model): `handoff testgen` generates
 * suites in which each HTTP action is a simulated effect, and they pass with nothing listening at the
 * service's URL (a call would be refused by the closed port and fail the paths). `simulate` and `demo`
 * refuse such a model with a typed error naming the actions and hosts, unless `--live-http`; with it,
 * they call the real example service.
 */
import { execFile } from 'node:child_process';
import { readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRefundsService } from '../../examples/refunds-service/service.ts';
import { loadModel, type LoadedModel } from '../../src/models/loader.ts';
import { simulateHttpActions } from '../../src/testing/simulated-http.ts';
import { REPO, runVitest, tempDir } from './support.ts';

const MODEL = join(REPO, 'examples', 'refunds-service', 'model');
const dirs: string[] = [];
/** A port nothing listens on: taken from the system, then closed again. */
let closedUrl: string;
const saved: Record<string, string | undefined> = {};

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

async function cli(args: string[], env: Record<string, string>, timeout = 120_000): Promise<CliRun> {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [join(REPO, 'bin/handoff.js'), ...args], {
      cwd: REPO,
      env: { ...process.env, ...env, NO_COLOR: '1' },
      timeout,
      maxBuffer: 64 * 1024 * 1024,
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

beforeAll(async () => {
  closedUrl = `http://127.0.0.1:${await freePort()}`;
  for (const k of ['REFUNDS_SERVICE_URL', 'REFUNDS_SERVICE_TOKEN']) saved[k] = process.env[k];
  // The model's check needs its variables; they point at the closed port.
  process.env.REFUNDS_SERVICE_URL = closedUrl;
  process.env.REFUNDS_SERVICE_TOKEN = 'mbt-token';
});

afterAll(async () => {
  for (const [k, v] of Object.entries(saved)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

const env = () => ({ REFUNDS_SERVICE_URL: closedUrl, REFUNDS_SERVICE_TOKEN: 'mbt-token' });

describe('testgen on a model of HTTP actions', () => {
  it('simulated effects: same argument schema, recorded in the ledger under the key, no http left', async () => {
    const model = await loadModel(MODEL);
    const sim = simulateHttpActions(model);
    for (const name of ['issueRefund', 'reverseRefund', 'notifyCustomer']) {
      expect(sim.config.actions[name]?.http).toBeUndefined();
      expect(sim.handlers.actions[name]!.args).toBe(model.handlers.actions[name]!.args);
      expect(model.config.actions[name]?.http).toBeDefined();
    }
    const applied: unknown[][] = [];
    const world = {
      apply: async (...a: unknown[]) => void applied.push(a),
      lookup: async () => undefined,
    };
    const args = { orderId: 'ORD-12345678', amount: 12, currency: 'EUR', ticketId: 'T-1' };
    const ctx = { key: 'ep-1/0', world } as unknown as Parameters<
      LoadedModel['handlers']['actions'][string]['execute']
    >[1];
    const result = await sim.handlers.actions.issueRefund!.execute(args, ctx);
    expect(result).toEqual({ simulated: true, action: 'issueRefund', key: 'ep-1/0' });
    expect(applied).toEqual([['ep-1/0', 'issueRefund', args, result]]);
    // A model without HTTP actions is left as it is.
    const refunds = await loadModel(join(REPO, 'models', 'refunds'));
    expect(simulateHttpActions(refunds)).toBe(refunds);
  });

  it('generates (header says HTTP actions are simulated) and its suite passes with nothing at the URL', async () => {
    const out = await tempDir('mbt-http');
    dirs.push(out);
    const gen = await cli(['testgen', MODEL, '--out', out, '--json'], env());
    expect(gen.code, gen.stderr).toBe(0);
    const summary = JSON.parse(gen.stdout) as { ok: boolean; model: string; tests: number };
    expect(summary).toMatchObject({ ok: true, model: 'shop-refunds' });
    for (const f of ['agent', 'case', 'property']) {
      const text = await readFile(join(out, `shop-refunds.${f}.test.ts`), 'utf8');
      expect(text).toContain('HTTP actions are simulated: issueRefund, reverseRefund, notifyCustomer never call');
      for (const line of text.split('\n')) expect(line.length).toBeLessThanOrEqual(120);
    }
    const agent = await readFile(join(out, 'shop-refunds.agent.test.ts'), 'utf8');
    // Retry and compensation paths are generated as for a TypeScript action.
    expect(agent).toMatch(/transient ×\d+, budget spent/);
    expect(agent).toContain('⇒ compensated');
    expect(agent).toContain("result: 'permanent'");
    const fixtures = JSON.parse(await readFile(join(out, 'shop-refunds.fixtures.json'), 'utf8')) as {
      plans: Record<string, { actions: { type: string }[] }>;
    };
    const types = new Set(Object.values(fixtures.plans).flatMap((p) => p.actions.map((a) => a.type)));
    expect([...types]).toEqual(expect.arrayContaining(['issueRefund', 'notifyCustomer']));

    // Nothing is started at REFUNDS_SERVICE_URL: a real call would be refused and the paths would fail.
    const run = await runVitest(out, [{ name: 'http', root: out, include: ['*.test.ts'], env: env() }]);
    const failed = run.results.filter((r) => r.status !== 'passed');
    expect(failed.map((r) => `${r.name}: ${r.failure.slice(0, 400)}`)).toEqual([]);
    expect(run.exitCode, run.stderr.slice(-2000)).toBe(0);
    expect(run.results.length).toBe(summary.tests + 1);
  }, 240_000);

  it('--crash mid-step (a child process running the demo, which would call out) is refused, typed', async () => {
    const out = await tempDir('mbt-http-crash');
    dirs.push(out);
    const r = await cli(['testgen', MODEL, '--out', out, '--crash', 'mid-step', '--json'], env());
    expect(r.code).toBe(1);
    const body = JSON.parse(r.stdout) as { ok: boolean; error: { code: string; details: { httpActions: string[] } } };
    expect(body.ok).toBe(false);
    expect(body.error.code).toBe('testgen.http_crash');
    expect(body.error.details.httpActions).toEqual(['issueRefund', 'reverseRefund', 'notifyCustomer']);
  }, 60_000);
});

describe('simulate and demo on a model of HTTP actions', () => {
  const host = () => new URL(closedUrl).host;

  it('simulate without --live-http: refused, naming the actions and the hosts (--json and text)', async () => {
    const r = await cli(['simulate', MODEL, '--cases', '3', '--progress', 'off', '--json'], env());
    expect(r.code).toBe(1);
    const body = JSON.parse(r.stdout) as {
      ok: boolean;
      error: { code: string; message: string; details: { actions: string[]; hosts: string[] } };
    };
    expect(body.ok).toBe(false);
    expect(body.error.code).toBe('sim.http_actions_live');
    expect(body.error.details.actions).toEqual(['issueRefund', 'reverseRefund', 'notifyCustomer']);
    expect(body.error.details.hosts).toEqual([host()]);
    expect(body.error.message).toContain('--live-http');
    const text = await cli(['simulate', MODEL, '--cases', '3', '--progress', 'off'], env());
    expect(text.code).toBe(1);
    expect(text.stderr).toContain(`issueRefund: POST ${host()}`);
  }, 60_000);

  it('demo without --live-http: refused the same way, before anything is written', async () => {
    const data = join(await tempDir('demo-http'), 'data');
    dirs.push(data);
    const r = await cli(
      ['demo', '--model', MODEL, '--data', data, '--cases', '3', '--progress', 'off', '--json'],
      env(),
    );
    expect(r.code).not.toBe(0);
    const body = JSON.parse(r.stdout) as { ok: boolean; error: { code: string; details: { hosts: string[] } } };
    expect(body.error.code).toBe('sim.http_actions_live');
    expect(body.error.details.hosts).toEqual([host()]);
    // A model of TypeScript actions needs no option.
    const plain = await cli(['simulate', join(REPO, 'models', 'refunds'), '--cases', '2', '--json'], {});
    expect(plain.code, plain.stderr).toBe(0);
  }, 60_000);

  it("demo --live-http calls the service; its --resume without the option is refused (the run's model)", async () => {
    const svcData = await tempDir('demo-svc');
    const data = join(await tempDir('demo-live'), 'data');
    dirs.push(svcData, data);
    const svc = await startRefundsService({ data: svcData, token: 'demo-token' });
    const vars = { REFUNDS_SERVICE_URL: svc.url, REFUNDS_SERVICE_TOKEN: 'demo-token' };
    try {
      const common = ['--data', data, '--progress', 'off', '--json'];
      const r = await cli(['demo', '--model', MODEL, '--cases', '4', '--live-http', ...common], vars);
      expect(r.code, r.stderr).toBe(0);
      expect((JSON.parse(r.stdout) as { episodes: number }).episodes).toBe(4);
      expect((await svc.ledger()).events.some((e) => e.type === 'refund.applied')).toBe(true);
      const again = await cli(['demo', '--resume', ...common], vars);
      expect(again.code).not.toBe(0);
      expect((JSON.parse(again.stdout) as { error: { code: string } }).error.code).toBe('sim.http_actions_live');
    } finally {
      await svc.close();
    }
  }, 120_000);

  it('--help names --live-http for simulate and demo', async () => {
    for (const cmd of ['simulate', 'demo']) {
      const r = await cli([cmd, '--help'], {});
      expect(r.code).toBe(0);
      expect(r.stdout).toContain('--live-http');
    }
  }, 60_000);

  it('simulate --live-http calls the real service: its refunds are applied there, once each', async () => {
    const svcData = await tempDir('sim-svc');
    dirs.push(svcData);
    const svc = await startRefundsService({ data: svcData, token: 'sim-token' });
    try {
      const r = await cli(['simulate', MODEL, '--cases', '6', '--progress', 'off', '--live-http', '--json'], {
        REFUNDS_SERVICE_URL: svc.url,
        REFUNDS_SERVICE_TOKEN: 'sim-token',
      });
      expect(r.code, r.stderr).toBe(0);
      const report = JSON.parse(r.stdout) as { episodes: number; invariants: { violations: number } };
      expect(report.episodes).toBe(6);
      expect(report.invariants.violations).toBe(0);
      const ledger = await svc.ledger();
      const applied = ledger.events.filter((e) => e.type === 'refund.applied');
      expect(applied.length).toBeGreaterThan(0);
      expect(new Set(applied.map((e) => e.key)).size).toBe(applied.length);
    } finally {
      await svc.close();
    }
  }, 120_000);
});
