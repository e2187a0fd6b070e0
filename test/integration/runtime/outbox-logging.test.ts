/** The embedded runtime's outbox across a restart, and log redaction (refunds model, real LevelStore). */
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../../src/runtime/logger.ts';
import {
  LEAD,
  agentCtx,
  caseCtx,
  cmd,
  driveUntilDone,
  journalOf,
  openEnv,
  outboxOf,
  refunds,
  reviewSignals,
  cleanup,
} from '../helpers.ts';
import { startToCase, expectLedgerMatchesPlan, expectAuditOk } from './checks.ts';

afterEach(cleanup);

describe('outbox', () => {
  it('a resolution not yet consumed by the agent stays in the outbox across a restart and is delivered once', async () => {
    // One resident actor: the agent is passivated while its case is worked, so the resolution goes
    // through the outbox (a resident agent would take it at once, before the case's commit is durable).
    const env = await openEnv({ runtime: { maxResident: 1 } });
    const [sig] = await reviewSignals();
    const id = 'ep-outbox';
    const caseId = await startToCase(env, sig!, id);
    let closing: Promise<void> | undefined;
    // Stop the node as soon as the case's decision is durable, before the agent consumes it.
    env.rt.onTransition((n) => {
      if (n.id === caseId && n.status === 'done' && !closing) closing = env.rt.close();
    });
    await env.rt.command(cmd('claim', caseId, LEAD));
    await env.rt.command(cmd('approve', caseId, LEAD));
    expect(closing).toBeDefined();
    await closing;

    const pending = await outboxOf(env.store);
    expect(pending).toHaveLength(1);
    expect(pending[0]).toMatchObject({
      id: `${caseId}.resolution`,
      to: id,
      event: { type: 'case.resolved', resolution: { caseId, outcome: 'approved' } },
    });
    expect((await env.store.load(id))!.state).toBe('awaitingReview');
    await env.store.close();

    const env2 = await openEnv({ dir: env.dir, start: env.clock.now() });
    const done = await driveUntilDone(env2, id);
    expect(agentCtx(done)).toMatchObject({ outcome: 'approved', caseIds: [caseId] });
    expect(await outboxOf(env2.store)).toEqual([]);
    expect((await journalOf(env2.rt, id)).filter((j) => j.event.type === 'case.resolved')).toHaveLength(1);
    await expectLedgerMatchesPlan(env2, id, agentCtx(done).plan!);
    await expectAuditOk(env2);
  });
});

// ------------------------------------------------------------------------------------------------
// 7. Log redaction
// ------------------------------------------------------------------------------------------------

describe('logging', () => {
  function memoryLogger(model: Awaited<ReturnType<typeof refunds>>) {
    const chunks: string[] = [];
    const destination = new Writable({
      write(chunk: Buffer | string, _enc, cb) {
        chunks.push(chunk.toString());
        cb();
      },
    });
    return { logger: createLogger({ models: [model], level: 'debug', destination }), text: () => chunks.join('') };
  }

  it('sensitive observation fields never appear in log output', async () => {
    const model = await refunds();
    const { logger, text } = memoryLogger(model);
    const env = await openEnv({ runtime: { logger } });
    const [sig] = await reviewSignals();
    const id = 'ep-log';
    const caseId = await startToCase(env, sig!, id);
    const observation = agentCtx(await env.rt.get(id)).observation!;
    const customer = observation.fields.customer as { name: string; email: string; iban: string };
    expect(customer.email).toMatch(/@/);
    expect(customer.iban).toMatch(/^[A-Z]{2}\d{2}/);

    env.rt.log.info({ observation }, 'observation');
    env.rt.log.info({ case: { observation: caseCtx(await env.rt.get(caseId)).observation } }, 'nested observation');
    env.rt.log.debug({ fields: observation.fields }, 'fields');
    env.rt.log.info({ signal: sig!.signal }, 'signal');

    const out = text();
    expect(out.split('\n').filter(Boolean)).toHaveLength(4);
    for (const secret of [customer.email, customer.iban, customer.name]) expect(out).not.toContain(secret);
    expect(out).toContain('[REDACTED]');
    // Non-sensitive fields are still there.
    expect(out).toContain(String(observation.fields.orderId));
    expect(out).toContain(String((customer as unknown as { customerId: string }).customerId));
  });

  // GAP (src/runtime/logger.ts, createLogger, lines 9-15): redaction paths are built from
  // `model.sensitiveFields` (observation fields) only. Action argument schemas marked `sensitive()`
  // (refunds: issueRefund.iban, notifyCustomer.email) are not redacted, so logging a plan (or a case
  // context's `plan` / a `case.resolved` event) writes the customer's IBAN and e-mail in clear.
  // `sensitive()` is documented (src/contracts/classification.ts) as "redacted in logs". The runtime
  // itself does not log plans today, so this is latent.
  it('sensitive action arguments in a plan are redacted in log output', async () => {
    const model = await refunds();
    const { logger, text } = memoryLogger(model);
    const [sig] = (await reviewSignals()).filter((s) => s.plan.actions[0]!.type === 'issueRefund');
    const iban = sig!.plan.actions[0]!.args.iban as string;
    const email = sig!.plan.actions[1]!.args.email as string;
    logger.info({ plan: sig!.plan }, 'plan');
    expect(text()).toContain(String(sig!.plan.actions[0]!.args.orderId));
    expect(text()).not.toContain(iban);
    expect(text()).not.toContain(email);
  });
});
