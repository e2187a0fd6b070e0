/**
 * What the LLM planner tests share (split from test/integration/llm-planner.test.ts by describe block):
 * a local server that speaks the Chat Completions protocol, scripted per test (`fakeLlm.script`), the
 * replies it can give, the refunds model with a ticket the rules answer with a refund, and the planner.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { afterAll, afterEach, beforeAll, expect } from 'vitest';
import { LlmPlanner, type LlmPlannerOptions } from '../../../src/actors/planners/llm-planner.ts';
import { perceive } from '../../../src/actors/perceivers/perceive.ts';
import { rulePlanner } from '../../../src/actors/planners/planner.ts';
import { EffectError } from '../../../src/contracts/errors.ts';
import type { Observation } from '../../../src/contracts/observation.ts';
import type { Plan } from '../../../src/contracts/plan.ts';
import type { StepContext } from '../../../src/models/define.ts';
import { loadModel, type LoadedModel } from '../../../src/models/loader.ts';
import { screenedGate } from '../../../src/policy/injection-screen.ts';
import { Rng } from '../../../src/base/rng.ts';

// -------------------------------------------------------------------------------------------------
// A local server that speaks the Chat Completions protocol, scripted per test
// -------------------------------------------------------------------------------------------------

export interface Seen {
  at: number;
  headers: IncomingMessage['headers'];
  body: {
    model: string;
    messages: { role: string; content: string }[];
    tools: { type: string; function: { name: string; description: string; parameters: Record<string, any> } }[];
    temperature: number;
  };
}
export interface Reply {
  status?: number;
  headers?: Record<string, string>;
  /** JSON body (objects are serialised), or raw text. */
  body?: unknown;
  delayMs?: number;
}
export type Script = (req: Seen, n: number) => Reply;

export let server: Server;
export let baseUrl: string;
/** How the server answers the next requests: each test sets its own. */
export const fakeLlm: { script: Script } = { script: () => ({ status: 500 }) };
export const seen: Seen[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    let raw = '';
    req.on('data', (c) => (raw += c));
    req.on('end', () => {
      const s: Seen = { at: Date.now(), headers: req.headers, body: JSON.parse(raw || '{}') };
      seen.push(s);
      const r = fakeLlm.script(s, seen.length);
      const send = () => {
        if (res.destroyed) return;
        res.writeHead(r.status ?? 200, { 'content-type': 'application/json', ...r.headers });
        res.end(typeof r.body === 'string' ? r.body : JSON.stringify(r.body ?? {}));
      };
      if (r.delayMs) setTimeout(send, r.delayMs).unref();
      else send();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});
afterEach(() => {
  seen.length = 0;
});

export function toolReply(calls: { name: string; args: unknown }[], content: string | null = null) {
  return {
    id: 'chatcmpl-test',
    object: 'chat.completion',
    model: 'test-model',
    choices: [
      {
        index: 0,
        finish_reason: calls.length ? 'tool_calls' : 'stop',
        message: {
          role: 'assistant',
          content,
          ...(calls.length
            ? {
                tool_calls: calls.map((c, i) => ({
                  id: `call_${i}`,
                  type: 'function',
                  function: { name: c.name, arguments: typeof c.args === 'string' ? c.args : JSON.stringify(c.args) },
                })),
              }
            : {}),
        },
      },
    ],
  };
}
export const contentReply = (content: string) => toolReply([], content);

// -------------------------------------------------------------------------------------------------
// The model, an observation and the planner
// -------------------------------------------------------------------------------------------------

export const KEY = 'sk-test-Zq8rT3uV6wX9yA2bC5dE';
export let model: LoadedModel;
export let observation: Observation;
export let signal: unknown;
export let rulePlan: Plan;
export const ctx: StepContext = { now: Date.UTC(2026, 0, 5), attempt: 1, draw: () => 0.5 };

beforeAll(async () => {
  model = await loadModel('models/refunds');
  // A synthetic ticket that perceives and that the rules answer with a refund.
  for (let i = 0; ; i++) {
    const sig = model.handlers.synthesize(new Rng(11), i);
    try {
      const obs = await perceive(model, 'ep-1', sig, ctx);
      const p = await rulePlanner.plan(model, 'ep-1', obs, ctx);
      if (p.actions[0]!.type === 'issueRefund') {
        [observation, signal, rulePlan] = [obs, sig, p];
        break;
      }
    } catch {
      /* next */
    }
  }
});

export const fields = () =>
  observation.fields as {
    orderId: string;
    order: { amount: number };
    customer: { iban: string; email: string; name: string };
  };

/** What a well-behaved LLM answers: the refund, with the withheld IBAN and e-mail as tokens. */
export function goodCalls(
  over: { confidence?: number; amount?: number } = {},
): { name: string; args: Record<string, unknown> }[] {
  const f = fields();
  return [
    {
      name: 'issueRefund',
      args: {
        orderId: f.orderId,
        amount: over.amount ?? f.order.amount,
        currency: 'EUR',
        iban: '[[sensitive:customer.iban]]',
      },
    },
    { name: 'notifyCustomer', args: { email: '[[sensitive:customer.email]]', template: 'refund-issued' } },
    {
      name: 'submit_plan',
      args: {
        confidence: over.confidence ?? 0.9,
        rationale: 'Carrier confirms the problem; within the return window; full refund.',
        risk: { score: 0.2, factors: [{ name: 'amount', value: 0.1, note: 'small order' }] },
        citedInputs: ['order.amount', 'fields.order.status', 'reason', 'customer.wealth'],
      },
    },
  ];
}

export function planner(over: Partial<LlmPlannerOptions['config']> = {}, opts: Partial<LlmPlannerOptions> = {}) {
  return new LlmPlanner({
    config: {
      baseUrl,
      model: 'test-model',
      apiKey: KEY,
      timeoutMs: 2000,
      maxRetries: 2,
      backoffMs: 20,
      maxRepairs: 2,
      ...over,
    },
    logger: pino({ level: 'silent' }),
    ...opts,
  });
}

export async function failure(p: Promise<unknown>): Promise<EffectError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(EffectError);
    return err as EffectError;
  }
  throw new Error('expected the planner to fail');
}

/** The gate a model with the LLM planner runs with. */
export const gateOf = (m: LoadedModel) => screenedGate(m, m.gate);
