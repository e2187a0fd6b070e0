/**
 * A small real refunds service, the kind of system Handoff acts on: HTTP + JSON, its own LevelDB
 * store, and its own idempotency table. Handoff's HTTP actions call it (model/model.json); nothing in
 * it knows about Handoff.
 *
 *   POST /refunds                  {orderId, amount, currency, ticketId}  → 201 {refundId, …}
 *   POST /refunds/{id}/reversal    (undo a refund: the compensation)       → 200 {refundId, status: 'reversed'}
 *   POST /notifications            {email, template, orderId}             → 202, or 422 for a mailbox that bounces
 *   GET  /ledger                   every refund, notification and applied event (what the tests check)
 *   GET  /health
 *
 * Every POST needs an `Idempotency-Key` header. The first request with a key is applied and its
 * answer stored with it in one atomic batch; a later request with the same key gets the stored
 * answer (`Idempotent-Replayed: true`) and changes nothing; the same key with a different body is
 * refused (422). So a caller may retry anything, any number of times.
 *
 * Faults for the demo and the tests (options or environment): `failRate` answers 503 before applying
 * (a transient failure), `dropRate` applies, stores, then drops the connection without an answer (the
 * caller cannot know it worked and must retry with the same key).
 *
 *   npx tsx examples/refunds-service/service.ts --port 7501 --data .handoff/refunds-service
 */
import { createHash, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Level } from 'level';

export interface Refund {
  refundId: string;
  orderId: string;
  amount: number;
  currency: string;
  ticketId: string;
  /** The Idempotency-Key that applied it. */
  key: string;
  status: 'applied' | 'reversed';
  appliedAt: string;
  reversedAt: string | null;
  /** The Idempotency-Key of the reversal. */
  reversalKey: string | null;
}

export interface Notification {
  notificationId: string;
  email: string;
  template: string;
  orderId: string;
  key: string;
  sentAt: string;
}

/** One change the service made: the record the exactly-once proof counts. */
export interface AppliedEvent {
  seq: number;
  type: 'refund.applied' | 'refund.reversed' | 'notification.sent';
  key: string;
  refundId?: string;
  notificationId?: string;
  orderId: string;
  traceparent: string | null;
  /** `Handoff-Fencing-Token` of the request (a cluster node's lease revision), or null. */
  fencingToken: number | null;
  at: string;
}

export interface Ledger {
  refunds: Refund[];
  notifications: Notification[];
  events: AppliedEvent[];
  /** Requests answered from the idempotency table (replays of a key already applied). */
  replays: number;
  /** Faults injected since the service started: 503s before applying, answers dropped after applying. */
  faults: { failed: number; dropped: number };
}

export interface ServiceOptions {
  /** LevelDB folder of the service. */
  data: string;
  port?: number;
  host?: string;
  /** Share of POSTs answered 503 before anything is applied. */
  failRate?: number;
  /** Share of POSTs applied and then left without an answer (connection dropped). */
  dropRate?: number;
  /** Addresses with this ending bounce: POST /notifications answers 422. @default '.invalid' */
  bounceSuffix?: string;
  /** When set, every POST needs `Authorization: Bearer <token>` (401 otherwise). */
  token?: string;
}

export interface RunningService {
  url: string;
  server: Server;
  ledger(): Promise<Ledger>;
  close(): Promise<void>;
}

interface Stored {
  status: number;
  body: unknown;
  /** Hash of the request body the key was first used with. */
  request: string;
}

class BadRequest extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}

async function readBody(req: IncomingMessage): Promise<{ raw: string; json: Record<string, unknown> }> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  const raw = Buffer.concat(chunks).toString('utf8');
  let json: unknown;
  try {
    json = raw ? JSON.parse(raw) : {};
  } catch {
    throw new BadRequest(400, 'body.invalid', 'the body is not JSON');
  }
  if (!json || typeof json !== 'object' || Array.isArray(json))
    throw new BadRequest(400, 'body.invalid', 'the body must be a JSON object');
  return { raw, json: json as Record<string, unknown> };
}

const str = (b: Record<string, unknown>, k: string): string => {
  const v = b[k];
  if (typeof v !== 'string' || v === '')
    throw new BadRequest(400, 'field.invalid', `${k}: a non-empty string is required`);
  return v;
};

export async function startRefundsService(opts: ServiceOptions): Promise<RunningService> {
  const db = new Level<string, unknown>(opts.data, { valueEncoding: 'json' });
  await db.open();
  const bounce = opts.bounceSuffix ?? '.invalid';
  let seq = 0;
  for await (const k of db.keys({ gte: 'event:', lt: 'event:\xff', reverse: true, limit: 1 }))
    seq = Number(k.slice('event:'.length));
  let replays = 0;
  const faults = { failed: 0, dropped: 0 };
  // One writer at a time: a check of the idempotency table and the write after it cannot interleave.
  let queue: Promise<unknown> = Promise.resolve();
  const serial = <T>(fn: () => Promise<T>): Promise<T> => {
    const run = queue.then(fn, fn);
    queue = run.catch(() => undefined);
    return run;
  };
  const event = (e: Omit<AppliedEvent, 'seq' | 'at'>): { key: string; value: AppliedEvent } => {
    const n = ++seq;
    return { key: `event:${String(n).padStart(10, '0')}`, value: { seq: n, at: new Date().toISOString(), ...e } };
  };

  type Outcome = { status: number; body: unknown; puts: { key: string; value: unknown }[] };
  /** Runs `apply` once per (route, key): stores its answer with its writes in one batch; replays it after. */
  const once = async (
    route: string,
    key: string,
    raw: string,
    apply: () => Promise<Outcome>,
  ): Promise<{ status: number; body: unknown; replayed: boolean }> =>
    serial(async () => {
      const idem = `idem:${route}:${key}`;
      const request = createHash('sha256').update(raw).digest('hex');
      const prior = (await db.get(idem)) as Stored | undefined;
      if (prior) {
        if (prior.request !== request)
          return {
            status: 422,
            body: {
              error: 'idempotency.key_reused',
              message: `Idempotency-Key '${key}' was used with another request body`,
            },
            replayed: false,
          };
        replays++;
        return { status: prior.status, body: prior.body, replayed: true };
      }
      const out = await apply();
      // A 5xx is not stored: the request did nothing and may be retried to a different end.
      const store: Stored = { status: out.status, body: out.body, request };
      await db.batch([
        ...out.puts.map((p) => ({ type: 'put' as const, ...p })),
        ...(out.status < 500 ? [{ type: 'put' as const, key: idem, value: store }] : []),
      ]);
      return { status: out.status, body: out.body, replayed: false };
    });

  const routes = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://x');
    const path = url.pathname;
    if (req.method === 'GET' && path === '/health') return send(res, 200, { ok: true });
    if (req.method === 'GET' && path === '/ledger') return send(res, 200, await ledger());
    if (req.method !== 'POST') return send(res, 404, { error: 'not_found' });
    if (opts.token && req.headers.authorization !== `Bearer ${opts.token}`)
      throw new BadRequest(401, 'auth.required', 'send Authorization: Bearer <token>');
    const key = req.headers['idempotency-key'];
    if (typeof key !== 'string' || key === '')
      throw new BadRequest(400, 'idempotency.key_required', 'send an Idempotency-Key header');
    const { raw, json } = await readBody(req);
    const traceparent = typeof req.headers.traceparent === 'string' ? req.headers.traceparent : null;
    const fence = req.headers['handoff-fencing-token'];
    const fencingToken = typeof fence === 'string' && /^\d+$/.test(fence) ? Number(fence) : null;
    if (opts.failRate && Math.random() < opts.failRate && ++faults.failed)
      return send(res, 503, { error: 'unavailable', message: 'try again' }, { 'retry-after': '0' });
    let result: { status: number; body: unknown; replayed: boolean };
    const reversal = /^\/refunds\/([^/]+)\/reversal$/.exec(path);
    if (path === '/refunds') {
      const orderId = str(json, 'orderId');
      const ticketId = str(json, 'ticketId');
      const currency = str(json, 'currency');
      const amount = json.amount;
      if (typeof amount !== 'number' || !(amount > 0) || amount > 10_000)
        throw new BadRequest(400, 'field.invalid', 'amount: a number in (0, 10000] is required');
      result = await once('refunds', key, raw, async () => {
        const refund: Refund = {
          refundId: `rf-${randomUUID()}`,
          orderId,
          amount,
          currency,
          ticketId,
          key,
          status: 'applied',
          appliedAt: new Date().toISOString(),
          reversedAt: null,
          reversalKey: null,
        };
        const e = event({ type: 'refund.applied', key, refundId: refund.refundId, orderId, traceparent, fencingToken });
        return { status: 201, body: refund, puts: [{ key: `refund:${refund.refundId}`, value: refund }, e] };
      });
    } else if (reversal) {
      const refundId = decodeURIComponent(reversal[1]!);
      result = await once('reversal', key, raw, async () => {
        const refund = (await db.get(`refund:${refundId}`)) as Refund | undefined;
        if (!refund)
          return { status: 404, body: { error: 'refund.not_found', message: `no refund ${refundId}` }, puts: [] };
        if (refund.status === 'reversed')
          return {
            status: 409,
            body: {
              error: 'refund.already_reversed',
              message: `refund ${refundId} was reversed by ${refund.reversalKey}`,
            },
            puts: [],
          };
        const next: Refund = { ...refund, status: 'reversed', reversedAt: new Date().toISOString(), reversalKey: key };
        const e = event({ type: 'refund.reversed', key, refundId, orderId: refund.orderId, traceparent, fencingToken });
        return { status: 200, body: next, puts: [{ key: `refund:${refundId}`, value: next }, e] };
      });
    } else if (path === '/notifications') {
      const email = str(json, 'email');
      const template = str(json, 'template');
      const orderId = str(json, 'orderId');
      result = await once('notifications', key, raw, async () => {
        if (email.endsWith(bounce))
          return {
            status: 422,
            body: { error: 'mailbox.bounced', message: 'the mailbox does not accept mail' },
            puts: [],
          };
        const n: Notification = {
          notificationId: `nt-${randomUUID()}`,
          email,
          template,
          orderId,
          key,
          sentAt: new Date().toISOString(),
        };
        const e = event({
          type: 'notification.sent',
          key,
          notificationId: n.notificationId,
          orderId,
          traceparent,
          fencingToken,
        });
        return { status: 202, body: n, puts: [{ key: `notification:${n.notificationId}`, value: n }, e] };
      });
    } else return send(res, 404, { error: 'not_found' });
    // Applied and stored, but the answer is lost: the caller must retry with the same key.
    if (!result.replayed && opts.dropRate && Math.random() < opts.dropRate) {
      faults.dropped++;
      req.socket.destroy();
      return;
    }
    send(res, result.status, result.body, result.replayed ? { 'idempotent-replayed': 'true' } : {});
  };

  const ledger = async (): Promise<Ledger> => {
    const out: Ledger = { refunds: [], notifications: [], events: [], replays, faults: { ...faults } };
    for await (const [k, v] of db.iterator()) {
      if (k.startsWith('refund:')) out.refunds.push(v as Refund);
      else if (k.startsWith('notification:')) out.notifications.push(v as Notification);
      else if (k.startsWith('event:')) out.events.push(v as AppliedEvent);
    }
    return out;
  };

  const server = createServer((req, res) => {
    routes(req, res).catch((err: unknown) => {
      if (err instanceof BadRequest) send(res, err.status, { error: err.code, message: err.message });
      else send(res, 500, { error: 'internal', message: (err as Error).message });
    });
  });
  server.keepAliveTimeout = 1000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', () => resolve());
  });
  const addr = server.address() as AddressInfo;
  return {
    url: `http://${opts.host ?? '127.0.0.1'}:${addr.port}`,
    server,
    ledger,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await queue;
      await db.close();
    },
  };
}

/**
 * The service's own exactly-once check, in words: no change applied twice under one key, and every
 * reversed refund reversed by its own compensation's key (`<key>/compensate`). Empty when all is well.
 */
export function exactlyOnceProblems(ledger: Ledger): string[] {
  const problems: string[] = [];
  const count = new Map<string, number>();
  for (const e of ledger.events) count.set(`${e.type} ${e.key}`, (count.get(`${e.type} ${e.key}`) ?? 0) + 1);
  for (const [k, n] of count) if (n > 1) problems.push(`${k} applied ${n} times`);
  for (const r of ledger.refunds.filter((x) => x.status === 'reversed'))
    if (r.reversalKey !== `${r.key}/compensate`)
      problems.push(`refund ${r.refundId} (${r.key}) reversed by ${r.reversalKey}`);
  return problems;
}

// Run directly: a service of its own, printing {"url"} once listening.
if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  const arg = (name: string) => {
    const i = process.argv.indexOf(`--${name}`);
    return i > 0 ? process.argv[i + 1] : undefined;
  };
  const svc = await startRefundsService({
    data: arg('data') ?? '.handoff/refunds-service',
    port: Number(arg('port') ?? process.env.REFUNDS_SERVICE_PORT ?? 7501),
    failRate: Number(arg('fail-rate') ?? process.env.REFUNDS_FAIL_RATE ?? 0),
    dropRate: Number(arg('drop-rate') ?? process.env.REFUNDS_DROP_RATE ?? 0),
    ...(process.env.REFUNDS_SERVICE_TOKEN ? { token: process.env.REFUNDS_SERVICE_TOKEN } : {}),
  });
  process.stdout.write(`${JSON.stringify({ url: svc.url })}\n`);
  const stop = () => void svc.close().then(() => process.exit(0));
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}
