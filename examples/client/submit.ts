/**
 * The typed client (`@handoff-hitl/runtime/client`), runnable: submits one refund request to a running
 * Handoff and follows its episode until it has an outcome or waits for a reviewer.
 *
 * Over HTTP (a key from `handoff accounts create --scope 'refunds:*'`):
 *
 *   HANDOFF_URL=http://127.0.0.1:7400 HANDOFF_API_KEY=hk_… npx tsx examples/client/submit.ts ticket-4711
 *
 * Over NATS, to a cluster (`handoff start --nats nats://127.0.0.1:4222`):
 *
 *   HANDOFF_NATS=nats://127.0.0.1:4222 npx tsx examples/client/submit.ts ticket-4712
 *
 * In your own project import from `@handoff-hitl/runtime/client` instead of the relative path.
 */
import { ApiClient, ApiClientError, NatsSignalsClient } from '../../src/client.ts';

const key = process.argv[2] ?? `ticket-${Date.now()}`;
const signal = {
  ticketId: key,
  orderId: 'ORD-10000042',
  reason: 'arrived broken',
  channel: 'email',
  requestedAmount: 900,
};

async function overHttp(baseUrl: string, apiKey: string): Promise<void> {
  const api = new ApiClient({ baseUrl, key: apiKey });
  // The key makes the submission safe to retry: the same key never starts a second episode.
  const accepted = await api.submit('refunds', signal, { idempotencyKey: key });
  console.log(`${accepted.created ? 'started' : 'already started'} ${accepted.episodeId}`);
  const episode = await api.waitForOutcome(accepted.episodeId, {
    timeoutMs: 30_000,
    until: (e) => e.outcome !== null || e.cases.some((c) => c.status === 'active'),
  });
  if (episode.outcome) console.log(`outcome ${episode.outcome}`);
  else {
    const c = episode.cases.find((x) => x.status === 'active')!;
    console.log(`waiting for a reviewer: case ${c.id} (${c.state}, tier ${c.tier}), rule ${episode.decision?.ruleId}`);
  }
}

async function overNats(servers: string): Promise<void> {
  const { connect } = await import('@nats-io/transport-node');
  const nc = await connect({ servers });
  try {
    const nats = new NatsSignalsClient(nc, { namespace: process.env.HANDOFF_NAMESPACE ?? 'default' });
    // Watch first, so no notice is missed: the episode's transitions, or the node's refusal.
    const first = nats.watch('refunds', key, { until: () => true, timeoutMs: 30_000 });
    await first.ready;
    const sent = await nats.submit('refunds', signal, { idempotencyKey: key });
    console.log(`stored ${sent.episodeId}${sent.duplicate ? ' (a duplicate: nothing new)' : ''}`);
    if (sent.duplicate)
      first.cancel(); // no new episode, no notices to wait for
    else console.log(`started: state ${(await first).state}`);
  } finally {
    await nc.close();
  }
}

try {
  if (process.env.HANDOFF_NATS) await overNats(process.env.HANDOFF_NATS);
  else await overHttp(process.env.HANDOFF_URL ?? 'http://127.0.0.1:7400', process.env.HANDOFF_API_KEY ?? '');
} catch (err) {
  // Typed: the API's stable code, and for a refused signal the field.
  if (err instanceof ApiClientError) console.error(`${err.code} (${err.status}): ${err.message}`, err.details);
  else console.error(err);
  process.exitCode = 1;
}
