import { randomBytes } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { urlOf } from './app.ts';
import { tokenKey } from '../httpkit/auth.ts';
import { HttpError, parseCookies } from '../httpkit/http.ts';
import type { OidcSignIn } from './oidc.ts';
import { COOKIE, type GatewayContext as Gateway } from './gateway-context.ts';

/**
 * The OIDC sign-in under way: a random handle on the pending record (state, nonce, PKCE verifier),
 * for the callback only.
 */
const OIDC_COOKIE = 'handoff_oidc';

/** Single sign-on: `GET /auth/oidc` (start) and `GET /auth/callback` (the provider's answer). docs/console.md. */
export function registerOidcRoutes(app: FastifyInstance, gw: Gateway): void {
  const oidcCookie = (value: string, maxAgeS: number): string =>
    // Lax, not Strict: the provider's redirect back is a cross-site navigation, which must carry it.
    `${OIDC_COOKIE}=${value}; Path=/auth/; HttpOnly; SameSite=Lax; Max-Age=${maxAgeS}${gw.opts.secureCookies || gw.opts.tls ? '; Secure' : ''}`;
  const configured = (): OidcSignIn => {
    if (!gw.oidc) throw new HttpError(404, 'request.not_found', 'single sign-on is not configured on this console');
    return gw.oidc;
  };

  /** A new sign-in (state, nonce, PKCE verifier kept in the session store), then off to the provider. */
  app.get('/auth/oidc', async (request: FastifyRequest, reply: FastifyReply) => {
    const oidc = configured();
    if (gw.oidcStarts.admit(gw.ip(request.raw)) === null)
      throw new HttpError(
        429,
        'auth.throttled',
        'too many sign-ins started from your network address; try again in a minute',
      );
    const next = urlOf(request).searchParams.get('next') === '/inspector' ? '/inspector' : '/';
    const { url: to, pending } = await oidc.begin(next, Date.now());
    const handle = randomBytes(32).toString('base64url');
    await gw.sessions.store.put(tokenKey(handle), pending);
    return reply
      .code(302)
      .headers({ Location: to.href, 'Cache-Control': 'no-store', 'Set-Cookie': oidcCookie(handle, 600) })
      .send();
  });

  /**
   * The provider's answer. The pending sign-in is taken (one use) by the handle in this browser's
   * cookie; openid-client checks state, PKCE, the ID token and its nonce; the claims map to roles. A
   * new session (new token) ends with a page that navigates to the console itself, so the
   * SameSite=Strict session cookie is sent (it is not on a redirect chain begun by another site).
   */
  app.get('/auth/callback', async (request: FastifyRequest, reply: FastifyReply) => {
    const oidc = configured();
    const url = urlOf(request);
    const ip = gw.ip(request.raw);
    const clear = oidcCookie('', 0);
    const fail = async (reason: string, notice: string, id?: string) => {
      await gw.auditSafe([
        {
          at: gw.backend.now(),
          kind: 'auth.login_failed',
          actor: `reviewer:${(id ?? 'unknown').slice(0, 64)}`,
          by: 'anonymous',
          data: { ip, via: 'oidc', reason: reason.slice(0, 300) },
        },
      ]);
      return reply
        .code(302)
        .headers({ Location: `/login?sso=${notice}`, 'Cache-Control': 'no-store', 'Set-Cookie': clear })
        .send();
    };
    const cookies = parseCookies(request.headers.cookie);
    const handle = cookies[OIDC_COOKIE];
    const key = handle && handle.length <= 100 ? tokenKey(handle) : null;
    const pending = key ? await gw.sessions.store.get(key) : undefined;
    if (key && pending) await gw.sessions.store.delete(key);
    if (!pending || pending.kind !== 'oidc-pending' || Date.now() >= pending.expiresAt)
      return fail('no sign-in under way in this browser (or it took over 10 minutes)', 'stale');
    const providerError = url.searchParams.get('error');
    if (providerError) return fail(`the identity provider answered ${providerError.slice(0, 100)}`, 'failed');
    let result: Awaited<ReturnType<OidcSignIn['complete']>>;
    try {
      result = await oidc.complete(url.search, pending);
    } catch (err) {
      gw.log?.warn({ err, code: 'auth.oidc_failed' }, 'OIDC sign-in failed');
      return fail(`the provider's response failed a check: ${(err as Error).message}`, 'failed');
    }
    if ('refused' in result) return fail(result.refused, 'norole', result.id);
    const principal = result.principal;
    const previous = await gw.sessions.lookup(cookies[COOKIE], false);
    if (previous.ok) await gw.sessions.destroy(previous.session, 'replaced');
    const { token } = await gw.sessions.create(principal, 'oidc');
    request.who = { reviewer: principal.id };
    await gw.auditSafe([
      {
        at: gw.backend.now(),
        kind: 'auth.login',
        actor: `reviewer:${principal.id}`,
        by: principal.id,
        data: { ip, via: 'oidc', issuer: oidc.config.issuer, roles: principal.grants },
      },
    ]);
    const body = `<!doctype html><meta charset="utf-8"><meta http-equiv="refresh" content="0;url=${pending.next}"><title>Signed in</title><p>Signed in. <a href="${pending.next}">Continue to the console</a>.</p>\n`;
    return reply
      .code(200)
      .headers({
        'Content-Type': 'text/html; charset=utf-8',
        'Cache-Control': 'no-store',
        'Set-Cookie': [gw.cookie(token, Math.round(gw.sessions.absoluteMs / 1000)), clear],
      })
      .send(body);
  });
}
