import { createServer as createNetServer } from 'node:net';
import { createServer, type Server as HttpServer } from 'node:http';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
// @ts-expect-error -- oidc-provider ships no type declarations
import Provider from 'oidc-provider';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tokenKey } from '../../src/httpkit/auth.ts';
import { LevelStore } from '../../src/runtime/level-store.ts';
import { launch, startServer, type Server } from './helpers.ts';

/** A free loopback port (the gateway's redirect URI must be registered at the provider before it starts). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createNetServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

const ACCOUNTS: Record<string, { name: string; groups: string[] }> = {
  'r-fiona': { name: 'Fiona from the IdP', groups: ['staff', 'handoff-refunds-support'] },
  'r-nobody': { name: 'No Access', groups: ['staff'] },
};

/**
 * Single sign-on against a real OpenID Connect provider (`oidc-provider`, in this process, with its
 * development login and consent pages), and sessions that survive a restart of `handoff start`.
 */
describe('console sign-in through an OpenID Connect provider', () => {
  let idp: HttpServer;
  let issuer: string;
  let dir: string;
  let args: string[];
  let gw: Server | undefined;
  let browser: Browser;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'handoff-oidc-'));
    const port = await freePort();
    idp = createServer();
    await new Promise<void>((r) => idp.listen(0, '127.0.0.1', () => r()));
    issuer = `http://127.0.0.1:${(idp.address() as { port: number }).port}`;
    const redirect = `http://127.0.0.1:${port}/auth/callback`;
    const provider = new Provider(issuer, {
      clients: [
        {
          client_id: 'handoff-console',
          client_secret: 'a-test-secret-of-some-length',
          redirect_uris: [redirect],
          response_types: ['code'],
          grant_types: ['authorization_code'],
        },
      ],
      findAccount: (_ctx: unknown, sub: string) => {
        const a = ACCOUNTS[sub];
        return a
          ? { accountId: sub, claims: () => ({ sub, preferred_username: sub, name: a.name, groups: a.groups }) }
          : undefined;
      },
      claims: { openid: ['sub'], profile: ['name', 'preferred_username'], groups: ['groups'] },
      scopes: ['openid', 'profile', 'groups'],
      // The groups in the ID token itself (as Keycloak, Entra ID and Okta can be set to do).
      conformIdTokenClaims: false,
      features: { devInteractions: { enabled: true } },
      cookies: { keys: ['handoff-test-cookie-key'] },
      ttl: { Interaction: 600, Session: 3600, Grant: 3600, AccessToken: 600, IdToken: 600 },
    });
    provider.on('server_error', (_ctx: unknown, err: Error) => console.error('oidc-provider', err));
    idp.on('request', provider.callback());
    const config = {
      schemaVersion: 1,
      passwords: true,
      oidc: {
        issuer,
        clientId: 'handoff-console',
        clientSecretEnv: 'HANDOFF_TEST_OIDC_SECRET',
        redirectUri: redirect,
        scopes: ['openid', 'profile', 'groups'],
        label: 'Sign in with Test IdP',
        idClaim: 'preferred_username',
        grants: [
          { claim: 'groups', value: 'handoff-refunds-support', model: 'refunds', roles: ['support-lead'] },
          {
            claim: 'groups',
            value: 'handoff-refunds-finance',
            model: 'refunds',
            roles: ['finance-controller'],
            seeSensitive: true,
          },
        ],
      },
    };
    await writeFile(join(dir, 'gateway.json'), JSON.stringify(config));
    process.env.HANDOFF_TEST_OIDC_SECRET = 'a-test-secret-of-some-length';
    args = [
      '--port',
      String(port),
      '--data',
      join(dir, 'data'),
      '--model',
      'models/refunds',
      '--demo-load',
      '30',
      '--demo-seed',
      '5',
      '--gateway-config',
      join(dir, 'gateway.json'),
    ];
    gw = await startServer(args);
    browser = await launch();
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await gw?.stop();
    await new Promise((r) => idp?.close(r));
    await rm(dir, { recursive: true, force: true });
  });

  it('signs in at the provider, takes the role from a group claim, refuses a queue of another role, and keeps the session across a restart', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(`${gw!.url}/login`);
    await page.waitForSelector('#login-sso:not([hidden])');
    expect(await page.textContent('#login-sso-link')).toBe('Sign in with Test IdP');
    await page.click('#login-sso-link');
    // The provider's own login and consent pages.
    await page.waitForURL((u) => u.href.startsWith(issuer));
    await page.fill('input[name=login]', 'r-fiona');
    await page.fill('input[name=password]', 'anything');
    await page.click('button[type=submit]');
    await page.waitForSelector('button[type=submit]');
    if (page.url().startsWith(issuer)) await page.click('button[type=submit]');
    await page.waitForSelector('table.queue-table[data-rendered="1"]');
    const session = (await page.evaluate(async () => (await fetch('/api/session')).json())) as {
      reviewer: unknown;
      via: string;
    };
    expect(session.reviewer).toMatchObject({
      id: 'r-fiona',
      name: 'Fiona from the IdP',
      grants: { refunds: { roles: ['support-lead'], seeSensitive: false } },
    });
    expect(session.via).toBe('oidc');

    // A queue of a tier whose role the group does not grant: refused, on the page and by the API.
    await page.goto(`${gw!.url}/#/queue?queue=refunds-finance`);
    await page.waitForSelector('.empty-error');
    expect(await page.textContent('.empty-error')).toContain('needs the role finance-controller');
    const refused = await page.evaluate(async () => {
      const r = await fetch('/api/queue?queue=refunds-finance');
      return { status: r.status, body: await r.json() };
    });
    expect(refused).toMatchObject({ status: 403, body: { error: { code: 'auth.forbidden' } } });
    expect(await page.evaluate(async () => (await fetch('/api/queue?queue=refunds')).status)).toBe(200);

    // Restart the console: the session lives in the data folder, as the hash of its token only.
    const token = (await context.cookies()).find((c) => c.name === 'handoff_session')!.value;
    expect(await gw!.stop()).toBe(0);
    gw = undefined;
    const store = await LevelStore.open(join(dir, 'data'));
    const keys: string[] = [];
    for await (const k of store.db.keys({ gt: 'm:session:', lt: 'm:session;' })) keys.push(k);
    const stored = JSON.stringify(await store.getMeta(`session:${tokenKey(token)}`));
    await store.close();
    expect(keys).toContain(`m:session:${tokenKey(token)}`);
    expect(keys.join()).not.toContain(token);
    expect(stored).toContain('r-fiona');
    expect(stored).not.toContain(token);
    gw = await startServer(args);
    await page.goto(`${gw.url}/`);
    await page.waitForSelector('table.queue-table[data-rendered="1"]');
    expect(page.url()).not.toContain('/login');
    expect(
      ((await page.evaluate(async () => (await fetch('/api/session')).json())) as { reviewer: { id: string } }).reviewer
        .id,
    ).toBe('r-fiona');

    // Sign-out ends it for good: the old cookie is refused after it.
    await page.click('#signout');
    await page.waitForURL(/\/login\?signedout=1/);
    const after = await fetch(`${gw.url}/api/session`, { headers: { Cookie: `handoff_session=${token}` } });
    expect(after.status).toBe(401);
    await context.close();
  });

  it('refuses an account whose claims map to no role, and says so', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(`${gw!.url}/login`);
    await page.click('#login-sso-link');
    await page.waitForURL((u) => u.href.startsWith(issuer));
    await page.fill('input[name=login]', 'r-nobody');
    await page.fill('input[name=password]', 'anything');
    await page.click('button[type=submit]');
    await page.waitForSelector('button[type=submit]');
    if (page.url().startsWith(issuer)) await page.click('button[type=submit]');
    await page.waitForURL(/\/login\?sso=norole/);
    expect(await page.textContent('#login-notice')).toContain('no Handoff role');
    expect((await context.cookies()).some((c) => c.name === 'handoff_session')).toBe(false);
    await context.close();
  });
});
