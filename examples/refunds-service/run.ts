/**
 * `npm run example`: the refunds service, `handoff start` on the example model (its actions are HTTP
 * calls to the service), and a producer posting refund requests to Handoff's API, with progress until
 * every episode has ended; then it keeps running (console open for the reviews) until Ctrl-C, and
 * checks the service's ledger on the way out.
 *
 *   npm run example -- --signals 60 --rate 10 --fail-rate 0.05 --drop-rate 0.05
 */
import { randomBytes } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { outcomeOf, refundRequest, submit } from './producer.ts';
import { createAccount, freePort, MODEL, startHandoff, type HandoffProcess } from './stack.ts';
import { exactlyOnceProblems, startRefundsService } from './service.ts';

const arg = (name: string, fallback: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  const v = i > 0 ? Number(process.argv[i + 1]) : fallback;
  if (!Number.isFinite(v) || v < 0) throw new Error(`--${name} must be a number ≥ 0`);
  return v;
};
const signals = arg('signals', 40);
const rate = arg('rate', 10);
const say = (s: string) => process.stdout.write(`${s}\n`);

const run = Date.now().toString(36);
const base = join('.handoff', 'example', run);
await mkdir(base, { recursive: true });
const token = randomBytes(16).toString('hex');
const service = await startRefundsService({
  data: join(base, 'service'),
  token,
  failRate: arg('fail-rate', 0.05),
  dropRate: arg('drop-rate', 0.05),
});
say(`refunds service   ${service.url}   (data ${join(base, 'service')})`);
const data = join(base, 'handoff');
const account = await createAccount(data);
say(`service account   ${account.id} (shop-refunds: signals:submit, episodes:read)`);
let handoff: HandoffProcess;
try {
  handoff = await startHandoff({ data, port: await freePort(), serviceUrl: service.url, serviceToken: token });
} catch (err) {
  await service.close();
  throw err;
}
say(
  `handoff           ${handoff.url}   (data ${data}; sign in as r-demo, password demo-dana, ` +
    'to decide refunds above €500)',
);
say(
  `producer          ${signals} refund requests at ${rate}/s to POST ${handoff.url}/api/v1/models/${MODEL}/signals\n`,
);

const stop = new AbortController();
let stopping = false;
const shutdown = async (why: string, failed = false) => {
  if (stopping) return;
  stopping = true;
  stop.abort();
  say(`\n${why}: stopping handoff, then the service`);
  handoff.child.kill('SIGTERM');
  await handoff.exited;
  const ledger = await service.ledger();
  await service.close();
  const problems = exactlyOnceProblems(ledger);
  const applied = ledger.events.filter((e) => e.type === 'refund.applied').length;
  const reversed = ledger.events.filter((e) => e.type === 'refund.reversed').length;
  say(
    `service ledger: ${applied} refunds applied, ${reversed} reversed, ` +
      `${ledger.replays} retries answered from the idempotency table`,
  );
  say(
    problems.length
      ? `PROBLEMS:\n  ${problems.join('\n  ')}`
      : 'every refund applied once, every reversal undid exactly its own refund',
  );
  process.exit(problems.length || failed ? 1 : 0);
};
process.on('SIGINT', () => void shutdown('Ctrl-C'));
process.on('SIGTERM', () => void shutdown('SIGTERM'));
// Handoff ending on its own (a crash, a damaged folder) stops the example too, saying so.
void handoff.exited.then((code) => {
  if (!stopping) void shutdown(`handoff start ended (${code})`, true);
});

const episodes = new Map<string, string | null>();
const produced = (async () => {
  for (let i = 0; i < signals && !stop.signal.aborted; i++) {
    const accepted = await submit(
      handoff.url,
      account.key,
      MODEL,
      refundRequest(run, i, { bounceEvery: 10, reviewEvery: 8 }),
      { signal: stop.signal },
    );
    episodes.set(accepted.episodeId, null);
    if (rate > 0) await new Promise((r) => setTimeout(r, 1000 / rate));
  }
})().catch((err: unknown) => {
  if (!stop.signal.aborted) say(`producer stopped: ${(err as Error).message}`);
});

let producing = true;
void produced.finally(() => (producing = false));
let reported = '';
let said: 'none' | 'waiting' | 'done' = 'none';
while (!stop.signal.aborted) {
  await new Promise((r) => setTimeout(r, 1000));
  for (const [id, outcome] of episodes)
    if (outcome === null) episodes.set(id, await outcomeOf(handoff.url, account.key, id));
  if (stop.signal.aborted) break;
  const ledger = await service.ledger();
  const byOutcome = new Map<string, number>();
  for (const o of episodes.values()) byOutcome.set(o ?? 'running', (byOutcome.get(o ?? 'running') ?? 0) + 1);
  const line =
    `accepted ${episodes.size}/${signals} · ${[...byOutcome].map(([o, n]) => `${o} ${n}`).join(' · ')} · service: ` +
    `${ledger.refunds.length} refunds, ${ledger.refunds.filter((r) => r.status === 'reversed').length} reversed, ` +
    `${ledger.notifications.length} e-mails, ${ledger.faults.failed + ledger.faults.dropped} faults injected`;
  if (line !== reported) say(line);
  reported = line;
  const running = byOutcome.get('running') ?? 0;
  if (!producing && running === 0 && said !== 'done') {
    say(`every episode has ended; the console stays open at ${handoff.url} — Ctrl-C to stop`);
    said = 'done';
  } else if (!producing && running > 0 && said === 'none') {
    say(`${running} episode(s) still open; refunds above €500 wait for a reviewer: ${handoff.url}, r-demo / demo-dana`);
    said = 'waiting';
  }
}
