/**
 * The NATS transport against a real nats-server: request/reply with typed errors, queue groups
 * (exactly one responder), publish with Nats-Msg-Id (stored once by a JetStream stream), headers
 * (traceparent), work run after a reply (afterReply), and surviving a server restart.
 */
import { jetstreamManager } from '@nats-io/jetstream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HandoffError, UnauthorizedError } from '../../src/contracts/errors.ts';
import type { NatsServer } from '../../src/cluster/nats-harness.ts';
import { NatsTransport } from '../../src/cluster/nats-transport.ts';
import { startServer } from './helpers.ts';

const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('NatsTransport', () => {
  let server: NatsServer;
  const open: NatsTransport[] = [];
  const connect = async () => {
    const t = await NatsTransport.connect(server.url);
    open.push(t);
    return t;
  };
  beforeAll(async () => {
    server = await startServer();
  });
  afterAll(async () => {
    for (const t of open) await t.close();
    await server?.dispose();
  });

  it('request/reply: the reply, or the typed error with its code; no responders and timeouts are typed too', async () => {
    const a = await connect();
    const b = await connect();
    b.serve('t.echo.*', (m) => ({ echoed: m.data, subject: m.subject, traceparent: m.headers?.traceparent }));
    b.serve('t.refuse', () => {
      throw new UnauthorizedError('r-x may not', { rule: 'tier-role' });
    });
    b.serve('t.slow', () => wait(500));
    await b.flush();
    const tp = '00-0123456789abcdef0123456789abcdef-0123456789abcdef-01';
    expect(await a.request('t.echo.x', { n: 1 }, { headers: { traceparent: tp } })).toEqual({
      echoed: { n: 1 },
      subject: 't.echo.x',
      traceparent: tp,
    });
    const refused = await a.request('t.refuse', {}).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(HandoffError);
    expect((refused as HandoffError).code).toBe('auth.forbidden');
    expect((refused as HandoffError).details.rule).toBe('tier-role');
    expect(((await a.request('t.nobody', {}).catch((e: unknown) => e)) as HandoffError).code).toBe(
      'transport.no_responders',
    );
    expect(((await a.request('t.slow', {}, { timeoutMs: 100 }).catch((e: unknown) => e)) as HandoffError).code).toBe(
      'transport.timeout',
    );
  });

  it('requests share one reply subscription: 200 at once each get their own reply; a bad header name is refused before sending; closing ends the subscription on a connection we do not own', async () => {
    const a = await connect();
    const b = await connect();
    b.serve('t.many', async (m) => {
      await wait((m.data as { i: number }).i % 7);
      return (m.data as { i: number }).i * 2;
    });
    await b.flush();
    const replies = await Promise.all(Array.from({ length: 200 }, (_, i) => a.request('t.many', { i })));
    expect(replies).toEqual(Array.from({ length: 200 }, (_, i) => i * 2));
    const subs = (nc: NatsTransport['nc']) =>
      (nc as unknown as { protocol: { subscriptions: { all(): unknown[] } } }).protocol.subscriptions.all().length;
    // One subscription for all those replies (the client's own request() would have used its mux too).
    expect(subs(a.nc)).toBe(1);
    let served = 0;
    b.serve('t.hdr', () => ++served);
    await b.flush();
    const bad = await a.request('t.hdr', {}, { headers: { 'bad name': 'x' } }).catch((e: unknown) => e);
    expect(bad).toBeInstanceOf(HandoffError);
    expect((bad as HandoffError).message).toMatch(/bad name/);
    const crlf = await a.request('t.hdr', {}, { headers: { ok: 'a\r\nInjected: 1' } }).catch((e: unknown) => e);
    expect((crlf as HandoffError).message).toMatch(/CR or LF/);
    expect(served).toBe(0);
    // A transport on a connection it does not own: closing it removes its reply subscription and
    // refuses later requests, and the connection stays open for its owner.
    const borrowed = new NatsTransport(a.nc);
    expect(await borrowed.request('t.many', { i: 3 })).toBe(6);
    expect(subs(a.nc)).toBe(2);
    await borrowed.close();
    expect(subs(a.nc)).toBe(1);
    expect(a.nc.isClosed()).toBe(false);
    expect(((await borrowed.request('t.many', { i: 1 }).catch((e: unknown) => e)) as HandoffError).code).toBe(
      'transport.closed',
    );
  });

  it('serve uses a queue group: with two responders, each request is answered once', async () => {
    const a = await connect();
    const r1 = await connect();
    const r2 = await connect();
    const seen: string[] = [];
    r1.serve('t.q', () => (seen.push('r1'), 'r1'));
    r2.serve('t.q', () => (seen.push('r2'), 'r2'));
    await Promise.all([r1.flush(), r2.flush()]);
    for (let i = 0; i < 40; i++) await a.request('t.q', i);
    expect(seen).toHaveLength(40);
    expect(new Set(seen)).toEqual(new Set(['r1', 'r2']));
  });

  it('afterReply: work queued while a request is answered runs right after its reply is sent, in the same socket write; with no reply to send, at the next check phase', async () => {
    const a = await connect();
    const b = await connect();
    const order: string[] = [];
    const proto = (
      b.nc as unknown as {
        protocol: {
          publish: (subject: string, ...rest: unknown[]) => void;
          transport: { send: (d: Uint8Array) => void };
        };
      }
    ).protocol;
    const publish = proto.publish.bind(proto);
    proto.publish = (subject, ...rest) => {
      order.push(subject.startsWith('_INBOX.') ? 'reply' : subject);
      publish(subject, ...rest);
    };
    const send = proto.transport.send.bind(proto.transport);
    let writes = 0;
    proto.transport.send = (d) => {
      writes++;
      send(d);
    };
    b.serve('t.after', async () => {
      await Promise.resolve();
      b.afterReply(() => b.publish('t.after.notice', { n: 1 }));
      order.push('handler done');
      return 'ok';
    });
    await b.flush();
    const before = writes;
    expect(await a.request('t.after', {})).toBe('ok');
    expect(order).toEqual(['handler done', 'reply', 't.after.notice']);
    expect(writes - before).toBe(1);
    order.length = 0;
    b.afterReply(() => order.push('alone'));
    expect(order).toEqual([]);
    await new Promise((r) => setImmediate(r));
    expect(order).toEqual(['alone']);
  });

  it('publish carries a Nats-Msg-Id: the same transition published twice is stored once by a stream', async () => {
    const a = await connect();
    const jsm = await jetstreamManager(a.nc);
    await jsm.streams.add({ name: 'T_EVENTS', subjects: ['t.events.>'] });
    const got: unknown[] = [];
    const sub = a.subscribe('t.events.>', (m) => got.push(m.data));
    await a.flush();
    const notice = { id: 'ep-1', seq: 3, state: 'acting' };
    a.publish('t.events.agent.ep-1', notice);
    a.publish('t.events.agent.ep-1', notice);
    a.publish('t.events.agent.ep-1', { id: 'ep-1', seq: 4, state: 'done' });
    await a.flush();
    await wait(100);
    expect(got).toHaveLength(3);
    expect((await jsm.streams.info('T_EVENTS')).state.messages).toBe(2);
    sub.unsubscribe();
  });

  it('survives a server restart: subscriptions resume and requests succeed again', async () => {
    const a = await connect();
    const b = await connect();
    const got: number[] = [];
    b.subscribe('t.tick', (m) => got.push(m.data as number));
    b.serve('t.ping', () => 'pong');
    await b.flush();
    a.publish('t.tick', 1);
    await a.flush();
    await wait(50);
    await server.restart({ downMs: 300 });
    for (let i = 0; i < 100 && !(a.connected && b.connected); i++) await wait(100);
    await wait(300);
    expect(a.stats.reconnects).toBeGreaterThanOrEqual(1);
    expect(b.stats.reconnects).toBeGreaterThanOrEqual(1);
    a.publish('t.tick', 2);
    await a.flush();
    await wait(100);
    expect(got).toEqual([1, 2]);
    expect(await a.request('t.ping', null)).toBe('pong');
  });
});
