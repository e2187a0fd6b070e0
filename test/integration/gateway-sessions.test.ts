import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Sessions, tokenKey } from '../../src/httpkit/auth.ts';
import { LevelSessionStore, MemorySessionStore } from '../../src/httpkit/session-store.ts';
import { GatewayConfigError, OidcConfig, loadGatewayConfig, principalFromClaims } from '../../src/gateway/oidc.ts';
import { loadModel } from '../../src/models/loader.ts';
import { LevelStore } from '../../src/runtime/level-store.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

describe('console sessions at rest', () => {
  it('survive a reopen of the LevelDB store; only the token hash is a key; sign-out holds after the reopen', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'handoff-sess-'));
    dirs.push(dir);
    let store = await LevelStore.open(dir);
    let s = new Sessions({ store: new LevelSessionStore(store), sweepMs: 0 });
    const { token, session } = await s.create({
      id: 'r-a',
      name: 'A',
      grants: { refunds: { roles: ['support-lead'], seeSensitive: false } },
    });
    s.close();
    await store.close();
    store = await LevelStore.open(dir);
    s = new Sessions({ store: new LevelSessionStore(store), sweepMs: 0 });
    const again = await s.lookup(token);
    expect(again.ok && again.session.principal.id).toBe('r-a');
    expect(again.ok && again.session.csrf).toBe(session.csrf);
    const keys: string[] = [];
    for await (const [k] of s.store.entries()) keys.push(k);
    expect(keys).toEqual([tokenKey(token)]);
    if (again.ok) await s.destroy(again.session);
    s.close();
    await store.close();
    store = await LevelStore.open(dir);
    s = new Sessions({ store: new LevelSessionStore(store), sweepMs: 0 });
    expect(await s.lookup(token)).toEqual({ ok: false, reason: 'expired' });
    s.close();
    await store.close();
  });

  it('a sign-out in one process ends the session in another sharing the store, at once for its sockets', async () => {
    const store = new MemorySessionStore();
    const a = new Sessions({ store, sweepMs: 0 });
    const b = new Sessions({ store, sweepMs: 0 });
    const ended: string[] = [];
    a.onEnd((id) => ended.push(id));
    const { token } = await a.create({ id: 'r-a', name: 'A', grants: {} });
    const onA = await a.lookup(token);
    const onB = await b.lookup(token);
    expect(onA.ok && onB.ok).toBe(true);
    if (onB.ok) await b.destroy(onB.session);
    await expect.poll(() => ended).toEqual(['r-a']);
    expect(onA.ok && a.alive(onA.session)).toBe(false);
    expect(await a.lookup(token)).toEqual({ ok: false, reason: 'expired' });
    a.close();
    b.close();
  });

  it('idle expiry counts from the last recorded use, which is written at most every idle/10; the sweep ends and later removes sessions', async () => {
    let now = 0;
    const store = new MemorySessionStore();
    const s = new Sessions({ store, idleMs: 10_000, absoluteMs: 100_000, now: () => now, sweepMs: 0 });
    const { token } = await s.create({ id: 'r-a', name: 'A', grants: {} });
    const writes: number[] = [];
    store.watch(() => writes.push(now));
    now = 500;
    await s.lookup(token); // under touchMs (1 s): not written
    now = 9_500;
    await s.lookup(token); // written
    await Promise.resolve();
    expect(writes).toEqual([9_500]);
    now = 19_000;
    expect((await s.lookup(token)).ok).toBe(true);
    now = 40_000;
    await s.sweep();
    const rec = await store.get(tokenKey(token));
    expect(rec).toMatchObject({ kind: 'session', endReason: 'expired' });
    now += 25 * 3600_000;
    await s.sweep();
    expect(await store.get(tokenKey(token))).toBeUndefined();
    s.close();
  });
});

describe('OIDC claims to Handoff roles', () => {
  const cfg = OidcConfig.parse({
    issuer: 'https://idp.example.com',
    clientId: 'handoff',
    redirectUri: 'https://handoff.example.com/auth/callback',
    idClaim: 'preferred_username',
    grants: [
      { claim: 'groups', value: 'support', model: 'refunds', roles: ['support-lead'] },
      {
        claim: 'realm_access.roles',
        value: 'finance',
        model: 'refunds',
        roles: ['finance-controller'],
        seeSensitive: true,
      },
      { claim: 'department', value: 'ops', model: 'refunds', roles: ['support-lead', 'engineer'] },
    ],
  });

  it('unions the roles of every matching rule per model; arrays, strings and dotted paths; refuses no role or no id', async () => {
    const refunds = await loadModel(join(ROOT, 'models/refunds'));
    expect(
      principalFromClaims(cfg, [refunds], {
        sub: 'x1',
        preferred_username: 'r-amelie',
        groups: ['support', 'other'],
        realm_access: { roles: ['finance'] },
        department: 'ops',
      }),
    ).toEqual({
      principal: {
        id: 'r-amelie',
        name: 'Amélie Laurent',
        grants: { refunds: { roles: ['support-lead', 'finance-controller', 'engineer'], seeSensitive: true } },
      },
    });
    expect(
      principalFromClaims(cfg, [refunds], { preferred_username: 'jane@example.com', name: 'Jane', groups: 'support' }),
    ).toEqual({
      principal: {
        id: 'jane@example.com',
        name: 'Jane',
        grants: { refunds: { roles: ['support-lead'], seeSensitive: false } },
      },
    });
    expect(principalFromClaims(cfg, [refunds], { preferred_username: 'jane', groups: ['staff'] })).toMatchObject({
      refused: expect.stringContaining('no Handoff role'),
    });
    expect(principalFromClaims(cfg, [refunds], { sub: 'x', groups: ['support'] })).toMatchObject({
      refused: expect.stringContaining('preferred_username'),
    });
  });

  it('a gateway config naming an unknown model or role, a missing secret variable, plain HTTP off loopback or another callback path is refused, with paths', async () => {
    const refunds = await loadModel(join(ROOT, 'models/refunds'));
    const dir = await mkdtemp(join(tmpdir(), 'handoff-gwcfg-'));
    dirs.push(dir);
    const file = join(dir, 'gateway.json');
    await writeFile(
      file,
      JSON.stringify({
        schemaVersion: 1,
        oidc: {
          issuer: 'http://idp.example.com',
          clientId: 'handoff',
          clientSecretEnv: 'NOT_SET_ANYWHERE',
          redirectUri: 'https://handoff.example.com/callback',
          grants: [
            { value: 'g', model: 'nope', roles: ['x'] },
            { value: 'g', model: 'refunds', roles: ['pilot'] },
          ],
        },
      }),
    );
    const err = await loadGatewayConfig(file, [refunds], {}).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GatewayConfigError);
    expect((err as GatewayConfigError).details.problems).toEqual([
      { path: 'oidc.issuer', message: expect.stringContaining('https://') },
      { path: 'oidc.redirectUri', message: expect.stringContaining('/auth/callback') },
      { path: 'oidc.clientSecretEnv', message: 'NOT_SET_ANYWHERE is not set' },
      { path: 'oidc.grants.0.model', message: expect.stringContaining("no model 'nope'") },
      { path: 'oidc.grants.1.roles.0', message: "model 'refunds' has no role 'pilot'" },
    ]);
    await writeFile(file, JSON.stringify({ schemaVersion: 1, passwords: false }));
    expect(
      ((await loadGatewayConfig(file, [refunds], {}).catch((e: unknown) => e)) as GatewayConfigError).message,
    ).toContain('configure oidc');
  });
});
