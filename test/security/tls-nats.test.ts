/**
 * Encryption in transit towards NATS, against real nats-servers started by the harness with TLS and
 * credentials (certificates made by openssl through ./certs.ts): our transport connects with TLS and
 * a password, a token, an NKey or a client certificate, and request/reply works; the server reports
 * the connection encrypted; plain-text clients, untrusted certificates and wrong credentials are
 * refused with typed errors, fast; settings are parsed from options and environment with errors that
 * name the field; secrets stay out of errors and logs.
 */
import { spawn } from 'node:child_process';
import { connect as tcpConnect } from 'node:net';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { nkeys } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HandoffError } from '../../src/contracts/errors.ts';
import {
  NatsServer,
  findNatsServer,
  freePort,
  NATS_SERVER_INSTALL_HINT,
  type NatsServerOptions,
} from '../../src/cluster/nats-harness.ts';
import { ClusterNode } from '../../src/cluster/node.ts';
import { loadModel } from '../../src/models/loader.ts';
import { createLogger } from '../../src/runtime/logger.ts';
import {
  describeNatsSecurity,
  natsSecurityFromOptions,
  redactServerUrl,
  type NatsSecurityOptions,
} from '../../src/security/nats-auth.ts';
import { NatsAuthError, NatsTlsError } from '../../src/security/tls-errors.ts';
import { NatsTransport } from '../../src/cluster/nats-transport.ts';
import { TestCa, configErrorField, testOperator, type CertFiles } from './certs.ts';

const CLI = join(import.meta.dirname, '..', '..', 'bin', 'handoff.js');
const PASSWORD = 'pw-Zq8vR3-correct-horse';

let ca: TestCa;
let otherCa: TestCa;
let serverCert: CertFiles;
const servers: NatsServer[] = [];
const open: NatsTransport[] = [];

async function server(
  opts: NatsServerOptions & { monitor?: boolean } = {},
): Promise<NatsServer & { monitorPort?: number }> {
  if (!findNatsServer()) throw new Error(NATS_SERVER_INSTALL_HINT);
  const monitorPort = opts.monitor ? await freePort() : undefined;
  const s = await NatsServer.start({
    ...opts,
    args: [...(opts.args ?? []), ...(monitorPort ? ['-m', String(monitorPort)] : [])],
  });
  servers.push(s);
  return Object.assign(s, { monitorPort });
}

async function transport(url: string, security?: NatsSecurityOptions, name?: string): Promise<NatsTransport> {
  const t = await NatsTransport.connect(url, { ...(security ? { security } : {}), ...(name ? { name } : {}) });
  open.push(t);
  return t;
}

/** Connects and expects a typed refusal, within a few seconds (no retry loop on a fatal error). */
async function refused(url: string, security: NatsSecurityOptions | undefined): Promise<HandoffError> {
  const t0 = Date.now();
  const err = await NatsTransport.connect(url, security ? { security } : {}).then(
    (t) => {
      open.push(t);
      return new Error('connected, but should have been refused');
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(HandoffError);
  expect(Date.now() - t0).toBeLessThan(5000);
  return err as HandoffError;
}

async function echo(server: NatsTransport, client: NatsTransport, subject: string): Promise<void> {
  server.serve(subject, (m) => ({ echoed: m.data }));
  await server.flush();
  expect(await client.request(subject, { n: 42 })).toEqual({ echoed: { n: 42 } });
}

beforeAll(() => {
  ca = TestCa.create();
  otherCa = TestCa.create('Some Other CA');
  serverCert = ca.server();
});

afterAll(async () => {
  for (const t of open) await t.close().catch(() => undefined);
  for (const s of servers) await s.dispose();
  ca?.dispose();
  otherCa?.dispose();
});

describe('NATS with TLS and a user/password', () => {
  let srv: NatsServer & { monitorPort?: number };
  const good = (): NatsSecurityOptions => ({
    tls: { caFile: ca.certFile },
    auth: { kind: 'user', user: 'handoff', pass: PASSWORD },
  });
  beforeAll(async () => {
    srv = await server({
      tls: { certFile: serverCert.certFile, keyFile: serverCert.keyFile },
      authorization: { user: 'handoff', password: PASSWORD },
      monitor: true,
    });
  });

  it('our transport connects with TLS and the password; request/reply works; the server sees TLS and the user', async () => {
    expect(srv.tls).toBe(true);
    const a = await transport(srv.url, good(), 'tls-a');
    const b = await transport(srv.url, good(), 'tls-b');
    await echo(b, a, 'sec.echo');
    const connz = (await (await fetch(`http://127.0.0.1:${srv.monitorPort}/connz?auth=true`)).json()) as {
      connections: { name?: string; tls_version?: string; authorized_user?: string }[];
    };
    const mine = connz.connections.filter((c) => c.name === 'tls-a' || c.name === 'tls-b');
    expect(mine).toHaveLength(2);
    for (const c of mine) {
      expect(c.tls_version).toMatch(/^1\.[23]$/);
      expect(c.authorized_user).toBe('handoff');
    }
  });

  it('a plain-text client is refused: the server requires TLS and never answers PING', async () => {
    const got = await new Promise<string>((resolve, reject) => {
      const s = tcpConnect({ host: '127.0.0.1', port: srv.port });
      let text = '';
      let sent = false;
      s.on('data', (d: Buffer) => {
        text += d.toString('latin1');
        if (!sent && text.includes('\r\n')) {
          sent = true;
          s.write(`CONNECT {"verbose":false,"pedantic":false,"user":"handoff","pass":"${PASSWORD}"}\r\nPING\r\n`);
        }
      });
      s.on('error', () => undefined);
      s.on('close', () => resolve(text));
      setTimeout(() => {
        s.destroy();
        reject(new Error(`the server kept a plain-text connection open: ${text}`));
      }, 10_000);
    });
    const info = JSON.parse(/^INFO (\{.*\})\s*\r\n/.exec(got)![1]!) as { tls_required?: boolean };
    expect(info.tls_required).toBe(true);
    expect(got).not.toContain('PONG');
  });

  it('a wrong password is refused with transport.auth_failed, at once, and the error holds no secret', async () => {
    const err = await refused(srv.url, {
      tls: { caFile: ca.certFile },
      auth: { kind: 'user', user: 'handoff', pass: 'wrong-password' },
    });
    expect(err).toBeInstanceOf(NatsAuthError);
    expect(err.code).toBe('transport.auth_failed');
    expect(err.message).toMatch(/authorization violation/i);
    expect(JSON.stringify({ m: err.message, d: err.details })).not.toContain('wrong-password');
    const none = await refused(srv.url, { tls: { caFile: ca.certFile } });
    expect(none.code).toBe('transport.auth_failed');
  });

  it('a server certificate from a CA we do not trust is refused with transport.tls_failed (system CAs, another CA)', async () => {
    const system = await refused(srv.url, { auth: { kind: 'user', user: 'handoff', pass: PASSWORD } });
    expect(system).toBeInstanceOf(NatsTlsError);
    expect(system.code).toBe('transport.tls_failed');
    expect(system.message).toMatch(/--nats-tls-ca/);
    const other = await refused(srv.url, {
      tls: { caFile: otherCa.certFile },
      auth: { kind: 'user', user: 'handoff', pass: PASSWORD },
    });
    expect(other.code).toBe('transport.tls_failed');
  });

  it('a server certificate that does not name the host is refused', async () => {
    const wrongName = ca.server(['nats.example.org']);
    const s = await server({ tls: { certFile: wrongName.certFile, keyFile: wrongName.keyFile } });
    const err = await refused(s.url, { tls: { caFile: ca.certFile } });
    expect(err.code).toBe('transport.tls_failed');
    expect(err.message).toMatch(/does not name the host/);
  });

  it('a cluster node connects both of its connections with the same settings', async () => {
    const model = await loadModel('models/refunds');
    const node = await ClusterNode.start({
      servers: srv.url,
      security: good(),
      node: 'sec-n1',
      namespace: `sec${Date.now().toString(36)}`,
      models: [model],
      logger: createLogger({ models: [], level: 'silent' }),
    });
    try {
      expect(node.transport.connected).toBe(true);
      expect(node.transport.nc.info?.tls_required).toBe(true);
    } finally {
      await node.stop();
    }
  });
});

describe('NATS requiring TLS from a server that has none', () => {
  it('is refused with transport.tls_failed rather than falling back to plain text', async () => {
    const plain = await server();
    const err = await refused(plain.url, { tls: { caFile: ca.certFile } });
    expect(err).toBeInstanceOf(NatsTlsError);
    expect(err.message).toMatch(/offers no TLS/);
  });
});

describe('NATS with a token, an NKey, a client certificate', () => {
  it('token: the right one works over TLS, a wrong one is refused', async () => {
    const s = await server({
      tls: { certFile: serverCert.certFile, keyFile: serverCert.keyFile },
      authorization: { token: 'tok-5f1c9e' },
    });
    const a = await transport(s.url, { tls: { caFile: ca.certFile }, auth: { kind: 'token', token: 'tok-5f1c9e' } });
    const b = await transport(s.url, { tls: { caFile: ca.certFile }, auth: { kind: 'token', token: 'tok-5f1c9e' } });
    await echo(b, a, 'sec.token');
    expect(
      (await refused(s.url, { tls: { caFile: ca.certFile }, auth: { kind: 'token', token: 'tok-wrong' } })).code,
    ).toBe('transport.auth_failed');
  });

  it('NKey: a seed file signs the server nonce; another seed is refused', async () => {
    const user = nkeys.createUser();
    const stranger = nkeys.createUser();
    const seedFile = ca.file('user.nk', `${new TextDecoder().decode(user.getSeed())}\n`);
    const strangerFile = ca.file('stranger.nk', new TextDecoder().decode(stranger.getSeed()));
    const s = await server({ authorization: { users: [{ nkey: user.getPublicKey() }] } });
    const a = await transport(s.url, { auth: { kind: 'nkey', seedFile } });
    const b = await transport(s.url, { auth: { kind: 'nkey', seedFile } });
    await echo(b, a, 'sec.nkey');
    expect((await refused(s.url, { auth: { kind: 'nkey', seedFile: strangerFile } })).code).toBe(
      'transport.auth_failed',
    );
  });

  it('client certificates: a server that verifies clients accepts ours and refuses a client without one', async () => {
    const client = ca.client();
    const s = await server({
      tls: { certFile: serverCert.certFile, keyFile: serverCert.keyFile, caFile: ca.certFile, verify: true },
    });
    const a = await transport(s.url, {
      tls: { caFile: ca.certFile, certFile: client.certFile, keyFile: client.keyFile },
    });
    const b = await transport(s.url, {
      tls: { caFile: ca.certFile, certFile: client.certFile, keyFile: client.keyFile },
    });
    await echo(b, a, 'sec.mtls');
    const err = await refused(s.url, { tls: { caFile: ca.certFile } });
    expect(err.code).toBe('transport.tls_failed');
  });
});

describe('NATS in operator mode', () => {
  it('JWT creds: a creds file of a user the account signed works, and is re-read at reconnect; one of a stranger is refused', async () => {
    const { operator, creds } = testOperator();
    const s = await server({ operator, monitor: true });
    const userOf = (text: string) =>
      nkeys.fromSeed(new TextEncoder().encode(/\n(SU\w+)\n/.exec(text)![1]!)).getPublicKey();
    const users = async () => {
      const connz = (await (await fetch(`http://127.0.0.1:${s.monitorPort}/connz?auth=true`)).json()) as {
        connections: { name?: string; authorized_user?: string }[];
      };
      return connz.connections.filter((c) => c.name === 'creds-a').map((c) => c.authorized_user);
    };
    const first = creds();
    const credsFile = ca.file('node.creds', first);
    const a = await transport(s.url, { auth: { kind: 'creds', credsFile } }, 'creds-a');
    const b = await transport(s.url, natsSecurityFromOptions({ natsCreds: credsFile }, {}));
    await echo(b, a, 'sec.creds');
    expect(await users()).toEqual([userOf(first)]);
    // Rotation: another user's creds in the same file are used from the next (re)connect on.
    const rotated = creds('rotated');
    ca.file('node.creds', rotated);
    await s.restart();
    for (let i = 0; i < 100 && !(a.stats.reconnects > 0 && b.stats.reconnects > 0); i++)
      await new Promise((r) => setTimeout(r, 50));
    await b.flush();
    expect(await a.request('sec.creds', { n: 43 }, { timeoutMs: 5000 })).toEqual({ echoed: { n: 43 } });
    expect(await users()).toEqual([userOf(rotated)]);
    const stranger = testOperator().creds();
    expect(
      (await refused(s.url, { auth: { kind: 'creds', credsFile: ca.file('stranger.creds', stranger) } })).code,
    ).toBe('transport.auth_failed');
  });
});

describe('NATS security settings from options and environment', () => {
  it('reads options, falls back to HANDOFF_NATS_* variables, and describes itself without secrets', () => {
    const passFile = ca.file('nats.pass', `${PASSWORD}\n`);
    const fromCli = natsSecurityFromOptions(
      { natsTlsCa: ca.certFile, natsUser: 'handoff', natsPassFile: passFile },
      {},
    );
    expect(fromCli).toEqual({ tls: { caFile: ca.certFile }, auth: { kind: 'user', user: 'handoff', pass: PASSWORD } });
    const fromEnv = natsSecurityFromOptions({}, { HANDOFF_NATS_TLS: '1', HANDOFF_NATS_TOKEN: 'tok-env' });
    expect(fromEnv).toEqual({ tls: {}, auth: { kind: 'token', token: 'tok-env' } });
    expect(natsSecurityFromOptions({}, {})).toEqual({});
    const described = JSON.stringify(describeNatsSecurity(fromCli));
    expect(described).toContain('user handoff');
    expect(described).not.toContain(PASSWORD);
    expect(redactServerUrl('nats://handoff:secret@10.0.0.5:4222')).toBe('nats://10.0.0.5:4222');
  });

  it('bad settings are typed errors naming the option', () => {
    const field = configErrorField;
    expect(field(() => natsSecurityFromOptions({ natsTlsCa: '/nonexistent/ca.pem' }, {}))).toBe('--nats-tls-ca');
    expect(field(() => natsSecurityFromOptions({ natsTlsCa: ca.file('junk.pem', 'not a certificate') }, {}))).toBe(
      '--nats-tls-ca',
    );
    expect(field(() => natsSecurityFromOptions({ natsTlsCert: serverCert.certFile }, {}))).toBe('--nats-tls-key');
    expect(field(() => natsSecurityFromOptions({ natsUser: 'handoff' }, {}))).toBe('--nats-pass-file');
    expect(field(() => natsSecurityFromOptions({}, { HANDOFF_NATS_PASS: 'x' }))).toBe('--nats-user');
    expect(
      field(() =>
        natsSecurityFromOptions({ natsUser: 'handoff' }, { HANDOFF_NATS_PASS: 'x', HANDOFF_NATS_TOKEN: 't' }),
      ),
    ).toBe('HANDOFF_NATS_TOKEN');
    expect(field(() => natsSecurityFromOptions({ natsNkey: ca.file('bad.nk', 'SUNOTASEED') }, {}))).toBe('--nats-nkey');
    expect(field(() => natsSecurityFromOptions({ natsCreds: ca.file('bad.creds', 'hello') }, {}))).toBe('--nats-creds');
    expect(field(() => natsSecurityFromOptions({}, { HANDOFF_NATS_TLS: 'maybe' }))).toBe('--nats-tls');
  });

  it('the logger censors passwords and tokens wherever the settings are logged', () => {
    let out = '';
    const destination = new Writable({ write: (c: Buffer, _e, cb) => ((out += c.toString()), cb()) });
    const log = createLogger({ models: [], level: 'info', destination: destination as never });
    log.info(
      {
        nats: { security: { auth: { kind: 'user', user: 'handoff', pass: PASSWORD } } },
        token: 'tok-top',
        opts: { token: 'tok-nested', tls: { key: '-----BEGIN PRIVATE KEY-----' } },
      },
      'connecting',
    );
    expect(out).toContain('handoff');
    expect(out).not.toContain(PASSWORD);
    expect(out).not.toContain('tok-top');
    expect(out).not.toContain('tok-nested');
    expect(out).not.toContain('BEGIN PRIVATE KEY');
  });

  it('the CLI wires the options: a missing CA file stops `handoff demo --nats` with exit code 2 naming the option', async () => {
    const run = await new Promise<{ code: number | null; stderr: string }>((resolve, reject) => {
      const child = spawn(
        process.execPath,
        [CLI, 'demo', '--nats', 'nats://127.0.0.1:1', '--nats-tls-ca', '/nonexistent/ca.pem', '--cases', '1', '--json'],
        { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } },
      );
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.on('error', reject);
      child.on('close', (code) => resolve({ code, stderr }));
    });
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('--nats-tls-ca');
  });
});
