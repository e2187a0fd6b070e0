/**
 * Test credentials: certificates made with the `openssl` CLI (TestCa), and NATS operator-mode JWTs
 * signed with NKeys (testOperator). Reusable by any test that needs TLS or NATS credentials.
 *
 * Certificates made with the `openssl` CLI: a CA, and certificates it signs for servers
 * (`localhost`, 127.0.0.1 and ::1 by default) and clients. EC P-256 keys, valid for two days, in a
 * temp folder that `dispose()` removes. Reusable by any test that needs TLS.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nkeys } from '@nats-io/transport-node';
import { expect } from 'vitest';
import type { NatsServerOperator } from '../../src/cluster/nats-harness.ts';
import { SecurityConfigError } from '../../src/security/tls-errors.ts';

export const OPENSSL_HINT = 'the TLS tests need the `openssl` CLI (Debian/Ubuntu: apt-get install openssl)';

function openssl(args: string[], cwd: string): void {
  try {
    execFileSync('openssl', args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as { code?: string; stderr?: Buffer };
    if (e.code === 'ENOENT') throw new Error(OPENSSL_HINT);
    throw new Error(`openssl ${args.join(' ')} failed: ${e.stderr?.toString() ?? String(err)}`);
  }
}

export interface CertFiles {
  certFile: string;
  keyFile: string;
  /** PEM contents. */
  cert: string;
  key: string;
}

export class TestCa {
  readonly dir: string;
  readonly name: string;
  readonly certFile: string;
  readonly keyFile: string;
  #serial = 1;

  private constructor(dir: string, name: string) {
    this.dir = dir;
    this.name = name;
    this.certFile = join(dir, 'ca.crt');
    this.keyFile = join(dir, 'ca.key');
  }

  /** A new self-signed CA in its own temp folder. */
  static create(name = 'Handoff Test CA'): TestCa {
    const dir = mkdtempSync(join(tmpdir(), 'handoff-certs-'));
    const ca = new TestCa(dir, name);
    openssl(
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-keyout',
        'ca.key',
        '-out',
        'ca.crt',
        '-days',
        '2',
        '-subj',
        `/CN=${name}`,
        '-addext',
        'basicConstraints=critical,CA:TRUE',
        '-addext',
        'keyUsage=critical,keyCertSign,cRLSign',
      ],
      dir,
    );
    return ca;
  }

  /** The CA certificate, PEM. */
  get cert(): string {
    return readFileSync(this.certFile, 'utf8');
  }

  #issue(base: string, cn: string, ext: string[], days: number): CertFiles {
    const n = this.#serial++;
    const keyFile = join(this.dir, `${base}.key`);
    const certFile = join(this.dir, `${base}.crt`);
    const extFile = join(this.dir, `${base}.ext`);
    writeFileSync(extFile, `${ext.join('\n')}\n`);
    openssl(
      [
        'req',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-keyout',
        keyFile,
        '-out',
        `${base}.csr`,
        '-subj',
        `/CN=${cn}`,
      ],
      this.dir,
    );
    openssl(
      [
        'x509',
        '-req',
        '-in',
        `${base}.csr`,
        '-CA',
        this.certFile,
        '-CAkey',
        this.keyFile,
        '-set_serial',
        String(1000 + n),
        '-out',
        certFile,
        '-days',
        String(days),
        '-extfile',
        extFile,
      ],
      this.dir,
    );
    return { certFile, keyFile, cert: readFileSync(certFile, 'utf8'), key: readFileSync(keyFile, 'utf8') };
  }

  /** A server certificate for these names (DNS names and IP addresses). */
  server(names: string[] = ['localhost', '127.0.0.1', '::1'], base = `server-${this.#serial}`): CertFiles {
    const san = names.map((h) => (/^[\d.]+$|:/.test(h) ? `IP:${h}` : `DNS:${h}`)).join(',');
    return this.#issue(
      base,
      names[0] ?? 'localhost',
      [
        `subjectAltName=${san}`,
        'basicConstraints=CA:FALSE',
        'keyUsage=critical,digitalSignature',
        'extendedKeyUsage=serverAuth',
      ],
      2,
    );
  }

  /** A client certificate (for servers that verify clients). */
  client(cn = 'handoff-node', base = `client-${this.#serial}`): CertFiles {
    return this.#issue(
      base,
      cn,
      ['basicConstraints=CA:FALSE', 'keyUsage=critical,digitalSignature', 'extendedKeyUsage=clientAuth'],
      2,
    );
  }

  /** Writes a file into the CA's folder (for test fixtures: a password file, a broken PEM...). */
  file(name: string, text: string): string {
    const path = join(this.dir, name);
    writeFileSync(path, text, { mode: 0o600 });
    return path;
  }

  dispose(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

type KeyPair = ReturnType<typeof nkeys.createOperator>;
const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');

/** A NATS JWT (v2): header and claims signed with the issuer's NKey (ed25519). */
function natsJwt(claims: Record<string, unknown>, issuer: KeyPair): string {
  const head = b64({ typ: 'JWT', alg: 'ed25519-nkey' });
  const body = b64({
    jti: `${Date.now().toString(36)}${Math.random().toString(36).slice(2)}`.toUpperCase(),
    iat: Math.floor(Date.now() / 1000),
    iss: issuer.getPublicKey(),
    ...claims,
  });
  const sig = Buffer.from(issuer.sign(new TextEncoder().encode(`${head}.${body}`))).toString('base64url');
  return `${head}.${body}.${sig}`;
}

/**
 * An operator with a system account and one application account, for `NatsServer.start({ operator })`;
 * `creds()` issues a user of the application account as a creds file's text (as `nsc generate creds` does).
 */
export function testOperator(): { operator: NatsServerOperator; creds: (name?: string) => string } {
  const op = nkeys.createOperator();
  const sys = nkeys.createAccount();
  const app = nkeys.createAccount();
  const limits = { subs: -1, data: -1, payload: -1, imports: -1, exports: -1, wildcards: true, conn: -1, leaf: -1 };
  const account = (kp: KeyPair, name: string) =>
    natsJwt(
      {
        sub: kp.getPublicKey(),
        name,
        nats: { limits, default_permissions: { pub: {}, sub: {} }, type: 'account', version: 2 },
      },
      op,
    );
  const operator: NatsServerOperator = {
    jwt: natsJwt(
      {
        sub: op.getPublicKey(),
        name: 'handoff-test',
        nats: { type: 'operator', version: 2, system_account: sys.getPublicKey() },
      },
      op,
    ),
    systemAccount: sys.getPublicKey(),
    accounts: { [sys.getPublicKey()]: account(sys, 'SYS'), [app.getPublicKey()]: account(app, 'HANDOFF') },
  };
  const creds = (name = 'handoff-node') => {
    const user = nkeys.createUser();
    const jwt = natsJwt(
      {
        sub: user.getPublicKey(),
        name,
        nats: { pub: {}, sub: {}, subs: -1, data: -1, payload: -1, type: 'user', version: 2 },
      },
      app,
    );
    const seed = new TextDecoder().decode(user.getSeed());
    return `-----BEGIN NATS USER JWT-----\n${jwt}\n------END NATS USER JWT------\n\n-----BEGIN USER NKEY SEED-----\n${seed}\n------END USER NKEY SEED------\n`;
  };
  return { operator, creds };
}

/**
 * Runs `f`, which must throw a `security.config_invalid` error, and returns the option it names.
 * Its message must not contain any of `secrets` (a bad setting never echoes key material).
 */
export function configErrorField(f: () => unknown, secrets: string[] = []): string {
  try {
    f();
  } catch (err) {
    expect(err).toBeInstanceOf(SecurityConfigError);
    expect((err as SecurityConfigError).code).toBe('security.config_invalid');
    for (const secret of secrets) expect((err as Error).message).not.toContain(secret);
    return (err as SecurityConfigError).field;
  }
  throw new Error('no error');
}
