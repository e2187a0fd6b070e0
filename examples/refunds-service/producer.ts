/**
 * The helpdesk's side: posts refund requests to Handoff's API (`POST /api/v1/models/shop-refunds/signals`)
 * with a service account's key and the ticket id as the `Idempotency-Key`, retrying what did not get
 * an answer (Handoff restarting, 429, 5xx) with the same key, so no ticket is lost and none starts two
 * episodes. Then it can wait for the episodes' outcomes (`GET /api/v1/episodes/{id}`).
 *
 *   HANDOFF_URL=http://127.0.0.1:7400 HANDOFF_API_KEY=hk_… npx tsx examples/refunds-service/producer.ts --signals 20
 */

export interface RefundRequest {
  ticketId: string;
  orderId: string;
  amount: number;
  email: string;
  reason: string;
}

const REASONS = ['The parcel arrived damaged.', 'Wrong size, sent it back.', 'Never arrived.', 'Charged twice.'];

/**
 * The `i`-th request of a run: deterministic. Every `bounceEvery`-th customer's mailbox bounces
 * (the notification fails for good and the refund is reversed); every `reviewEvery`-th amount is
 * above €500 (a reviewer decides).
 */
export function refundRequest(
  run: string,
  i: number,
  opts: { bounceEvery?: number; reviewEvery?: number } = {},
): RefundRequest {
  const bounce = opts.bounceEvery ? i % opts.bounceEvery === opts.bounceEvery - 1 : false;
  const review = opts.reviewEvery ? i % opts.reviewEvery === opts.reviewEvery - 1 : false;
  return {
    ticketId: `${run}-T${String(i + 1).padStart(5, '0')}`,
    orderId: `ORD-${String(10_000_000 + ((i * 7919) % 89_999_999))}`,
    amount: review ? 600 + (i % 7) * 50 : Math.round((10 + ((i * 37) % 400) + (i % 100) / 100) * 100) / 100,
    email: bounce ? `customer${i}@mailbox.invalid` : `customer${i}@example.com`,
    reason: REASONS[i % REASONS.length]!,
  };
}

export interface Accepted {
  episodeId: string;
  idempotencyKey: string;
  created: boolean;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Posts one signal until Handoff answers 202 (or refuses it for good: 4xx other than 408/429). A
 * connection refused or reset, a 429 or a 5xx is retried with the same key after a short wait.
 */
export async function submit(
  handoff: string,
  key: string,
  model: string,
  signal: RefundRequest,
  opts: { signal?: AbortSignal; retries?: number } = {},
): Promise<Accepted> {
  for (let attempt = 1; ; attempt++) {
    if (opts.signal?.aborted) throw new Error('stopped');
    try {
      const res = await fetch(`${handoff}/api/v1/models/${model}/signals`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${key}`,
          'content-type': 'application/json',
          'idempotency-key': signal.ticketId,
        },
        body: JSON.stringify({ signal }),
        signal: AbortSignal.timeout(10_000),
      });
      const body = (await res.json().catch(() => null)) as {
        accepted?: Accepted[];
        error?: { message?: string };
      } | null;
      if (res.status === 202 && body?.accepted?.[0]) return body.accepted[0];
      if (res.status !== 408 && res.status !== 429 && res.status < 500)
        throw Object.assign(new Error(`signal ${signal.ticketId} refused: ${res.status} ${JSON.stringify(body)}`), {
          permanent: true,
        });
      const after = Number(res.headers.get('retry-after'));
      await sleep(Number.isFinite(after) && after > 0 ? Math.min(after * 1000, 2000) : 100);
    } catch (err) {
      if ((err as { permanent?: boolean }).permanent) throw err;
      if (opts.retries !== undefined && attempt > opts.retries) throw err;
      // Handoff is down or restarting: try again with the same key.
      await sleep(Math.min(1000, 50 * attempt));
    }
  }
}

/** The episode's outcome, or null while it runs (or while Handoff is not answering). */
export async function outcomeOf(handoff: string, key: string, episodeId: string): Promise<string | null> {
  try {
    const res = await fetch(`${handoff}/api/v1/episodes/${encodeURIComponent(episodeId)}`, {
      headers: { authorization: `Bearer ${key}` },
      signal: AbortSignal.timeout(5000),
    });
    if (res.status !== 200) return null;
    const body = (await res.json()) as { outcome?: string | null };
    return body.outcome ?? null;
  } catch {
    return null;
  }
}

// Run directly: post --signals n requests (default 20) and print each answer as a JSON line.
if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  const handoff = process.env.HANDOFF_URL ?? 'http://127.0.0.1:7400';
  const key = process.env.HANDOFF_API_KEY;
  if (!key) {
    process.stderr.write('set HANDOFF_API_KEY (handoff accounts create --name helpdesk --scope shop-refunds:*)\n');
    process.exit(2);
  }
  const i = process.argv.indexOf('--signals');
  const n = i > 0 ? Number(process.argv[i + 1]) : 20;
  const run = Date.now().toString(36);
  for (let k = 0; k < n; k++) {
    const accepted = await submit(
      handoff,
      key,
      'shop-refunds',
      refundRequest(run, k, { bounceEvery: 10, reviewEvery: 8 }),
    );
    process.stdout.write(`${JSON.stringify(accepted)}\n`);
  }
}
