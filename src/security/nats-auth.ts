import { readFileSync } from 'node:fs';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { credsAuthenticator, nkeyAuthenticator, nkeys, type ConnectionOptions } from '@nats-io/transport-node';
import { Option, type Command } from 'commander';
import { HandoffError } from '../contracts/errors.ts';
import { NatsAuthError, NatsTlsError, SecurityConfigError } from './tls-errors.ts';
import { envFlag } from './tls-options.ts';

/** The environment variables read when the matching `--nats-*` option is absent. */
export const NATS_SECURITY_ENV = {
  tls: 'HANDOFF_NATS_TLS',
  ca: 'HANDOFF_NATS_TLS_CA',
  cert: 'HANDOFF_NATS_TLS_CERT',
  key: 'HANDOFF_NATS_TLS_KEY',
  user: 'HANDOFF_NATS_USER',
  pass: 'HANDOFF_NATS_PASS',
  passFile: 'HANDOFF_NATS_PASS_FILE',
  token: 'HANDOFF_NATS_TOKEN',
  tokenFile: 'HANDOFF_NATS_TOKEN_FILE',
  nkey: 'HANDOFF_NATS_NKEY',
  creds: 'HANDOFF_NATS_CREDS',
} as const;

/** TLS towards the NATS servers. Given at all, TLS is required: a server without it is refused. */
export interface NatsTlsSettings {
  /** PEM file of the CA(s) that sign the servers' certificates. @default the system's trusted CAs */
  caFile?: string;
  /** PEM client certificate, for servers that verify clients (`verify: true`); needs `keyFile`. */
  certFile?: string;
  /** PEM private key of `certFile`. */
  keyFile?: string;
}

/** One way to authenticate to NATS (the server's `authorization` block, or operator mode for `creds`). */
export type NatsAuth =
  | { kind: 'user'; user: string; pass: string }
  | { kind: 'token'; token: string }
  /** An NKey seed file (`SU...`): the server knows the public key. */
  | { kind: 'nkey'; seedFile: string }
  /** A JWT creds file (`nsc generate creds`); re-read at each (re)connect, so rotating it needs no restart. */
  | { kind: 'creds'; credsFile: string };

/**
 * How Handoff connects to NATS securely: TLS and credentials. Parsed once from CLI options and
 * environment ({@link natsSecurityFromOptions}) and handed to every connection
 * (`NatsTransport.connect`, `ClusterNode`, the cluster demo driver).
 *
 * Without `tls`, the client still upgrades to TLS when the server requires it (verified against the
 * system's CAs); with it, TLS is mandatory.
 */
export interface NatsSecurityOptions {
  tls?: NatsTlsSettings;
  auth?: NatsAuth;
}

/** The CLI options {@link addNatsSecurityOptions} adds, as commander parses them. */
export interface NatsSecurityCliOptions {
  natsTls?: boolean;
  natsTlsCa?: string;
  natsTlsCert?: string;
  natsTlsKey?: string;
  natsUser?: string;
  natsPassFile?: string;
  natsTokenFile?: string;
  natsNkey?: string;
  natsCreds?: string;
}

/**
 * Adds the NATS security options to a command that connects to NATS. Secrets (password, token) are
 * taken from a file or the environment, never from the command line, where `ps` shows them to every
 * user of the machine.
 */
export function addNatsSecurityOptions(cmd: Command): Command {
  const E = NATS_SECURITY_ENV;
  return cmd
    .addOption(
      new Option(
        '--nats-tls',
        `require TLS to NATS, verified against the system CAs unless --nats-tls-ca (env ${E.tls}=1)`,
      ),
    )
    .addOption(
      new Option(
        '--nats-tls-ca <file>',
        `PEM CA that signs the NATS servers' certificates; implies --nats-tls (env ${E.ca})`,
      ),
    )
    .addOption(
      new Option(
        '--nats-tls-cert <file>',
        `PEM client certificate for NATS servers that verify clients (env ${E.cert})`,
      ),
    )
    .addOption(new Option('--nats-tls-key <file>', `PEM key of --nats-tls-cert (env ${E.key})`))
    .addOption(
      new Option(
        '--nats-user <name>',
        `NATS user; the password from --nats-pass-file or env ${E.pass} (env ${E.user})`,
      ),
    )
    .addOption(new Option('--nats-pass-file <file>', `file holding the NATS password (env ${E.passFile})`))
    .addOption(
      new Option('--nats-token-file <file>', `file holding a NATS token (or env ${E.token}; env ${E.tokenFile})`),
    )
    .addOption(new Option('--nats-nkey <file>', `NKey seed file (SU...) (env ${E.nkey})`))
    .addOption(new Option('--nats-creds <file>', `NATS JWT creds file, re-read at each reconnect (env ${E.creds})`));
}

function readSecretFile(field: string, env: string, file: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new SecurityConfigError(
      field,
      `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      { env, file },
      { cause: err },
    );
  }
  const value = text.replace(/\r?\n$/, '');
  if (!value) throw new SecurityConfigError(field, `${file} is empty`, { env, file });
  return value;
}

/**
 * The NATS security settings from CLI options, falling back to the environment
 * ({@link NATS_SECURITY_ENV}). At most one way to authenticate; every file is read and checked now,
 * so a bad setting stops the process before it connects.
 */
export function natsSecurityFromOptions(
  o: NatsSecurityCliOptions,
  env: NodeJS.ProcessEnv = process.env,
): NatsSecurityOptions {
  const E = NATS_SECURITY_ENV;
  const pick = (cli: string | undefined, name: string) => cli ?? (env[name] || undefined);
  const caFile = pick(o.natsTlsCa, E.ca);
  const certFile = pick(o.natsTlsCert, E.cert);
  const keyFile = pick(o.natsTlsKey, E.key);
  const tlsOn = o.natsTls === true || envFlag(env, E.tls, '--nats-tls') || !!caFile || !!certFile || !!keyFile;
  const sec: NatsSecurityOptions = {};
  if (tlsOn)
    sec.tls = { ...(caFile ? { caFile } : {}), ...(certFile ? { certFile } : {}), ...(keyFile ? { keyFile } : {}) };

  const user = pick(o.natsUser, E.user);
  const passFile = pick(o.natsPassFile, E.passFile);
  const tokenFile = pick(o.natsTokenFile, E.tokenFile);
  const token = tokenFile ? readSecretFile('--nats-token-file', E.tokenFile, tokenFile) : env[E.token] || undefined;
  const seedFile = pick(o.natsNkey, E.nkey);
  const credsFile = pick(o.natsCreds, E.creds);
  const given = [
    user && '--nats-user',
    token && (tokenFile ? '--nats-token-file' : E.token),
    seedFile && '--nats-nkey',
    credsFile && '--nats-creds',
  ].filter(Boolean) as string[];
  if (given.length > 1)
    throw new SecurityConfigError(given[1]!, `give one way to authenticate to NATS, not ${given.join(' and ')}`);
  if (!user && (passFile || env[E.pass]))
    throw new SecurityConfigError(
      '--nats-user',
      `a NATS password is set (${passFile ? '--nats-pass-file' : E.pass}) but no user`,
      { env: E.user },
    );
  if (user) {
    const pass = passFile ? readSecretFile('--nats-pass-file', E.passFile, passFile) : env[E.pass];
    if (!pass)
      throw new SecurityConfigError(
        '--nats-pass-file',
        `--nats-user ${user} needs a password: --nats-pass-file or ${E.pass}`,
        { env: E.passFile },
      );
    sec.auth = { kind: 'user', user, pass };
  } else if (token) sec.auth = { kind: 'token', token };
  else if (seedFile) sec.auth = { kind: 'nkey', seedFile };
  else if (credsFile) sec.auth = { kind: 'creds', credsFile };
  natsConnectOptions(sec); // checks every file now
  return sec;
}

const CREDS_JWT = /-----BEGIN NATS USER JWT-----\s*\n\s*\S+\s*\n\s*------END NATS USER JWT------/;
const CREDS_SEED = /-----BEGIN USER NKEY SEED-----\s*\n\s*S\S+\s*\n\s*------END USER NKEY SEED------/;

function checkSeed(seed: string, field: string, file: string, env: string): void {
  try {
    const kp = nkeys.fromSeed(new TextEncoder().encode(seed));
    if (!kp.getPublicKey().startsWith('U')) throw new Error('not a user seed');
  } catch (err) {
    throw new SecurityConfigError(
      field,
      `${file} holds no NKey user seed (a line starting with SU): ${(err as Error).message}`,
      { env, file },
      { cause: err },
    );
  }
}

function readPem(field: string, env: string, file: string, kind: 'cert' | 'key'): string {
  const text = readSecretFile(field, env, file);
  try {
    if (kind === 'cert') new X509Certificate(text);
    else createPrivateKey(text);
  } catch (err) {
    throw new SecurityConfigError(
      field,
      `${file} holds no valid PEM ${kind === 'cert' ? 'certificate' : 'private key (unencrypted)'}`,
      { env, file },
      { cause: err },
    );
  }
  return text;
}

/**
 * The options of nats.js `connect` for these settings: `tls` (PEM contents, so a missing file is
 * reported here by name, not as a connection failure), `user`/`pass`, `token`, or an `authenticator`
 * (`nkeyAuthenticator`, `credsAuthenticator`). Throws {@link SecurityConfigError} naming the field.
 */
export function natsConnectOptions(
  sec: NatsSecurityOptions = {},
): Pick<ConnectionOptions, 'tls' | 'user' | 'pass' | 'token' | 'authenticator'> {
  const E = NATS_SECURITY_ENV;
  const out: Pick<ConnectionOptions, 'tls' | 'user' | 'pass' | 'token' | 'authenticator'> = {};
  if (sec.tls) {
    const t = sec.tls;
    if (!!t.certFile !== !!t.keyFile)
      throw new SecurityConfigError(
        t.certFile ? '--nats-tls-key' : '--nats-tls-cert',
        'a NATS client certificate needs both --nats-tls-cert and --nats-tls-key',
        { env: t.certFile ? E.key : E.cert },
      );
    out.tls = {
      ...(t.caFile ? { ca: readPem('--nats-tls-ca', E.ca, t.caFile, 'cert') } : {}),
      ...(t.certFile ? { cert: readPem('--nats-tls-cert', E.cert, t.certFile, 'cert') } : {}),
      ...(t.keyFile ? { key: readPem('--nats-tls-key', E.key, t.keyFile, 'key') } : {}),
    };
  }
  const a = sec.auth;
  if (!a) return out;
  switch (a.kind) {
    case 'user':
      if (!a.user) throw new SecurityConfigError('--nats-user', 'the NATS user is empty', { env: E.user });
      if (!a.pass)
        throw new SecurityConfigError('--nats-pass-file', `the password of NATS user ${a.user} is empty`, {
          env: E.pass,
        });
      out.user = a.user;
      out.pass = a.pass;
      break;
    case 'token':
      if (!a.token) throw new SecurityConfigError('--nats-token-file', 'the NATS token is empty', { env: E.token });
      out.token = a.token;
      break;
    case 'nkey': {
      const seed = readSecretFile('--nats-nkey', E.nkey, a.seedFile).trim();
      checkSeed(seed, '--nats-nkey', a.seedFile, E.nkey);
      out.authenticator = nkeyAuthenticator(new TextEncoder().encode(seed));
      break;
    }
    case 'creds': {
      let last = readSecretFile('--nats-creds', E.creds, a.credsFile);
      if (!CREDS_JWT.test(last) || !CREDS_SEED.test(last))
        throw new SecurityConfigError(
          '--nats-creds',
          `${a.credsFile} is not a NATS creds file (a USER JWT and a USER NKEY SEED block)`,
          { env: E.creds, file: a.credsFile },
        );
      // Re-read at every (re)connect so a rotated file is picked up; keep the last good one if it is mid-write.
      out.authenticator = credsAuthenticator(() => {
        try {
          const now = readFileSync(a.credsFile, 'utf8');
          if (CREDS_JWT.test(now) && CREDS_SEED.test(now)) last = now;
        } catch {
          // keep the last good credentials
        }
        return new TextEncoder().encode(last);
      });
      break;
    }
  }
  return out;
}

/** What a log line or status may say about the settings: no secret, only their shape. */
export function describeNatsSecurity(sec: NatsSecurityOptions | undefined): {
  tls: 'required' | 'if the server requires it';
  ca: string;
  clientCert: boolean;
  auth: string;
} {
  const a = sec?.auth;
  return {
    tls: sec?.tls ? 'required' : 'if the server requires it',
    ca: sec?.tls?.caFile ?? 'system',
    clientCert: !!sec?.tls?.certFile,
    auth: !a ? 'none' : a.kind === 'user' ? `user ${a.user}` : a.kind,
  };
}

/** A server URL without the user and password it may carry (`nats://u:p@h` → `nats://h`). */
export function redactServerUrl(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^@/]*@/i, '$1');
}

const TLS_CODES: Record<string, string> = {
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: "the server's certificate is not signed by a trusted CA (give --nats-tls-ca)",
  UNABLE_TO_GET_ISSUER_CERT: "the server's certificate is not signed by a trusted CA (give --nats-tls-ca)",
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: "the server's certificate is not signed by a trusted CA (give --nats-tls-ca)",
  SELF_SIGNED_CERT_IN_CHAIN: "the server's certificate chain ends in an untrusted CA (give --nats-tls-ca)",
  DEPTH_ZERO_SELF_SIGNED_CERT: "the server's certificate is self-signed and not trusted (give it as --nats-tls-ca)",
  CERT_HAS_EXPIRED: "the server's certificate has expired",
  CERT_NOT_YET_VALID: "the server's certificate is not valid yet",
  ERR_TLS_CERT_ALTNAME_INVALID: "the server's certificate does not name the host in the URL",
};

/**
 * The typed error for a failure to connect that retrying cannot fix: refused credentials
 * ({@link NatsAuthError}) or a TLS failure ({@link NatsTlsError}); null for failures worth retrying
 * (the server is not up yet, the network).
 */
export function natsConnectError(err: unknown, servers: string): HandoffError | null {
  if (err instanceof HandoffError) return err;
  const chain: { name?: string; message?: string; code?: string }[] = [];
  for (
    let e = err as { name?: string; message?: string; code?: string; cause?: unknown } | undefined, i = 0;
    e && i < 5;
    e = e.cause as typeof e, i++
  )
    chain.push(e);
  for (const e of chain) {
    const msg = e.message ?? '';
    if (
      e.name === 'AuthorizationError' ||
      e.name === 'UserAuthenticationExpiredError' ||
      /authorization violation|authentication (timeout|expired)/i.test(msg)
    )
      return new NatsAuthError(servers, msg || 'authorization violation', { cause: err });
    if (e.code && TLS_CODES[e.code])
      return new NatsTlsError(servers, `${TLS_CODES[e.code]} (${e.code})`, { cause: err });
    if (e.code?.startsWith('ERR_SSL_') || e.code?.startsWith('ERR_TLS_'))
      return new NatsTlsError(servers, `${msg} (${e.code})`, { cause: err });
    if (/does not support 'tls'|tls.*is not available|tls required/i.test(msg))
      return new NatsTlsError(servers, `the server offers no TLS, but TLS is required (${msg})`, { cause: err });
  }
  return null;
}
