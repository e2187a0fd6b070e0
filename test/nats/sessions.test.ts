import { Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { tokenKey } from '../../src/httpkit/auth.ts';
import type { NatsServer } from '../../src/cluster/nats-harness.ts';
import { randomBytes } from 'node:crypto';
import { NatsSessionStore, sessionsBucket } from '../../src/cluster/session-store.ts';
import { Keyring } from '../../src/security/keyring.ts';
import { NodeProcess, freshNamespace, natsConnect, startServer } from './helpers.ts';

/**
 * Console sessions shared by the nodes of a cluster (the namespace's KV bucket): a sign-in on one
 * node holds on the other, and a sign-out on either ends it on both, its open socket included.
 */
describe('console sessions across cluster nodes', () => {
  let server: NatsServer;
  let nc: NatsConnection;
  const nodes: NodeProcess[] = [];
  const ns = freshNamespace('sess');

  beforeAll(async () => {
    server = await startServer();
    nc = await natsConnect(server.url);
    const a = new NodeProcess(server.url, 'a', ns, ['--port', '0']);
    const b = new NodeProcess(server.url, 'b', ns, ['--port', '0']);
    nodes.push(a, b);
    await Promise.all([a.ready, b.ready]);
  }, 60_000);

  afterAll(async () => {
    // SIGKILL: a graceful leave takes a node about 16 s here, and nothing of it is under test.
    await Promise.all(nodes.map((n) => n.kill()));
    await nc?.close();
    await server?.dispose();
  });

  it('signed in on node a is signed in on node b; signed out on b is signed out on a, socket closed', async () => {
    const [a, b] = nodes as [NodeProcess, NodeProcess];
    const res = await fetch(`${a.url}/api/login`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ id: 'r-amelie', password: 'demo-amelie' }),
    });
    expect(res.status).toBe(200);
    const cookie = res.headers.get('set-cookie')!.split(';')[0]!;
    const token = cookie.slice(cookie.indexOf('=') + 1);
    const { csrfToken } = (await res.json()) as { csrfToken: string };

    // The same session on the other node, with the same CSRF token (derived from the token, not stored).
    const onB = await fetch(`${b.url}/api/session`, { headers: { Cookie: cookie } });
    expect(onB.status).toBe(200);
    expect((await onB.json()) as { reviewer: { id: string }; csrfToken: string }).toMatchObject({
      reviewer: { id: 'r-amelie' },
      csrfToken,
    });

    // At rest: the bucket's key is the token's SHA-256; neither token nor CSRF token is stored.
    const kv = await new Kvm(nc).open(sessionsBucket(ns));
    const entry = await kv.get(tokenKey(token));
    expect(entry?.string()).toContain('r-amelie');
    expect(entry!.string()).not.toContain(token);
    expect(entry!.string()).not.toContain(csrfToken);
    const keys: string[] = [];
    for await (const k of await kv.keys()) keys.push(k);
    expect(keys.join()).not.toContain(token);

    // A live socket on node a.
    const ws = new WebSocket(`${a.url!.replace('http', 'ws')}/ws`, { headers: { Origin: a.url!, Cookie: cookie } });
    const closed = new Promise<number>((r) => ws.on('close', (code) => r(code)));
    await new Promise((r, j) => {
      ws.once('open', r);
      ws.once('error', j);
    });

    // Signed out on node b...
    const out = await fetch(`${b.url}/api/logout`, {
      method: 'POST',
      headers: { Cookie: cookie, 'Content-Type': 'application/json', 'X-CSRF-Token': csrfToken },
      body: '{}',
    });
    expect(out.status).toBe(200);
    // ...is signed out on node a: the next request is refused, the socket is closed as "session ended".
    const onA = await fetch(`${a.url}/api/queue`, { headers: { Cookie: cookie } });
    expect(onA.status).toBe(401);
    expect(((await onA.json()) as { error: { code: string } }).error.code).toBe('auth.session_expired');
    expect(await closed).toBe(4401);
    expect((await fetch(`${b.url}/api/session`, { headers: { Cookie: cookie } })).status).toBe(401);
  });

  it('with data keys the records are sealed in the bucket, bound to their key', async () => {
    const keyring = new Keyring([{ id: 'k1', key: randomBytes(32) }]);
    const sealed = await NatsSessionStore.open(nc, { namespace: `${ns}k`, keyring });
    const rec = {
      kind: 'session',
      principal: { id: 'r-sealed', name: 'Sealed', grants: {} },
      via: 'password',
      createdAt: 1,
      lastSeen: 1,
      expiresAt: 2,
    } as const;
    await sealed.put('abc', rec);
    const raw = await (await new Kvm(nc).open(sessionsBucket(`${ns}k`))).get('abc');
    expect(Buffer.from(raw!.value).toString('latin1')).not.toContain('r-sealed');
    expect(await sealed.get('abc')).toEqual(rec);
    await sealed.close();
  });
});
