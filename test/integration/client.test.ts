/**
 * Issue 20, item 6: the typed client (`@handoff-hitl/runtime/client`) against a real `handoff start`
 * gateway (embedded, LevelDB on disk, real HTTP): one signal and a batch, the same key 50 times at once,
 * reading and waiting for an episode, and every refusal as an `ApiClientError` with the API's code.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiClient, ApiClientError, episodeIdFor } from '../../src/client.ts';
import { startConsole, type RunningConsole } from '../../src/app/embedded-console.ts';
import { ServiceAccounts } from '../../src/gateway/service-accounts.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const signal = (i: number) => ({
  ticketId: `T-${i}`,
  orderId: 'ORD-10000042',
  reason: 'arrived broken',
  channel: 'email',
  requestedAmount: 900,
});

describe('the typed client over HTTP (issue 20)', () => {
  let data: string;
  let running: RunningConsole;
  let client: ApiClient;
  let accounts: ServiceAccounts;
  let accountId: string;
  beforeAll(async () => {
    data = await mkdtemp(join(tmpdir(), 'handoff-client-'));
    running = await startConsole({ data, models: [join(ROOT, 'models/refunds')], port: 0 });
    accounts = new ServiceAccounts(running.store);
    const { key, account } = await accounts.create('crm', { refunds: ['signals:submit', 'episodes:read'] });
    accountId = account.id;
    client = new ApiClient({ baseUrl: running.url, key });
  }, 60_000);
  afterAll(async () => {
    await running?.close();
    await rm(data, { recursive: true, force: true });
  });

  it('submits a signal, reads the episode and waits until it reaches a reviewer', { timeout: 60_000 }, async () => {
    const accepted = await client.submit('refunds', signal(1), { idempotencyKey: 'ticket-1' });
    expect(accepted).toMatchObject({ episodeId: episodeIdFor('refunds', 'ticket-1'), created: true });
    const e = await client.waitForOutcome(accepted.episodeId, {
      until: (x) => x.outcome !== null || x.cases.length > 0,
    });
    expect(e.decision?.outcome).toBe('review');
    expect(e.cases[0]).toMatchObject({ tier: 1 });
    const err = await client
      .waitForOutcome(accepted.episodeId, { timeoutMs: 300, intervalMs: 50 })
      .catch((x: unknown) => x);
    expect(err).toMatchObject({ code: 'client.timeout', status: 0 });
  });

  it('waits on the outcome stream (SSE) and pages through the episode list', { timeout: 60_000 }, async () => {
    // A small refund is acted on without review: the stream ends with its outcome.
    const small = { ...signal(20), requestedAmount: 20 };
    const accepted = await client.submit('refunds', small, { idempotencyKey: 'ticket-20' });
    const seen: string[] = [];
    for await (const e of client.events(accepted.episodeId)) seen.push(`${e.type}:${e.data.status}`);
    expect(seen.at(-1)).toBe('outcome:done');
    expect(seen.filter((x) => x.startsWith('outcome'))).toHaveLength(1);
    expect((await client.waitForOutcome(accepted.episodeId)).outcome).toBe('autoActed');
    const other = await client.submit('refunds', { ...small, ticketId: 'T-21' }, { idempotencyKey: 'ticket-21' });
    expect((await client.waitForOutcome(other.episodeId, { timeoutMs: 30_000 })).outcome).toBe('autoActed');

    const first = await client.episodes({ model: 'refunds', limit: 1 });
    expect(first.episodes).toHaveLength(1);
    expect(first.next).not.toBeNull();
    const all: string[] = [];
    for await (const e of client.allEpisodes({ model: 'refunds', limit: 2 })) all.push(e.id);
    expect(new Set(all).size).toBe(all.length);
    expect(all).toEqual(expect.arrayContaining([accepted.episodeId, other.episodeId]));
    const acted = await client.episodes({ outcome: 'autoActed' });
    expect(acted.episodes.every((e) => e.outcome === 'autoActed')).toBe(true);
  });

  it('a batch, and the same batch again: started once', { timeout: 60_000 }, async () => {
    const items = [2, 3, 4].map((i) => ({ signal: signal(i), idempotencyKey: `ticket-${i}` }));
    expect((await client.submitBatch('refunds', items)).map((a) => a.created)).toEqual([true, true, true]);
    expect((await client.submitBatch('refunds', items)).map((a) => a.created)).toEqual([false, false, false]);
  });

  it('50 concurrent submissions of one key start one episode', { timeout: 60_000 }, async () => {
    const answers = await Promise.all(
      Array.from({ length: 50 }, () => client.submit('refunds', signal(5), { idempotencyKey: 'ticket-5' })),
    );
    expect(answers.filter((a) => a.created)).toHaveLength(1);
    expect(new Set(answers.map((a) => a.episodeId)).size).toBe(1);
  });

  it('refusals are typed errors with the API code and the field', { timeout: 60_000 }, async () => {
    const bad = await client
      .submit('refunds', { ...signal(6), orderId: 42 }, { idempotencyKey: 'ticket-6' })
      .catch((x: unknown) => x);
    expect(bad).toBeInstanceOf(ApiClientError);
    expect(bad).toMatchObject({ status: 400, code: 'contract.invalid', details: { path: 'signal.orderId' } });
    expect(await client.episode('sig-nope').catch((x: unknown) => x)).toMatchObject({
      status: 404,
      code: 'episode.not_found',
    });
    const stranger = new ApiClient({ baseUrl: running.url, key: 'hk_sa-000000000000_nope' });
    expect(await stranger.models().catch((x: unknown) => x)).toMatchObject({ status: 401, code: 'auth.invalid_key' });
    const down = new ApiClient({ baseUrl: 'http://127.0.0.1:1', key: 'k', timeoutMs: 2000 });
    expect(await down.episode('x').catch((x: unknown) => x)).toMatchObject({
      status: 0,
      code: 'client.unreachable',
      retryable: true,
    });
    await accounts.revoke(accountId);
    expect(
      await client.submit('refunds', signal(7), { idempotencyKey: 'ticket-7' }).catch((x: unknown) => x),
    ).toMatchObject({
      status: 401,
      code: 'auth.key_revoked',
    });
  });
});
