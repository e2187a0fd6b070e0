/**
 * Webhooks end to end: a real HTTP receiver on a free port, a real LevelDB, the refunds model. The
 * receiver checks each signature with the recipe of docs/notifications.md (plain node:crypto, none of
 * Handoff's code), answers as each test tells it, and records what arrived.
 */
import { spawn } from 'node:child_process';
import { createHmac, timingSafeEqual } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ModelConfig } from '../../src/contracts/model-config.ts';
import type { LoadedModel } from '../../src/models/loader.ts';
import { NotificationsConfig } from '../../src/contracts/notifications.ts';
import { NotificationConfigError } from '../../src/notify/errors.ts';
import { WebhookPayload } from '../../src/notify/payload.ts';
import { WebhookNotifier } from '../../src/notify/webhooks.ts';
import { SimulatedClock } from '../../src/base/clock.ts';
import { LevelStore } from '../../src/runtime/level-store.ts';
import { Runtime } from '../../src/runtime/runtime.ts';
import type { DeadLetter } from '../../src/runtime/store.ts';
import { LevelWorld } from '../../src/runtime/world.ts';
import { runCli } from './cli.ts';
import {
  LEAD,
  START,
  SEED,
  agentCtx,
  caseCtx,
  cleanup,
  cmd,
  collect,
  drive,
  refunds,
  reviewSignals,
  silent,
  tempDir,
} from './helpers.ts';

const ROOT = join(import.meta.dirname, '..', '..');

const SECRET = 'whsec-test-0123456789abcdef';

// ------------------------------------------------------------------------------------------------
// The receiver
// ------------------------------------------------------------------------------------------------

interface Received {
  headers: IncomingHttpHeaders;
  body: string;
  /** The signature checked with the documented recipe. */
  verified: boolean;
}

/** The documented verification recipe, written out as a receiver would. */
function verify(header: string | undefined, body: string, secret: string, toleranceSec = 300): boolean {
  if (!header) return false;
  const parts = header.split(',').map((p) => p.split('=', 2) as [string, string]);
  const t = Number(parts.find(([k]) => k === 't')?.[1]);
  if (!Number.isInteger(t) || Math.abs(Date.now() / 1000 - t) > toleranceSec) return false;
  const expected = createHmac('sha256', secret).update(`${t}.${body}`).digest();
  return parts.some(([k, v]) => k === 'v1' && v.length === 64 && timingSafeEqual(Buffer.from(v, 'hex'), expected));
}

class Receiver {
  readonly received: Received[] = [];
  /** Status to answer to the n-th request (0-based). */
  answer: (n: number) => number = () => 200;
  url = '';
  #server: Server;
  constructor() {
    this.#server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        const n = this.received.length;
        this.received.push({
          headers: req.headers,
          body,
          verified: verify(req.headers['handoff-signature'] as string | undefined, body, SECRET),
        });
        res.writeHead(this.answer(n), { 'Content-Type': 'text/plain' });
        res.end('ok');
      });
    });
  }
  async start(): Promise<this> {
    await new Promise<void>((r) => this.#server.listen(0, '127.0.0.1', () => r()));
    this.url = `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}/hooks/handoff`;
    return this;
  }
  payloads(): WebhookPayload[] {
    return this.received.map((r) => WebhookPayload.parse(JSON.parse(r.body)));
  }
  close(): Promise<void> {
    this.#server.closeAllConnections();
    return new Promise((r) => this.#server.close(() => r()));
  }
}

// ------------------------------------------------------------------------------------------------
// A runtime with the webhook channel
// ------------------------------------------------------------------------------------------------

interface WEnv {
  dir: string;
  store: LevelStore;
  rt: Runtime;
  clock: SimulatedClock;
  notifier: WebhookNotifier;
}

const open: WEnv[] = [];
const receivers: Receiver[] = [];

afterEach(async () => {
  for (const e of open.splice(0)) {
    await e.notifier.close();
    await e.rt.close().catch(() => undefined);
    await e.store.close().catch(() => undefined);
  }
  for (const r of receivers.splice(0)) await r.close();
  await cleanup();
});

async function receiver(): Promise<Receiver> {
  const r = await new Receiver().start();
  receivers.push(r);
  return r;
}

/** The refunds model with these notification settings instead of the shipped ones. */
async function modelWith(notifications: unknown): Promise<LoadedModel> {
  const m = await refunds();
  return { ...m, config: { ...m.config, notifications: NotificationsConfig.parse(notifications) } };
}

async function openWith(model: LoadedModel, env: Record<string, string>, dir?: string): Promise<WEnv> {
  const d = dir ?? (await tempDir());
  const store = await LevelStore.open(d);
  const notifier = new WebhookNotifier({ store, models: [model], env, log: silent });
  const clock = new SimulatedClock(START);
  const rt = await Runtime.open({
    store,
    world: new LevelWorld(store),
    models: [model],
    clock,
    seed: SEED,
    logger: silent,
    channels: [notifier],
  });
  const e = { dir: d, store, rt, clock, notifier };
  open.push(e);
  return e;
}

async function close(e: WEnv): Promise<void> {
  open.splice(open.indexOf(e), 1);
  await e.notifier.close();
  await e.rt.close();
  await e.store.close();
}

/** Starts an episode on a tier-1 review signal and drives until its case is open. */
async function openCase(e: WEnv, episodeId: string, index = 0): Promise<string> {
  const c = (await reviewSignals({ tier: 1 }))[index]!;
  await e.rt.startEpisode('refunds', c.signal, { episodeId });
  const caseId = `${episodeId}.case-1`;
  const ok = await drive(e.rt, e.clock, async () => {
    const ep = await e.rt.get(episodeId);
    return !!(await e.rt.get(caseId)) && !!ep && agentCtx(ep).caseIds.includes(caseId);
  });
  expect(ok, `case ${caseId} did not open`).toBe(true);
  return caseId;
}

async function until(pred: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 10));
  }
}

const hook = (url: string, extra: Record<string, unknown> = {}) => ({
  name: 'ops',
  urlEnv: 'TEST_WEBHOOK_URL',
  secretEnv: 'TEST_WEBHOOK_SECRET',
  ...extra,
});
const envFor = (r: Receiver) => ({ TEST_WEBHOOK_URL: r.url, TEST_WEBHOOK_SECRET: SECRET });
const fastRetry = (maxAttempts: number) => ({ maxAttempts, minMs: 20, maxMs: 200, jitter: 0.2 });

// ------------------------------------------------------------------------------------------------

describe('webhooks', () => {
  it('an escalation is delivered once, signed as documented, with an idempotency id; the outbox is emptied', async () => {
    const r = await receiver();
    const e = await openWith(await modelWith({ webhooks: [hook(r.url, { events: ['case.escalated'] })] }), envFor(r));
    const caseId = await openCase(e, 'wh-esc');
    expect(r.received).toHaveLength(0); // case.opened is not subscribed
    await e.rt.command(cmd('claim', caseId, LEAD));
    await e.rt.command(cmd('escalate', caseId, LEAD, { reason: 'customer is a repeat complainer' }));
    await e.notifier.whenIdle();

    expect(r.received).toHaveLength(1);
    const [got] = r.received;
    expect(got!.verified).toBe(true);
    expect(got!.headers['content-type']).toBe('application/json');
    const [p] = r.payloads();
    expect(got!.headers['webhook-id']).toBe(p!.id);
    expect(got!.headers['webhook-event']).toBe('case.escalated');
    expect(got!.headers['webhook-attempt']).toBe('1');
    expect(p).toMatchObject({
      type: 'handoff.case.escalated',
      event: 'case.escalated',
      schemaVersion: 1,
      model: 'refunds',
      webhook: 'ops',
    });
    expect(p!.data).toMatchObject({
      caseId,
      cause: 'reviewer',
      by: LEAD.id,
      note: 'customer is a repeat complainer',
      fromTier: { number: 1, queue: 'refunds' },
      tier: { number: 2, queue: 'refunds-escalated' },
    });
    // No personal data leaves the node: no observation fields, no action arguments.
    expect(got!.body).not.toMatch(/"args"|"fields"|"observation"|iban|@/i);
    expect(await collect(e.store.outbox())).toEqual([]);
    expect(e.notifier.stats).toMatchObject({ attempts: 1, delivered: 1, deadLettered: 0 });

    // The same body with a changed byte fails the recipe: the receiver's check is not a formality.
    expect(verify(got!.headers['handoff-signature'] as string, got!.body.replace('refunds', 'refundz'), SECRET)).toBe(
      false,
    );
    expect(verify(got!.headers['handoff-signature'] as string, got!.body, 'another-secret-0123456789')).toBe(false);
  });

  it('SLA: a missed acknowledge deadline notifies sla_breached and escalated; expiry after the last tier notifies expired; filters by queue and tier', async () => {
    const r = await receiver();
    const model = await modelWith({
      webhooks: [
        hook(r.url, { events: ['case.sla_breached', 'case.escalated', 'case.expired'] }),
        {
          name: 'finance',
          urlEnv: 'TEST_WEBHOOK_URL',
          secretEnv: 'TEST_WEBHOOK_SECRET',
          events: ['case.escalated', 'case.expired'],
          queues: ['refunds-finance'],
        },
        {
          name: 'tier-two',
          urlEnv: 'TEST_WEBHOOK_URL',
          secretEnv: 'TEST_WEBHOOK_SECRET',
          events: ['case.sla_breached'],
          tiers: ['Refunds manager'],
        },
      ],
    });
    const e = await openWith(model, envFor(r));
    const caseId = await openCase(e, 'wh-sla');
    const done = await drive(e.rt, e.clock, async () => (await e.rt.get(caseId))?.status === 'done');
    expect(done).toBe(true);
    expect(caseCtx(await e.rt.get(caseId)).resolution?.outcome).toBe('expired');
    await e.notifier.whenIdle();

    const got = r
      .payloads()
      .map((p) => `${p.webhook}:${p.event}:${p.data.fromTier?.number ?? '-'}>${p.data.tier.number}:${p.data.cause}`);
    expect(got.sort()).toEqual(
      [
        'ops:case.sla_breached:1>2:ack-deadline',
        'ops:case.escalated:1>2:ack-deadline',
        'ops:case.sla_breached:2>3:ack-deadline',
        'ops:case.escalated:2>3:ack-deadline',
        'ops:case.sla_breached:->3:ack-deadline',
        'ops:case.expired:->3:ack-deadline',
        // Only what touches the finance queue (tier 3): the escalation into it and the expiry there.
        'finance:case.escalated:2>3:ack-deadline',
        'finance:case.expired:->3:ack-deadline',
        // Only breaches touching the tier named "Refunds manager" (tier 2): leaving it or entering it.
        'tier-two:case.sla_breached:1>2:ack-deadline',
        'tier-two:case.sla_breached:2>3:ack-deadline',
      ].sort(),
    );
    expect(r.received.every((x) => x.verified)).toBe(true);
    const breach = r
      .payloads()
      .find((p) => p.webhook === 'ops' && p.event === 'case.sla_breached' && p.data.tier.number === 2)!;
    const opened = caseCtx(await e.rt.get(caseId)).openedAt;
    expect(breach.data.breach).toEqual({
      deadline: 'ack',
      dueAt: new Date(opened + 15 * 60_000).toISOString(),
      tier: 1,
    });
    // Every id distinct: one delivery per (webhook, transition, event).
    expect(new Set(r.payloads().map((p) => p.id)).size).toBe(r.received.length);
  });

  it('SLA: a claimed case whose resolve deadline passes notifies a resolve-deadline breach', async () => {
    const r = await receiver();
    const e = await openWith(
      await modelWith({ webhooks: [hook(r.url, { events: ['case.sla_breached'], tiers: [1] })] }),
      envFor(r),
    );
    const caseId = await openCase(e, 'wh-resolve');
    // The claim clears the acknowledge deadline; the lease runs out and nobody claims again.
    await e.rt.command(cmd('claim', caseId, LEAD));
    const escalated = await drive(e.rt, e.clock, async () => caseCtx(await e.rt.get(caseId)).tier === 2);
    expect(escalated).toBe(true);
    await e.notifier.whenIdle();
    const [p, ...more] = r.payloads();
    expect(more).toEqual([]);
    const opened = caseCtx(await e.rt.get(caseId)).openedAt;
    expect(p).toMatchObject({
      event: 'case.sla_breached',
      data: {
        caseId,
        cause: 'resolve-deadline',
        breach: { deadline: 'resolve', dueAt: new Date(opened + 3600_000).toISOString(), tier: 1 },
        fromTier: { number: 1 },
        tier: { number: 2 },
      },
    });
  });

  it('retries on 500 with backoff, then delivers once; every attempt carries the same Webhook-Id', async () => {
    const r = await receiver();
    r.answer = (n) => (n < 3 ? 500 : 200);
    const e = await openWith(
      await modelWith({ webhooks: [hook(r.url, { events: ['case.opened'], retry: fastRetry(5) })] }),
      envFor(r),
    );
    await openCase(e, 'wh-retry');
    await e.notifier.whenIdle();
    expect(r.received).toHaveLength(4);
    expect(r.received.map((x) => x.headers['webhook-attempt'])).toEqual(['1', '2', '3', '4']);
    expect(new Set(r.received.map((x) => x.headers['webhook-id'])).size).toBe(1);
    expect(r.received.every((x) => x.verified)).toBe(true);
    expect(e.notifier.stats).toMatchObject({ attempts: 4, retries: 3, delivered: 1, deadLettered: 0 });
    expect(await collect(e.store.outbox())).toEqual([]);
    expect(await collect(e.store.deadLetters())).toEqual([]);
  });

  it('a 429 is retried too; a 400 is not: dead-lettered at the first answer', async () => {
    const r = await receiver();
    r.answer = (n) => (n === 0 ? 429 : 400);
    const e = await openWith(
      await modelWith({ webhooks: [hook(r.url, { events: ['case.opened'], retry: fastRetry(5) })] }),
      envFor(r),
    );
    const caseId = await openCase(e, 'wh-400');
    await e.notifier.whenIdle();
    expect(r.received).toHaveLength(2);
    const letters = await collect(e.store.deadLetters());
    expect(letters).toHaveLength(1);
    expect(letters[0]).toMatchObject({
      actorId: 'webhook:refunds/ops',
      code: 'webhook.rejected',
      event: { type: 'handoff.case.opened' },
    });
    expect(letters[0]!.reason).toContain('400');
    expect((letters[0]!.event as unknown as { payload: WebhookPayload }).payload.data.caseId).toBe(caseId);
    expect(await collect(e.store.outbox())).toEqual([]);
  });

  it('dead-letters after the retry limit; `handoff dead-letters` lists it and replay delivers it once the receiver recovers', async () => {
    const r = await receiver();
    r.answer = () => 500;
    // The shipped example webhook of models/refunds ("ops", URL and secret from the environment), with quick retries.
    const shipped = (await refunds()).config.notifications!.webhooks[0]!;
    const e = await openWith(
      await modelWith({ webhooks: [{ ...shipped, events: ['case.opened'], retry: fastRetry(3) }] }),
      { HANDOFF_REFUNDS_WEBHOOK_URL: r.url, HANDOFF_REFUNDS_WEBHOOK_SECRET: SECRET },
    );
    await openCase(e, 'wh-dead');
    await e.notifier.whenIdle();
    expect(r.received).toHaveLength(3);
    expect(e.notifier.stats).toMatchObject({ attempts: 3, delivered: 0, deadLettered: 1 });
    const [letter] = await collect(e.store.deadLetters());
    expect(letter).toMatchObject({ actorId: 'webhook:refunds/ops', code: 'webhook.retries_exhausted' });
    const webhookId = r.received[0]!.headers['webhook-id'];
    await close(e);

    const env = { HANDOFF_REFUNDS_WEBHOOK_URL: r.url, HANDOFF_REFUNDS_WEBHOOK_SECRET: SECRET };
    const list = await runCli(['dead-letters', 'list', '--data', e.dir, '--json'], { env });
    expect(list.code, list.stderr).toBe(0);
    const listed = JSON.parse(list.stdout) as { count: number; deadLetters: DeadLetter[] };
    expect(listed.deadLetters.map((d) => [d.id, d.actorId, d.code])).toEqual([
      [letter!.id, 'webhook:refunds/ops', 'webhook.retries_exhausted'],
    ]);

    // The CLI's runtime runs on the wall clock, so the case's SLA timers (set on the simulated clock)
    // fire at once there and send notifications of their own: count this delivery's attempts only.
    const mine = () => r.received.filter((x) => x.headers['webhook-id'] === webhookId);
    // Still down: the replay fails and the letter stays.
    const failed = await runCli(
      ['deadletters', 'replay', '--data', e.dir, '--model', join(ROOT, 'models/refunds'), '--json'],
      { env },
    );
    expect(failed.code).toBe(1);
    expect(JSON.parse(failed.stdout)).toMatchObject({ delivered: 0, failed: [{ id: letter!.id }] });
    expect(mine()).toHaveLength(4);

    r.answer = () => 204;
    const replay = await runCli(
      ['deadletters', 'replay', '--data', e.dir, '--model', join(ROOT, 'models/refunds'), '--json'],
      { env },
    );
    expect(replay.code, replay.stderr).toBe(0);
    expect(JSON.parse(replay.stdout)).toMatchObject({ delivered: 1, failed: [] });
    expect(mine()).toHaveLength(5);
    const last = mine()[4]!;
    expect(last.verified).toBe(true);
    expect(WebhookPayload.parse(JSON.parse(last.body)).event).toBe('case.opened');
    const after = await runCli(['dead-letters', 'list', '--data', e.dir, '--json']);
    expect(JSON.parse(after.stdout)).toMatchObject({ count: 0 });
  }, 60_000);

  it('at least once across a kill: committed but not delivered when the process dies, delivered after the restart', async () => {
    const r = await receiver();
    const dir = await tempDir();
    const script = join(await tempDir(), 'child.mts');
    await writeFile(
      script,
      `import { loadModel } from ${JSON.stringify(join(ROOT, 'src/models/loader.ts'))};
import { WebhookNotifier } from ${JSON.stringify(join(ROOT, 'src/notify/webhooks.ts'))};
import { LevelStore } from ${JSON.stringify(join(ROOT, 'src/runtime/level-store.ts'))};
import { Runtime } from ${JSON.stringify(join(ROOT, 'src/runtime/runtime.ts'))};
import { LevelWorld } from ${JSON.stringify(join(ROOT, 'src/runtime/world.ts'))};
const store = await LevelStore.open(process.argv[2]!);
const model = await loadModel(${JSON.stringify(join(ROOT, 'models/refunds'))});
const notifier = new WebhookNotifier({ store, models: [model] });
const rt = await Runtime.open({ store, world: new LevelWorld(store), models: [model], channels: [notifier] });
const caseId = await rt.openOperatorCase({ model: 'refunds', target: 'payments-gateway', kind: 'handoff.integration.stuck', rationale: 'the payment gateway stopped answering', ruleId: 'test:kill', fields: { failures: 12 } });
process.stdout.write(caseId + '\\n');
await new Promise((r) => setTimeout(r, 20_000));
process.exit(3);
`,
    );
    const env = {
      ...process.env,
      HANDOFF_REFUNDS_WEBHOOK_URL: r.url,
      HANDOFF_REFUNDS_WEBHOOK_SECRET: SECRET,
      HANDOFF_FAILPOINTS: 'before-webhook:1',
    };
    const child = await new Promise<{ signal: NodeJS.Signals | null; stdout: string; stderr: string }>(
      (resolve, reject) => {
        const p = spawn(process.execPath, ['--import', 'tsx', script, dir], {
          cwd: ROOT,
          env,
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let stdout = '';
        let stderr = '';
        p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
        p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
        p.on('error', reject);
        p.on('close', (_code, signal) => resolve({ signal, stdout, stderr }));
      },
    );
    // Killed at the delivery, after the operator case's first commit was durable.
    expect(child.signal, child.stderr).toBe('SIGKILL');
    expect(r.received).toHaveLength(0);

    const shipped = await refunds();
    const e = await openWith(
      shipped,
      { HANDOFF_REFUNDS_WEBHOOK_URL: r.url, HANDOFF_REFUNDS_WEBHOOK_SECRET: SECRET },
      dir,
    );
    const caseId = (await collect(e.store.actors('case')))[0]?.id;
    expect(caseId).toMatch(/^payments-gateway\.operator-/);
    await until(() => r.received.length > 0);
    await e.notifier.whenIdle();
    expect(r.received).toHaveLength(1);
    const [p] = r.payloads();
    expect(r.received[0]!.verified).toBe(true);
    expect(p).toMatchObject({
      event: 'operator.opened',
      data: { caseId, operator: true, tier: { queue: 'operators' } },
    });
    expect(await collect(e.store.outbox())).toEqual([]);
  }, 60_000);

  it('configuration: secrets are named, never written; a weak secret is refused by its variable, not its value; unset variables turn a webhook off', async () => {
    const base = (await refunds()).config;
    const bad = ModelConfig.safeParse({
      ...base,
      notifications: {
        webhooks: [
          {
            name: 'ops',
            url: 'https://example.test/h',
            secretEnv: 'X_SECRET',
            secret: 'hunter2-hunter2-hunter2',
            events: ['case.escalated'],
          },
        ],
      },
    });
    expect(bad.success).toBe(false);
    expect(bad.error!.issues[0]).toMatchObject({ path: ['notifications', 'webhooks', 0, 'secret'] });
    expect(bad.error!.issues[0]!.message).toContain('secretEnv');
    const both = NotificationsConfig.safeParse({
      webhooks: [
        {
          name: 'ops',
          url: 'https://example.test/h',
          urlEnv: 'X_URL',
          secretEnv: 'X_SECRET',
          events: ['case.escalated'],
        },
      ],
    });
    expect(both.error!.issues[0]).toMatchObject({
      path: ['webhooks', 0, 'url'],
      message: 'give exactly one of url and urlEnv',
    });
    const unknownEvent = NotificationsConfig.safeParse({
      webhooks: [{ name: 'ops', url: 'https://example.test/h', secretEnv: 'X_SECRET', events: ['case.claimed'] }],
    });
    expect(unknownEvent.error!.issues[0]!.path).toEqual(['webhooks', 0, 'events', 0]);
    // The shipped models stay valid without the section, and the example is off without its variables.
    const { notifications: _n, ...without } = base;
    expect(ModelConfig.safeParse(without).success).toBe(true);

    const model = await refunds();
    const store = await LevelStore.open(await tempDir());
    try {
      const off = new WebhookNotifier({ store, models: [model], env: {} });
      expect(off.status()).toEqual([
        {
          model: 'refunds',
          name: 'ops',
          on: false,
          off: 'HANDOFF_REFUNDS_WEBHOOK_URL is not set',
          host: null,
          events: ['case.escalated', 'case.sla_breached', 'case.expired', 'operator.opened'],
        },
      ]);
      const weak = (() => {
        try {
          return new WebhookNotifier({
            store,
            models: [model],
            env: {
              HANDOFF_REFUNDS_WEBHOOK_URL: 'https://hooks.example.test/x',
              HANDOFF_REFUNDS_WEBHOOK_SECRET: 'short-one',
            },
          });
        } catch (err) {
          return err;
        }
      })();
      expect(weak).toBeInstanceOf(NotificationConfigError);
      expect((weak as NotificationConfigError).details).toEqual({
        model: 'refunds',
        path: 'notifications.webhooks.0.secretEnv',
        env: 'HANDOFF_REFUNDS_WEBHOOK_SECRET',
      });
      expect((weak as Error).message).not.toContain('short-one');
      const badUrl = (() => {
        try {
          return new WebhookNotifier({
            store,
            models: [model],
            env: { HANDOFF_REFUNDS_WEBHOOK_URL: 'file:///etc/passwd', HANDOFF_REFUNDS_WEBHOOK_SECRET: SECRET },
          });
        } catch (err) {
          return err;
        }
      })();
      expect((badUrl as NotificationConfigError).details.path).toBe('notifications.webhooks.0.urlEnv');
    } finally {
      await store.close();
    }
  });
});
