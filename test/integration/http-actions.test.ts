/**
 * HTTP actions of model.json (docs/api.md, "HTTP actions"): the executor over real HTTP (headers,
 * URL and body templates, statuses sorted into success / transient / permanent, timeouts, secrets kept
 * out of messages), the loader's checks, and whole episodes of the example model against the example
 * refunds service (examples/refunds-service), a compensation included.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { renderBody, renderUrl, runHttpAction } from '../../src/actors/executors/http-action.ts';
import { zodFromArgSchema } from '../../src/models/http-actions.ts';
import { ContractError, EffectError, ModelError } from '../../src/contracts/errors.ts';
import { HttpCall } from '../../src/contracts/http-action.ts';
import type { AgentContext } from '../../src/machines/agent.ts';
import type { EffectContext, LedgerEntry, World } from '../../src/models/define.ts';
import { loadModel, type LoadedModel } from '../../src/models/loader.ts';
import { sensitivePaths } from '../../src/contracts/classification.ts';
import { startRefundsService, type RunningService } from '../../examples/refunds-service/service.ts';
import { Level } from 'level';
import { cleanup, closeEnv, driveUntilDone, openEnv, tempDir } from './helpers.ts';

const EXAMPLE = resolve('examples/refunds-service/model');
const TOKEN = 'tok-secret-4711';
const TRACE = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';

class MemoryWorld implements World {
  readonly ledger = new Map<string, LedgerEntry>();
  async apply(key: string, action: string, args: Record<string, unknown>, result: unknown): Promise<void> {
    const prev = this.ledger.get(key);
    this.ledger.set(key, { key, action, args, result, at: 0, applications: (prev?.applications ?? 0) + 1 });
  }
  async lookup(key: string): Promise<LedgerEntry | undefined> {
    return this.ledger.get(key);
  }
}

const ctx = (world: World, key = 'ep-1/0'): EffectContext => ({
  now: 0,
  attempt: 1,
  draw: () => 0.5,
  key,
  idempotencyKey: key,
  traceparent: TRACE,
  world,
});

interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
}

/** A test server answering from a script of (status, body, delay) per request; records what it saw. */
async function scripted(
  script: { status: number; body?: unknown; delayMs?: number; headers?: Record<string, string> }[],
): Promise<{ url: string; seen: Seen[]; server: Server }> {
  const seen: Seen[] = [];
  const server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    seen.push({
      method: req.method!,
      url: req.url!,
      headers: req.headers,
      body: Buffer.concat(chunks).toString('utf8'),
    });
    const step = script[Math.min(seen.length - 1, script.length - 1)]!;
    if (step.delayMs) await new Promise((r) => setTimeout(r, step.delayMs));
    if (res.destroyed) return;
    res.writeHead(step.status, { 'content-type': 'application/json', ...step.headers });
    res.end(step.body === undefined ? '' : JSON.stringify(step.body));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  servers.push(server);
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen, server };
}

const servers: Server[] = [];
afterAll(async () => {
  for (const s of servers) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
});

const quick = { sleep: () => Promise.resolve() };

describe('the HTTP action executor', () => {
  const env = { BASE: '', API_TOKEN: TOKEN } as NodeJS.ProcessEnv;

  it('sends the idempotency key, the trace, the secret header, the URL-encoded argument and the body template; records the answer', async () => {
    const svc = await scripted([{ status: 201, body: { refundId: 'rf-1' } }]);
    env.BASE = svc.url;
    const call = HttpCall.parse({
      method: 'POST',
      url: '${env:BASE}/orders/{orderId}/refunds',
      headers: { Authorization: 'Bearer ${env:API_TOKEN}' },
      body: { amount: '{amount}', note: 'ticket {ticketId}', nested: ['{ticketId}'] },
    });
    const world = new MemoryWorld();
    const result = await runHttpAction(
      'issueRefund',
      call,
      { orderId: 'ORD 1/2', amount: 12.5, ticketId: 'T-9' },
      { ...ctx(world), fencingToken: 7 },
      { env, ...quick },
    );
    expect(result).toEqual({ refundId: 'rf-1' });
    const req = svc.seen[0]!;
    expect(req.method).toBe('POST');
    expect(req.url).toBe('/orders/ORD%201%2F2/refunds');
    expect(req.headers['idempotency-key']).toBe('ep-1/0');
    expect(req.headers.traceparent).toBe(TRACE);
    expect(req.headers['handoff-fencing-token']).toBe('7');
    expect(req.headers.authorization).toBe(`Bearer ${TOKEN}`);
    expect(JSON.parse(req.body)).toEqual({ amount: 12.5, note: 'ticket T-9', nested: ['T-9'] });
    expect(world.ledger.get('ep-1/0')).toMatchObject({
      action: 'issueRefund',
      result: { refundId: 'rf-1' },
      applications: 1,
    });
  });

  it('retries a transient status under the same key, then succeeds once; without a body template a POST sends the arguments', async () => {
    const svc = await scripted([
      { status: 503, headers: { 'retry-after': '0' } },
      { status: 429 },
      { status: 200, body: { ok: true } },
    ]);
    const call = HttpCall.parse({ method: 'POST', url: `${svc.url}/x`, retry: { maxAttempts: 3 } });
    const world = new MemoryWorld();
    await expect(runHttpAction('a', call, { n: 1 }, ctx(world), { env, ...quick })).resolves.toEqual({ ok: true });
    expect(svc.seen.map((s) => s.headers['idempotency-key'])).toEqual(['ep-1/0', 'ep-1/0', 'ep-1/0']);
    expect(svc.seen.map((s) => JSON.parse(s.body))).toEqual([{ n: 1 }, { n: 1 }, { n: 1 }]);
    expect(world.ledger.get('ep-1/0')!.applications).toBe(1);
  });

  it('fails transiently after its attempts (the model retry takes over), permanently on any other status, and never shows the secret', async () => {
    const down = await scripted([{ status: 502, body: { error: 'bad gateway' } }]);
    const call = (url: string, extra: Record<string, unknown> = {}) =>
      HttpCall.parse({
        method: 'PUT',
        url: `${url}/y?token=\${env:API_TOKEN}`,
        headers: { 'X-Api-Key': '${env:API_TOKEN}' },
        retry: { maxAttempts: 2 },
        ...extra,
      });
    const world = new MemoryWorld();
    const transient = await runHttpAction('a', call(down.url), {}, ctx(world), { env, ...quick }).catch(
      (e: unknown) => e,
    );
    expect(transient).toBeInstanceOf(EffectError);
    expect((transient as EffectError).transient).toBe(true);
    expect((transient as EffectError).message).toMatch(/failed after 2 attempt\(s\): status 502/);
    expect(down.seen).toHaveLength(2);

    // A service that echoes the secret back: the message shows [redacted] instead.
    const refused = await scripted([{ status: 422, body: { error: 'mailbox.bounced', sawKey: TOKEN } }]);
    const permanent = await runHttpAction('a', call(refused.url), {}, ctx(world), { env, ...quick }).catch(
      (e: unknown) => e,
    );
    expect((permanent as EffectError).transient).toBe(false);
    expect((permanent as EffectError).code).toBe('effect.http_status');
    expect((permanent as EffectError).message).toMatch(/was refused: status 422 .*mailbox\.bounced.*\[redacted\]/);
    expect(refused.seen).toHaveLength(1);
    // A status declared transient is retried; one declared success is success.
    const conflict = await scripted([{ status: 409 }, { status: 204 }]);
    await expect(
      runHttpAction('a', call(conflict.url, { transient: [409], success: [204] }), {}, ctx(world, 'ep-2/0'), {
        env,
        ...quick,
      }),
    ).resolves.toBeNull();
    for (const e of [transient, permanent])
      expect(JSON.stringify({ m: (e as Error).message, d: (e as EffectError).details })).not.toContain(TOKEN);
    expect(world.ledger.size).toBe(1);
  });

  it('fills templates from the arguments own values only', () => {
    expect(() => renderUrl('a', 'http://x/{constructor}', {}, {})).toThrow(/\{constructor\} in its URL has no value/);
    expect(() => renderBody('a', { p: '{__proto__}' }, {})).toThrow(/has no value/);
    expect(renderUrl('a', 'http://x/{o.id}?q={n}', { o: { id: 'a b' }, n: 3 }, {})).toBe('http://x/a%20b?q=3');
    // An argument cannot smuggle in an environment variable: it is encoded before variables are read.
    expect(renderUrl('a', '${env:B}/{v}', { v: '${env:S}' }, { B: 'http://x', S: 'secret' })).toBe(
      'http://x/%24%7Benv%3AS%7D',
    );
  });

  it('times out an attempt that does not answer (transient), and an unreachable service is transient too', async () => {
    const slow = await scripted([{ status: 200, delayMs: 2000 }]);
    const call = HttpCall.parse({ method: 'GET', url: `${slow.url}/z`, timeoutMs: 100, retry: { maxAttempts: 1 } });
    const err = (await runHttpAction('a', call, {}, ctx(new MemoryWorld()), { env, ...quick }).catch(
      (e: unknown) => e,
    )) as EffectError;
    expect(err.transient).toBe(true);
    expect(err.message).toMatch(/no answer within 100 ms/);
    const gone = HttpCall.parse({ method: 'GET', url: 'http://127.0.0.1:1/nothing', retry: { maxAttempts: 1 } });
    const unreachable = (await runHttpAction('a', gone, {}, ctx(new MemoryWorld()), { env, ...quick }).catch(
      (e: unknown) => e,
    )) as EffectError;
    expect(unreachable.transient).toBe(true);
    expect(unreachable.code).toBe('effect.http_unreachable');
  });
});

describe('HTTP actions in model.json', () => {
  let model: LoadedModel;
  beforeAll(async () => {
    process.env.REFUNDS_SERVICE_URL = 'http://127.0.0.1:9';
    process.env.REFUNDS_SERVICE_TOKEN = TOKEN;
    model = await loadModel(EXAMPLE);
  });

  it('validates plans and reviewer edits with the JSON Schema of the arguments; sensitive arguments are classified', async () => {
    const plan = (args: Record<string, unknown>) => ({
      id: 'p',
      planner: 'rules',
      actions: [{ type: 'issueRefund', args }],
      confidence: 1,
      rationale: 'r',
      risk: { score: 0, factors: [] },
    });
    const good = { orderId: 'ORD-12345678', amount: 10, currency: 'EUR', ticketId: 'T-1' };
    expect(model.validatePlan(plan(good)).actions[0]!.args).toEqual(good);
    const err = (() => {
      try {
        model.validatePlan(plan({ ...good, amount: -1, currency: 'USD', extra: 1 }));
      } catch (e) {
        return e as ContractError;
      }
    })();
    expect(err).toBeInstanceOf(ContractError);
    const paths = err!.issues.map((i) => i.path);
    expect(paths).toEqual(
      expect.arrayContaining(['actions.0.args.amount', 'actions.0.args.currency', 'actions.0.args']),
    );
    expect(() =>
      model.editActions(model.validatePlan(plan(good)), [{ type: 'issueRefund', args: { ...good, amount: 'ten' } }]),
    ).toThrow(ContractError);
    expect(sensitivePaths(model.handlers.actions.notifyCustomer!.args)).toEqual(['email']);
    await expect(model.handlers.actions.issueRefund!.execute({}, ctx(new MemoryWorld()))).rejects.toThrow(
      /HTTP action of model.json/,
    );
  });

  it('refuses at load what cannot work, each problem with its path: a missing variable, a placeholder naming no argument, a misspelt key, code and HTTP for one action', async () => {
    const dir = join(await tempDir(), 'bad');
    await mkdir(dir, { recursive: true });
    const json = JSON.parse(
      JSON.stringify(
        (await import('../../examples/refunds-service/model/model.json', { with: { type: 'json' } })).default,
      ),
    );
    json.actions.issueRefund.http.url = '${env:HANDOFF_TEST_UNSET_URL}/refunds/{orderIdd}';
    json.actions.issueRefund.http.timeoutMS = 5;
    json.actions.notifyCustomer.http.headers['Idempotency-Key'] = 'mine';
    json.actions.notifyCustomer.http.success = [202, '5xx'];
    json.actions.reverseRefund.args.properties.orderId.minLen = 1;
    await writeFile(join(dir, 'model.json'), JSON.stringify(json));
    await writeFile(
      join(dir, 'handlers.mts'),
      `import h from ${JSON.stringify(join(EXAMPLE, 'handlers.ts'))};\nexport default { ...h, actions: { issueRefund: { args: h.signal, execute: async () => null } } };\n`,
    );
    const err = (await loadModel(dir).catch((e: unknown) => e)) as ModelError;
    expect(err).toBeInstanceOf(ModelError);
    const text = err.problems.map((p) => `${p.path}: ${p.message}`).join('\n');
    expect(text).toContain("actions.issueRefund.http.timeoutMS: unknown key 'timeoutMS' — did you mean 'timeoutMs'?");
    expect(text).toContain(
      "actions.reverseRefund.args.properties.orderId.minLen: unknown key 'minLen' — did you mean 'minLength'?",
    );
    expect(text).toContain('actions.issueRefund.http.url: environment variable HANDOFF_TEST_UNSET_URL is not set');
    expect(text).toContain("'{orderIdd}' names no argument");
    expect(text).toContain(
      'actions.notifyCustomer.http.headers.Idempotency-Key: Idempotency-Key is set by the runtime',
    );
    expect(text).toContain('actions.notifyCustomer.http.success.1: status 5xx is both success and transient');
    expect(text).toContain(
      "actions.issueRefund: 'issueRefund' is an HTTP action in model.json and also implemented in handlers.ts: keep one",
    );
  });
});

describe('argument schemas (the JSON Schema subset)', () => {
  it('builds closed, typed schemas and names every problem of the schema itself', () => {
    const issues: { path: string; message: string }[] = [];
    const schema = zodFromArgSchema(
      {
        type: 'object',
        properties: {
          n: { type: 'integer', minimum: 1, maximum: 3, pattern: 'x' },
          tags: { type: 'array', items: { type: 'string', enum: ['a', 'b'] }, maxItems: 2 },
          note: { type: 'string', pattern: '(' },
          flag: { type: 'boolean' },
        },
        required: ['n', 'missing'],
      },
      'actions.a.args',
      issues,
    );
    expect(issues.map((i) => i.path)).toEqual([
      'actions.a.args.required.1',
      'actions.a.args.properties.n.pattern',
      'actions.a.args.properties.note.pattern',
    ]);
    expect(schema.safeParse({ n: 2, tags: ['a'], flag: true }).success).toBe(true);
    expect(schema.safeParse({ n: 2.5 }).success).toBe(false);
    expect(schema.safeParse({ n: 4 }).success).toBe(false);
    expect(schema.safeParse({ n: 1, tags: ['c'] }).success).toBe(false);
    expect(schema.safeParse({ n: 1, tags: ['a', 'b', 'a'] }).success).toBe(false);
    expect(schema.safeParse({ n: 1, other: 1 }).success).toBe(false);
    expect(schema.safeParse({}).success).toBe(false);
  });
});

describe('episodes of the example model against the example refunds service', () => {
  let svc: RunningService;
  beforeAll(async () => {
    svc = await startRefundsService({
      data: join(await tempDir(), 'service'),
      token: TOKEN,
      failRate: 0.2,
      dropRate: 0.2,
    });
    process.env.REFUNDS_SERVICE_URL = svc.url;
    process.env.REFUNDS_SERVICE_TOKEN = TOKEN;
  });
  afterAll(() => svc?.close());
  afterEach(cleanup);

  it('applies each refund once through faults, and a bounced notification reverses exactly its refund', async () => {
    const model = await loadModel(EXAMPLE);
    const env = await openEnv({ runtime: { models: [model] } });
    const signals = Array.from({ length: 12 }, (_, i) => ({
      ticketId: `T-${i}`,
      orderId: `ORD-${String(10_000_000 + i)}`,
      amount: 20 + i,
      email: i % 4 === 3 ? `c${i}@bounce.invalid` : `c${i}@example.com`,
      reason: 'damaged',
    }));
    for (const [i, s] of signals.entries())
      await env.rt.startEpisode('shop-refunds', s, { episodeId: `ep-${i}`, traceparent: TRACE });
    const outcomes: Record<string, string> = {};
    for (let i = 0; i < signals.length; i++) {
      const view = await driveUntilDone(env, `ep-${i}`);
      outcomes[`ep-${i}`] = String((view.context as AgentContext).outcome);
    }
    const ledger = await svc.ledger();
    const applied = ledger.events.filter((e) => e.type === 'refund.applied');
    const reversed = ledger.events.filter((e) => e.type === 'refund.reversed');
    // Each episode's refund exactly once (its key `<episode>/0`), whatever the faults made the executor retry.
    expect(applied.map((e) => e.key).sort()).toEqual(signals.map((_, i) => `ep-${i}/0`).sort());
    expect(reversed.map((e) => e.key).sort()).toEqual(['ep-11/0/compensate', 'ep-3/0/compensate', 'ep-7/0/compensate']);
    for (const r of reversed)
      expect(ledger.refunds.find((x) => x.refundId === r.refundId)!.key).toBe(r.key.replace('/compensate', ''));
    for (const [id, outcome] of Object.entries(outcomes))
      expect(outcome, id).toBe(['ep-3', 'ep-7', 'ep-11'].includes(id) ? 'compensated' : 'autoActed');
    // The faults did happen (0.2 each over some 30 calls), and each dropped answer was replayed by the key.
    expect(ledger.faults.failed + ledger.faults.dropped).toBeGreaterThan(0);
    expect(ledger.replays).toBeGreaterThanOrEqual(ledger.faults.dropped);
    expect(ledger.events.every((e) => e.traceparent?.startsWith('00-0af7651916cd43dd8448eb211c80319c-'))).toBe(true);
    // The secret header's value is nowhere in Handoff's data folder (journal, audit, effects ledger),
    // though the arguments and the service's answers are.
    await closeEnv(env);
    const raw = new Level<string, string>(env.dir, { keyEncoding: 'utf8', valueEncoding: 'utf8' });
    let sawArgs = false;
    const leaks: string[] = [];
    for await (const [k, v] of raw.iterator()) {
      if (v.includes('ORD-10000003')) sawArgs = true;
      if (v.includes(TOKEN) || k.includes(TOKEN)) leaks.push(k);
    }
    await raw.close();
    expect(sawArgs).toBe(true);
    expect(leaks).toEqual([]);
  });
});
