import { HandoffError } from '../contracts/errors.ts';

/**
 * A transport-security setting is wrong: a file that cannot be read, a certificate that is not PEM,
 * a key that does not belong to its certificate, two credentials given at once. `field` names the
 * CLI option (or `env` the environment variable) at fault. Secrets never appear in the message.
 */
export class SecurityConfigError extends HandoffError {
  readonly field: string;
  constructor(
    field: string,
    message: string,
    details: { env?: string; file?: string } = {},
    options?: { cause?: unknown },
  ) {
    super(
      'security.config_invalid',
      `${field}${details.env ? ` (${details.env})` : ''}: ${message}`,
      { field, ...details },
      options,
    );
    this.field = field;
  }
}

/**
 * The gateway was asked to listen on an address other hosts can reach without TLS. Session cookies
 * and reviewer passwords would cross the network in clear text; see docs/security.md.
 */
export class PlaintextListenRefusedError extends HandoffError {
  constructor(host: string) {
    super(
      'gateway.plaintext_refused',
      `refusing to serve the console in plain HTTP on ${host}, which other hosts can reach: give --tls-cert and --tls-key ` +
        '(or HANDOFF_TLS_CERT and HANDOFF_TLS_KEY), listen on a loopback address behind a TLS proxy, ' +
        'or pass --insecure-allow-plaintext (HANDOFF_INSECURE_ALLOW_PLAINTEXT=1) if a trusted network really needs it',
      { host },
    );
  }
}

/** The NATS server refused our credentials (wrong user or password, token, NKey, or creds). */
export class NatsAuthError extends HandoffError {
  constructor(servers: string, message: string, options?: { cause?: unknown }) {
    super('transport.auth_failed', `NATS at ${servers} refused the credentials: ${message}`, { servers }, options);
  }
}

/**
 * TLS with the NATS server failed: its certificate is not trusted (wrong or missing CA), does not name
 * the host, the server offers no TLS while we require it, or it refused our client certificate.
 */
export class NatsTlsError extends HandoffError {
  constructor(servers: string, message: string, options?: { cause?: unknown }) {
    super('transport.tls_failed', `TLS with NATS at ${servers} failed: ${message}`, { servers }, options);
  }
}
