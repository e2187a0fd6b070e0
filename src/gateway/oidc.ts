import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import * as client from 'openid-client';
import { z } from 'zod';
import { HandoffError } from '../contracts/errors.ts';
import { toIssues } from '../contracts/parse.ts';
import type { LoadedModel } from '../models/loader.ts';
import type { ModelGrant, Principal } from '../httpkit/auth.ts';
import type { PendingSignIn } from '../httpkit/session-store.ts';

const EnvName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'an environment variable name');

/** One rule of the role mapping: a claim holding a value grants roles in a model. */
export const OidcGrantRule = z
  .object({
    /** The claim to read; a dotted path reads nested claims (`realm_access.roles`). @default "groups" */
    claim: z.string().min(1).max(200).default('groups'),
    /** Matches a string claim equal to it, or an array claim containing it. */
    value: z.string().min(1).max(500),
    /** A model name (`model.json` name). */
    model: z.string().min(1),
    /** Roles of that model's `roles`. */
    roles: z.array(z.string().min(1)).min(1),
    /** Whether the rule lets the reviewer see fields marked sensitive in that model. @default false */
    seeSensitive: z.boolean().default(false),
  })
  .strict();
export type OidcGrantRule = z.infer<typeof OidcGrantRule>;

/** The `oidc` section of a gateway config: OpenID Connect sign-in (authorization code with PKCE). */
export const OidcConfig = z
  .object({
    /** The provider's issuer URL (discovery at `<issuer>/.well-known/openid-configuration`). HTTPS, or HTTP on a loopback host. */
    issuer: z.url(),
    clientId: z.string().min(1).optional(),
    /** Read the client id from this environment variable instead. */
    clientIdEnv: EnvName.optional(),
    /** The client secret's environment variable. Without it Handoff is a public client (PKCE only). Secrets never go in the file. */
    clientSecretEnv: EnvName.optional(),
    /** Registered at the provider; its path must be `/auth/callback`. */
    redirectUri: z.url(),
    scopes: z.array(z.string().min(1)).default(['openid', 'profile', 'email']),
    /** The sign-in button's text. */
    label: z.string().min(1).max(60).default('Sign in with your organisation'),
    /** The claim that is the reviewer id (what separation of duties compares with requesters). @default "sub" */
    idClaim: z.string().min(1).default('sub'),
    /** The claim with the display name (a reviewer of model.json with that id keeps its name there). @default "name" */
    nameClaim: z.string().min(1).default('name'),
    /** Also read the userinfo endpoint's claims (when the ID token lacks the groups). @default false */
    userinfo: z.boolean().default(false),
    grants: z.array(OidcGrantRule).min(1, 'map at least one claim value to roles'),
  })
  .strict()
  .refine((c) => (c.clientId === undefined) !== (c.clientIdEnv === undefined), {
    message: 'give exactly one of clientId and clientIdEnv',
    path: ['clientId'],
  });
export type OidcConfig = z.infer<typeof OidcConfig>;

/** A gateway config file (`handoff start --gateway-config <file>`). */
export const GatewayConfigFile = z
  .object({
    schemaVersion: z.literal(1),
    /** Sign-in with the models' reviewers.json passwords. Turn off when reviewers come from the identity provider only. @default true */
    passwords: z.boolean().default(true),
    oidc: OidcConfig.optional(),
  })
  .strict();
export type GatewayConfigFile = z.infer<typeof GatewayConfigFile>;

export class GatewayConfigError extends HandoffError {
  constructor(file: string, problems: { path: string; message: string }[]) {
    super(
      'config.invalid',
      `${file}: ${problems.map((p) => `${p.path ? `${p.path}: ` : ''}${p.message}`).join('; ')}`,
      { file, problems },
    );
  }
}

const loopback = (host: string) =>
  host === 'localhost' || host === '[::1]' || host === '::1' || (isIP(host) === 4 && host.startsWith('127.'));

/**
 * Reads and checks a gateway config: its shape, that every mapped model and role exists, that named
 * environment variables are set, HTTPS outside loopback, and the callback path.
 */
export async function loadGatewayConfig(
  file: string,
  models: readonly LoadedModel[],
  env: Record<string, string | undefined> = process.env,
): Promise<GatewayConfigFile> {
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(file, 'utf8'));
  } catch (err) {
    throw new GatewayConfigError(file, [
      {
        path: '',
        message:
          (err as NodeJS.ErrnoException).code === 'ENOENT'
            ? 'no such file'
            : `not valid JSON: ${(err as Error).message}`,
      },
    ]);
  }
  const parsed = GatewayConfigFile.safeParse(raw);
  if (!parsed.success) throw new GatewayConfigError(file, toIssues(parsed.error));
  const cfg = parsed.data;
  const problems = cfg.oidc ? checkOidc(cfg.oidc, models, env) : [];
  if (!cfg.passwords && !cfg.oidc)
    problems.push({ path: 'passwords', message: 'with passwords off, configure oidc (nobody could sign in)' });
  if (problems.length) throw new GatewayConfigError(file, problems);
  return cfg;
}

function checkOidc(
  o: OidcConfig,
  models: readonly LoadedModel[],
  env: Record<string, string | undefined>,
): { path: string; message: string }[] {
  const problems: { path: string; message: string }[] = [];
  for (const [k, u] of [
    ['oidc.issuer', o.issuer],
    ['oidc.redirectUri', o.redirectUri],
  ] as const) {
    const url = new URL(u);
    if (url.protocol !== 'https:' && !(url.protocol === 'http:' && loopback(url.hostname)))
      problems.push({ path: k, message: 'must be https:// (http:// only on a loopback host)' });
  }
  if (new URL(o.redirectUri).pathname !== '/auth/callback')
    problems.push({
      path: 'oidc.redirectUri',
      message: "its path must be /auth/callback (where the console receives the provider's answer)",
    });
  if (!o.scopes.includes('openid')) problems.push({ path: 'oidc.scopes', message: "must include 'openid'" });
  if (o.clientIdEnv && !env[o.clientIdEnv])
    problems.push({ path: 'oidc.clientIdEnv', message: `${o.clientIdEnv} is not set` });
  if (o.clientSecretEnv && !env[o.clientSecretEnv])
    problems.push({ path: 'oidc.clientSecretEnv', message: `${o.clientSecretEnv} is not set` });
  const byName = new Map(models.map((m) => [m.name, m]));
  o.grants.forEach((g, i) => {
    const m = byName.get(g.model);
    if (!m)
      return problems.push({
        path: `oidc.grants.${i}.model`,
        message: `no model '${g.model}' is loaded (${[...byName.keys()].join(', ')})`,
      });
    g.roles.forEach((r, j) => {
      if (!m.config.roles[r])
        problems.push({ path: `oidc.grants.${i}.roles.${j}`, message: `model '${g.model}' has no role '${r}'` });
    });
  });
  return problems;
}

/** A claim by dotted path (`realm_access.roles`); a claim whose own name has a dot is read as is first. */
function claimAt(claims: Record<string, unknown>, path: string): unknown {
  if (path in claims) return claims[path];
  let cur: unknown = claims;
  for (const part of path.split('.')) {
    if (!cur || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string, unknown>)[part];
  }
  return cur;
}

const ID_RE = /^[^\p{Cc}\p{Cf}\p{Z}]{1,128}$/u;

/**
 * The principal a provider's claims map to, or why there is none: no usable id, or no rule
 * granting any role. Roles come from the rules only (not from model.json); the display name from
 * model.json when the id is one of its reviewers, else from the name claim.
 */
export function principalFromClaims(
  o: OidcConfig,
  models: readonly LoadedModel[],
  claims: Record<string, unknown>,
): { principal: Principal } | { refused: string; id?: string } {
  const rawId = claimAt(claims, o.idClaim);
  const id = typeof rawId === 'string' || typeof rawId === 'number' ? String(rawId) : '';
  if (!ID_RE.test(id)) return { refused: `the ${o.idClaim} claim is missing or not a usable reviewer id` };
  const grants: Record<string, ModelGrant> = {};
  for (const rule of o.grants) {
    const v = claimAt(claims, rule.claim);
    const has = Array.isArray(v)
      ? v.some((x) => String(x) === rule.value)
      : v !== undefined && v !== null && String(v) === rule.value;
    if (!has) continue;
    const g = (grants[rule.model] ??= { roles: [], seeSensitive: false });
    for (const r of rule.roles) if (!g.roles.includes(r)) g.roles.push(r);
    g.seeSensitive ||= rule.seeSensitive;
  }
  if (Object.keys(grants).length === 0) return { refused: 'no Handoff role is mapped to this account’s claims', id };
  const known = models.flatMap((m) => m.config.reviewers).find((r) => r.id === id);
  const claimName = claimAt(claims, o.nameClaim);
  const name = known?.name ?? (typeof claimName === 'string' && claimName.trim() ? claimName.trim().slice(0, 200) : id);
  return { principal: { id, name, grants } };
}

export const PENDING_MS = 10 * 60_000;

/**
 * OpenID Connect sign-in with `openid-client`: the authorization code flow with PKCE (S256), a state
 * and a nonce per sign-in, the ID token checked by the library (signature, issuer, audience, expiry,
 * nonce). Discovery happens at the first sign-in and again after a failure, so a console starts
 * while its provider is down.
 */
export class OidcSignIn {
  readonly config: OidcConfig;
  #models: readonly LoadedModel[];
  #env: Record<string, string | undefined>;
  #discovered: Promise<client.Configuration> | null = null;

  constructor(
    config: OidcConfig,
    models: readonly LoadedModel[],
    env: Record<string, string | undefined> = process.env,
  ) {
    this.config = config;
    this.#models = models;
    this.#env = env;
  }

  get label(): string {
    return this.config.label;
  }

  #configuration(): Promise<client.Configuration> {
    if (!this.#discovered) {
      const o = this.config;
      const clientId = o.clientId ?? this.#env[o.clientIdEnv!] ?? '';
      const secret = o.clientSecretEnv ? this.#env[o.clientSecretEnv] : undefined;
      const issuer = new URL(o.issuer);
      const insecure = issuer.protocol === 'http:';
      this.#discovered = client
        .discovery(
          issuer,
          clientId,
          secret ? { client_secret: secret } : undefined,
          secret ? client.ClientSecretBasic(secret) : client.None(),
          insecure ? { execute: [client.allowInsecureRequests], timeout: 10 } : { timeout: 10 },
        )
        .catch((err: unknown) => {
          this.#discovered = null;
          throw new HandoffError(
            'auth.oidc_unavailable',
            `the identity provider at ${o.issuer} cannot be reached: ${(err as Error).message}`,
            {},
            { cause: err },
          );
        });
    }
    return this.#discovered;
  }

  /** The provider's authorization URL and the sign-in to keep until its callback. */
  async begin(next: string, now: number): Promise<{ url: URL; pending: PendingSignIn }> {
    const cfg = await this.#configuration();
    const codeVerifier = client.randomPKCECodeVerifier();
    const pending: PendingSignIn = {
      kind: 'oidc-pending',
      state: client.randomState(),
      nonce: client.randomNonce(),
      codeVerifier,
      next,
      expiresAt: now + PENDING_MS,
    };
    const url = client.buildAuthorizationUrl(cfg, {
      redirect_uri: this.config.redirectUri,
      scope: this.config.scopes.join(' '),
      code_challenge: await client.calculatePKCECodeChallenge(codeVerifier),
      code_challenge_method: 'S256',
      state: pending.state,
      nonce: pending.nonce,
    });
    return { url, pending };
  }

  /**
   * Redeems the code of the provider's callback (`search`: its query string) and maps the claims.
   * Throws when the provider answered with an error or the response fails a check.
   */
  async complete(
    search: string,
    pending: PendingSignIn,
  ): Promise<{ principal: Principal } | { refused: string; id?: string }> {
    const cfg = await this.#configuration();
    const current = new URL(this.config.redirectUri);
    current.search = search;
    const tokens = await client.authorizationCodeGrant(cfg, current, {
      pkceCodeVerifier: pending.codeVerifier,
      expectedState: pending.state,
      expectedNonce: pending.nonce,
      idTokenExpected: true,
    });
    let claims: Record<string, unknown> = { ...(tokens.claims() ?? {}) };
    if (this.config.userinfo)
      claims = { ...(await client.fetchUserInfo(cfg, tokens.access_token, String(claims.sub))), ...claims };
    return principalFromClaims(this.config, this.#models, claims);
  }
}
