import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { lookup } from 'node:dns/promises';
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { Option, type Command } from 'commander';
import { PlaintextListenRefusedError, SecurityConfigError } from './tls-errors.ts';

/** The environment variables the gateway's TLS settings are read from when the options are absent. */
export const GATEWAY_TLS_ENV = {
  cert: 'HANDOFF_TLS_CERT',
  key: 'HANDOFF_TLS_KEY',
  allowPlaintext: 'HANDOFF_INSECURE_ALLOW_PLAINTEXT',
} as const;

/** The gateway's certificate and key, read and checked (see {@link loadGatewayTls}). */
export interface GatewayTls {
  /** The certificate chain, PEM: the server's certificate first, then any intermediates. */
  cert: string;
  /** The private key of the first certificate, PEM, unencrypted. */
  key: string;
  certFile: string;
  keyFile: string;
  /** Subject and expiry of the server's certificate, for the startup line (no secret). */
  subject: string;
  validTo: string;
  /** `max-age` of the `Strict-Transport-Security` header. @default 31536000 (one year) */
  hstsMaxAgeS?: number;
}

/** How the gateway protects its traffic: TLS, or plain HTTP (allowed on loopback, or when forced). */
export interface GatewaySecurity {
  /** HTTPS and WSS with this certificate; null serves plain HTTP. */
  tls: GatewayTls | null;
  /**
   * Serve plain HTTP on an address other hosts can reach (a warning is logged). Without it,
   * {@link checkListenAddress} refuses. @default false
   */
  allowPlaintext: boolean;
}

/** The CLI options {@link addGatewayTlsOptions} adds, as commander parses them. */
export interface GatewayTlsCliOptions {
  tlsCert?: string;
  tlsKey?: string;
  insecureAllowPlaintext?: boolean;
}

/**
 * Adds `--tls-cert`, `--tls-key` and `--insecure-allow-plaintext` to a command that starts the
 * gateway. Every such command calls this and {@link gatewaySecurityFromOptions}, so the options and
 * their rules are the same everywhere.
 */
export function addGatewayTlsOptions(cmd: Command): Command {
  return cmd
    .addOption(
      new Option(
        '--tls-cert <file>',
        `PEM certificate chain: serve the console over HTTPS/WSS (env ${GATEWAY_TLS_ENV.cert})`,
      ),
    )
    .addOption(new Option('--tls-key <file>', `PEM private key of --tls-cert (env ${GATEWAY_TLS_ENV.key})`))
    .addOption(
      new Option(
        '--insecure-allow-plaintext',
        `serve plain HTTP on a non-loopback --host (refused otherwise; env ${GATEWAY_TLS_ENV.allowPlaintext}=1)`,
      ),
    );
}

/** Reads a boolean environment variable: 1/true/yes or 0/false/no (any case); unset is false. */
export function envFlag(env: NodeJS.ProcessEnv, name: string, field: string): boolean {
  const v = env[name];
  if (v === undefined || v === '') return false;
  const s = v.trim().toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(s)) return true;
  if (['0', 'false', 'no', 'off'].includes(s)) return false;
  throw new SecurityConfigError(field, `expected 1/true/yes or 0/false/no, got '${v.slice(0, 20)}'`, { env: name });
}

/**
 * The gateway's transport security from CLI options, falling back to the environment
 * ({@link GATEWAY_TLS_ENV}). A certificate needs its key and the reverse; both files are read and
 * checked at once, so a bad setting stops the process before anything starts.
 */
export function gatewaySecurityFromOptions(
  o: GatewayTlsCliOptions,
  env: NodeJS.ProcessEnv = process.env,
): GatewaySecurity {
  const certFile = o.tlsCert ?? (env[GATEWAY_TLS_ENV.cert] || undefined);
  const keyFile = o.tlsKey ?? (env[GATEWAY_TLS_ENV.key] || undefined);
  const allowPlaintext =
    o.insecureAllowPlaintext === true || envFlag(env, GATEWAY_TLS_ENV.allowPlaintext, '--insecure-allow-plaintext');
  if (certFile && !keyFile)
    throw new SecurityConfigError('--tls-key', `--tls-cert is set (${certFile}) but not its key`, {
      env: GATEWAY_TLS_ENV.key,
    });
  if (keyFile && !certFile)
    throw new SecurityConfigError('--tls-cert', `--tls-key is set (${keyFile}) but not the certificate`, {
      env: GATEWAY_TLS_ENV.cert,
    });
  return { tls: certFile && keyFile ? loadGatewayTls(certFile, keyFile) : null, allowPlaintext };
}

function readPem(field: string, env: string, file: string): string {
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
  if (!text.includes('-----BEGIN '))
    throw new SecurityConfigError(field, `${file} is not a PEM file (no -----BEGIN line)`, { env, file });
  return text;
}

/**
 * Reads the gateway's certificate chain and key from PEM files and checks them: the certificate
 * parses and is valid now, the key parses, is not encrypted, and belongs to the certificate.
 */
export function loadGatewayTls(certFile: string, keyFile: string, now: Date = new Date()): GatewayTls {
  const cert = readPem('--tls-cert', GATEWAY_TLS_ENV.cert, certFile);
  const key = readPem('--tls-key', GATEWAY_TLS_ENV.key, keyFile);
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch (err) {
    throw new SecurityConfigError(
      '--tls-cert',
      `${certFile} holds no valid certificate: ${(err as Error).message}`,
      { env: GATEWAY_TLS_ENV.cert, file: certFile },
      { cause: err },
    );
  }
  if (new Date(x509.validTo) < now)
    throw new SecurityConfigError('--tls-cert', `the certificate in ${certFile} expired on ${x509.validTo}`, {
      env: GATEWAY_TLS_ENV.cert,
      file: certFile,
    });
  if (new Date(x509.validFrom) > now)
    throw new SecurityConfigError(
      '--tls-cert',
      `the certificate in ${certFile} is not valid before ${x509.validFrom}`,
      { env: GATEWAY_TLS_ENV.cert, file: certFile },
    );
  let keyObject: KeyObject;
  try {
    keyObject = createPrivateKey(key);
  } catch (err) {
    const encrypted = /ENCRYPTED/.test(key);
    // The message of a parse failure never includes the key's bytes.
    throw new SecurityConfigError(
      '--tls-key',
      encrypted
        ? `${keyFile} is encrypted; give an unencrypted key (protect the file's permissions instead)`
        : `${keyFile} holds no valid private key`,
      { env: GATEWAY_TLS_ENV.key, file: keyFile },
      { cause: err },
    );
  }
  if (!x509.checkPrivateKey(keyObject))
    throw new SecurityConfigError(
      '--tls-key',
      `the key in ${keyFile} does not belong to the certificate in ${certFile}`,
      { env: GATEWAY_TLS_ENV.key, file: keyFile },
    );
  return { cert, key, certFile, keyFile, subject: x509.subject.replace(/\n/g, ', '), validTo: x509.validTo };
}

/** Whether an IP address is a loopback address (127.0.0.0/8, ::1, or IPv4-mapped 127.x). */
export function isLoopbackAddress(address: string): boolean {
  const a = address.replace(/^\[|\]$/g, '').toLowerCase();
  if (isIP(a) === 4) return a.startsWith('127.');
  if (isIP(a) === 6) return a === '::1' || a === '0:0:0:0:0:0:0:1' || /^::ffff:127\./.test(a);
  return false;
}

/**
 * Checks that the gateway may listen on `host` as configured, and says how: `tls`; `loopback` (plain
 * HTTP reachable from this machine only); or `plaintext-allowed` (plain HTTP others can reach,
 * forced by `allowPlaintext`; the caller logs a warning). Otherwise throws
 * {@link PlaintextListenRefusedError}: reviewers' passwords and session cookies must not cross a
 * network in clear text. A host name counts as loopback only if every address it resolves to is one.
 */
export async function checkListenAddress(
  host: string | undefined,
  security: Pick<GatewaySecurity, 'tls' | 'allowPlaintext'>,
): Promise<'tls' | 'loopback' | 'plaintext-allowed'> {
  if (security.tls) return 'tls';
  if (await resolvesToLoopback(host)) return 'loopback';
  if (security.allowPlaintext) return 'plaintext-allowed';
  throw new PlaintextListenRefusedError(host || '(all interfaces)');
}

async function resolvesToLoopback(host: string | undefined): Promise<boolean> {
  if (!host) return false; // node:net listens on every interface
  const h = host.replace(/^\[|\]$/g, '');
  if (isIP(h)) return isLoopbackAddress(h);
  try {
    const addrs = await lookup(h, { all: true });
    return addrs.length > 0 && addrs.every((a) => isLoopbackAddress(a.address));
  } catch {
    return false; // cannot tell: treat as reachable
  }
}

/** The `Strict-Transport-Security` header for a TLS gateway. */
export function hstsHeader(tls: GatewayTls): string {
  return `max-age=${tls.hstsMaxAgeS ?? 31_536_000}`;
}
