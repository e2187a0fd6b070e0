import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { LlmPlanner } from '../../../src/actors/planners/llm-planner.ts';
import { rulePlanner } from '../../../src/actors/planners/planner.ts';
import {
  fakeLlm,
  seen,
  toolReply,
  model,
  observation,
  rulePlan,
  ctx,
  goodCalls,
  planner,
  failure,
} from './fixtures.ts';

describe('LLM planner: the endpoint', () => {
  it('times out each attempt (AbortController), retries, then fails transiently with the cause', async () => {
    // The server would answer after 20 s: only the per-attempt timeout (150 ms) can end both attempts
    // long before that. The bound is generous (CI shares 2 cores); the figure is printed.
    fakeLlm.script = () => ({ delayMs: 20_000, body: toolReply(goodCalls()) });
    const t0 = Date.now();
    const err = await failure(
      planner({ timeoutMs: 150, maxRetries: 1, backoffMs: 10 }).plan(model, 'ep-1', observation, ctx),
    );
    const elapsed = Date.now() - t0;
    console.log(`[llm planner] two attempts with a 150 ms timeout ended after ${elapsed} ms`);
    expect(elapsed).toBeLessThan(10_000);
    expect(seen).toHaveLength(2);
    // The retry went out before the first request could have been answered.
    expect(seen[1]!.at - seen[0]!.at).toBeLessThan(10_000);
    expect(err).toMatchObject({ transient: true, code: 'planner.timeout' });
    expect(err.message).toMatch(/did not answer within 150 ms/);
  });

  it('honours Retry-After on 429', async () => {
    fakeLlm.script = (_r, n) =>
      n === 1
        ? { status: 429, headers: { 'retry-after': '1' }, body: { error: { message: 'Rate limit reached' } } }
        : { body: toolReply(goodCalls()) };
    const plan = await planner({ backoffMs: 10 }).plan(model, 'ep-1', observation, ctx);
    expect(plan.actions).toHaveLength(2);
    expect(seen).toHaveLength(2);
    expect(seen[1]!.at - seen[0]!.at).toBeGreaterThanOrEqual(950);
  });

  it('a Retry-After beyond maxBackoffMs ends the attempt at once (transient: the runtime retries later)', async () => {
    fakeLlm.script = () => ({ status: 429, headers: { 'retry-after': '120' }, body: { error: { message: 'quota' } } });
    const err = await failure(planner({ maxBackoffMs: 5000 }).plan(model, 'ep-1', observation, ctx));
    expect(seen).toHaveLength(1);
    expect(err).toMatchObject({ transient: true, code: 'planner.rate_limited' });
    expect(err.message).toMatch(/answered 429: quota; the server asks to retry after 120000 ms/);
  });

  it('retries 5xx with exponential backoff and succeeds; a server that keeps failing gives a transient error with the status', async () => {
    fakeLlm.script = (_r, n) =>
      n <= 2 ? { status: n === 1 ? 500 : 503, body: 'upstream overloaded' } : { body: toolReply(goodCalls()) };
    const waits: number[] = [];
    const p = planner({ backoffMs: 100 }, { sleep: async (ms) => void waits.push(ms), random: () => 0.5 });
    expect((await p.plan(model, 'ep-1', observation, ctx)).actions).toHaveLength(2);
    expect(waits).toEqual([100, 200]);
    expect(p.stats.httpRetries).toBe(2);

    seen.length = 0;
    fakeLlm.script = () => ({ status: 502, body: { error: { message: 'bad gateway' } } });
    const err = await failure(planner({ maxRetries: 1 }).plan(model, 'ep-1', observation, ctx));
    expect(seen).toHaveLength(2);
    expect(err).toMatchObject({ transient: true, code: 'planner.server_error' });
    expect(err.message).toMatch(/answered 502: bad gateway/);
  });

  it('nothing listening: transient planner.unreachable', async () => {
    const p = new LlmPlanner({
      config: { baseUrl: 'http://127.0.0.1:9/v1', model: 'm', maxRetries: 0 },
      logger: pino({ level: 'silent' }),
    });
    expect(await failure(p.plan(model, 'ep-1', observation, ctx))).toMatchObject({
      transient: true,
      code: 'planner.unreachable',
    });
  });

  it('circuit breaker: opens after N consecutive failures and fails fast, half-opens after the cool-down, a failed trial re-opens it, a good one closes it', async () => {
    let healthy = false;
    fakeLlm.script = () => (healthy ? { body: toolReply(goodCalls()) } : { status: 500, body: 'down' });
    // A cool-down long enough that the checks right after opening happen inside it even on a loaded
    // machine; the half-open state is then polled for, not slept for.
    const p = planner({ maxRetries: 0, circuitBreaker: { failureThreshold: 3, cooldownMs: 600 } });
    const halfOpen = () => expect.poll(() => p.breaker.state, { timeout: 15_000, interval: 20 }).toBe('half-open');
    for (let i = 0; i < 3; i++)
      expect((await failure(p.plan(model, `ep-${i}`, observation, ctx))).code).toBe('planner.server_error');
    let opened = Date.now();
    expect(p.breaker.state).toBe('open');
    const fast = await failure(p.plan(model, 'ep-4', observation, ctx));
    expect(fast).toMatchObject({ transient: true, code: 'circuit.open' });
    expect(seen).toHaveLength(3); // failed fast: no request
    await halfOpen();
    expect(Date.now() - opened).toBeGreaterThanOrEqual(300); // not before the cool-down (600 ms; measured from after the open)
    expect((await failure(p.plan(model, 'ep-5', observation, ctx))).code).toBe('planner.server_error');
    opened = Date.now();
    expect(seen).toHaveLength(4); // the one trial request
    expect(p.breaker.state).toBe('open');
    await halfOpen();
    expect(Date.now() - opened).toBeGreaterThanOrEqual(300);
    healthy = true;
    expect((await p.plan(model, 'ep-6', observation, ctx)).actions).toHaveLength(2);
    expect(p.breaker.state).toBe('closed');
  });

  it('falls back to another planner when the endpoint is unavailable, saying so in the rationale', async () => {
    fakeLlm.script = () => ({ status: 503, body: 'maintenance' });
    const plan = await planner({ maxRetries: 0 }, { fallback: rulePlanner }).plan(model, 'ep-1', observation, ctx);
    expect(plan.actions).toEqual(rulePlan.actions);
    expect(plan.rationale).toMatch(/^\(LLM planner unavailable: .*answered 503.*; planned by rules\.\)/);
  });
});
