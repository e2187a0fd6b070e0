/**
 * Encryption in transit for the reviewer console: the gateway serves HTTPS and WSS with a
 * certificate from a test CA (openssl, ./certs.ts); a real HTTPS client that trusts the CA signs in
 * and loads the console with its assets, cookies are Secure, HSTS is sent; a WSS client gets the live
 * feed; a plain-HTTP client to the TLS port gets nothing; plain HTTP on a non-loopback address is
 * refused with a typed error unless explicitly allowed (then a warning is logged); the CLI wires the
 * options and environment and exits non-zero on the refusal; bad certificate settings name the option.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { embeddedBackend } from '../../src/gateway/backend.ts';
import { startConsole, type RunningConsole } from '../../src/app/embedded-console.ts';
import { Gateway } from '../../src/gateway/server.ts';
import { PlaintextListenRefusedError } from '../../src/security/tls-errors.ts';
import {
  checkListenAddress,
  gatewaySecurityFromOptions,
  isLoopbackAddress,
  loadGatewayTls,
} from '../../src/security/tls-options.ts';
import { TestCa, configErrorField, type CertFiles } from './certs.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const CLI = join(ROOT, 'bin', 'handoff.js');

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

/** One request with node:https (or node:http for `http:` URLs), trusting `ca`. */
function fetchTls(
  url: string,
  opts: { ca?: string; method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const send = u.protocol === 'https:' ? httpsRequest : httpRequest;
    const req = send(
      u,
      { method: opts.method ?? 'GET', headers: opts.headers ?? {}, ...(opts.ca ? { ca: opts.ca } : {}) },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text }));
        res.on('error', reject);
      },
    );
    req.setTimeout(10_000, () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end(opts.body);
  });
}

let ca: TestCa;
let cert: CertFiles;
let running: RunningConsole;
let data: string;
const dirs: string[] = [];

beforeAll(async () => {
  ca = TestCa.create();
  cert = ca.server();
  data = await mkdtemp(join(tmpdir(), 'handoff-tls-gw-'));
  dirs.push(data);
  const security = gatewaySecurityFromOptions({ tlsCert: cert.certFile, tlsKey: cert.keyFile }, {});
  running = await startConsole({ data, models: [join(ROOT, 'models/refunds')], port: 0, ...security });
}, 60_000);

afterAll(async () => {
  await running?.close();
  for (const d of dirs) await rm(d, { recursive: true, force: true });
  ca?.dispose();
});

async function signIn(
  id = 'r-sofia',
  password = 'demo-sofia',
): Promise<{ cookie: string; setCookie: string; csrf: string }> {
  const res = await fetchTls(`${running.url}/api/login`, {
    ca: ca.cert,
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Origin: running.url },
    body: JSON.stringify({ id, password }),
  });
  expect(res.status, res.text).toBe(200);
  const setCookie = ([] as string[]).concat(res.headers['set-cookie'] ?? [])[0]!;
  return {
    cookie: setCookie.split(';')[0]!,
    setCookie,
    csrf: (JSON.parse(res.text) as { csrfToken: string }).csrfToken,
  };
}

describe('gateway over HTTPS and WSS', () => {
  it('serves the login page, signs in and loads the console with its assets over HTTPS; cookies are Secure; HSTS on every response', async () => {
    expect(running.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const login = await fetchTls(`${running.url}/login`, { ca: ca.cert });
    expect(login.status).toBe(200);
    expect(login.text).toContain('/assets/login.js');
    expect(login.headers['strict-transport-security']).toBe('max-age=31536000');
    const s = await signIn();
    expect(s.setCookie).toMatch(/; Secure/);
    expect(s.setCookie).toMatch(/HttpOnly/);
    const page = await fetchTls(`${running.url}/`, { ca: ca.cert, headers: { Cookie: s.cookie } });
    expect(page.status).toBe(200);
    expect(page.headers['strict-transport-security']).toBe('max-age=31536000');
    const assets = [...page.text.matchAll(/(?:src|href)="(\/[^"#]+)"/g)].map((m) => m[1]!);
    expect(assets).toContain('/assets/app.js');
    for (const a of assets) {
      const r = await fetchTls(`${running.url}${a}`, { ca: ca.cert });
      expect(r.status, a).toBe(200);
    }
    const session = await fetchTls(`${running.url}/api/session`, { ca: ca.cert, headers: { Cookie: s.cookie } });
    expect(JSON.parse(session.text).reviewer.id).toBe('r-sofia');
  });

  it('a WSS connection with the session gets the live feed; an http:// Origin is not this TLS origin', async () => {
    const s = await signIn();
    const wsUrl = `${running.url.replace(/^https/, 'wss')}/ws`;
    const hello = await new Promise<{ type: string; reviewer: string }>((resolve, reject) => {
      const ws = new WebSocket(wsUrl, { ca: ca.cert, headers: { Cookie: s.cookie, Origin: running.url } });
      ws.once('message', (d) => {
        resolve(JSON.parse(d.toString()) as { type: string; reviewer: string });
        ws.close();
      });
      ws.once('error', reject);
    });
    expect(hello).toMatchObject({ type: 'hello', reviewer: 'r-sofia' });
    const status = await new Promise<number>((resolve, reject) => {
      const ws = new WebSocket(wsUrl, {
        ca: ca.cert,
        headers: { Cookie: s.cookie, Origin: running.url.replace(/^https/, 'http') },
      });
      ws.once('unexpected-response', (_req, res) => {
        resolve(res.statusCode ?? 0);
        ws.terminate();
      });
      ws.once('open', () => reject(new Error('opened with an http:// Origin')));
      ws.once('error', () => undefined);
    });
    expect(status).toBe(403);
  });

  it('a plain-HTTP client to the TLS port gets no answer; a client that does not trust the CA is refused', async () => {
    const port = new URL(running.url).port;
    const plain = await fetchTls(`http://127.0.0.1:${port}/healthz`).then(
      (r) => r,
      (e: unknown) => e as NodeJS.ErrnoException,
    );
    expect(plain).toBeInstanceOf(Error);
    const untrusted = await fetchTls(`${running.url}/healthz`).then(
      (r) => r,
      (e: unknown) => e as NodeJS.ErrnoException,
    );
    expect(untrusted).toBeInstanceOf(Error);
    expect((untrusted as NodeJS.ErrnoException).code).toMatch(
      /UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_GET_ISSUER_CERT/,
    );
    expect((await fetchTls(`${running.url}/healthz`, { ca: ca.cert })).status).toBe(200);
  });
});

describe('plain HTTP off loopback is refused unless allowed', () => {
  it('binding 0.0.0.0 or :: without TLS throws gateway.plaintext_refused; loopback addresses and localhost are fine', async () => {
    const backend = embeddedBackend(running.runtime);
    for (const host of ['0.0.0.0', '::', '']) {
      const err = await Gateway.start({ backend, host, port: 0 }).then(
        async (gw) => {
          await gw.close();
          return null;
        },
        (e: unknown) => e,
      );
      expect(err, host).toBeInstanceOf(PlaintextListenRefusedError);
      expect((err as PlaintextListenRefusedError).code).toBe('gateway.plaintext_refused');
      expect((err as Error).message).toMatch(/--tls-cert/);
    }
    expect(await checkListenAddress('127.0.0.2', { tls: null, allowPlaintext: false })).toBe('loopback');
    expect(await checkListenAddress('::1', { tls: null, allowPlaintext: false })).toBe('loopback');
    expect(await checkListenAddress('localhost', { tls: null, allowPlaintext: false })).toBe('loopback');
    expect(
      await checkListenAddress('0.0.0.0', { tls: loadGatewayTls(cert.certFile, cert.keyFile), allowPlaintext: false }),
    ).toBe('tls');
    expect(isLoopbackAddress('::ffff:127.0.0.1')).toBe(true);
    expect(isLoopbackAddress('10.0.0.1')).toBe(false);
  });

  it('with allowPlaintext it starts on 0.0.0.0, logs a warning, and sends neither HSTS nor Secure cookies', async () => {
    let logged = '';
    const log = pino(
      { level: 'warn' },
      new Writable({ write: (c: Buffer, _e, cb) => ((logged += c.toString()), cb()) }),
    );
    const gw = await Gateway.start({
      backend: embeddedBackend(running.runtime),
      host: '0.0.0.0',
      port: 0,
      allowPlaintext: true,
      log,
    });
    try {
      expect(gw.url).toMatch(/^http:\/\/0\.0\.0\.0:\d+$/);
      expect(logged).toMatch(/plain HTTP on 0\.0\.0\.0/);
      expect(JSON.parse(logged).level).toBe(40);
      const port = new URL(gw.url).port;
      const health = await fetchTls(`http://127.0.0.1:${port}/healthz`);
      expect(health.status).toBe(200);
      expect(health.headers['strict-transport-security']).toBeUndefined();
      const login = await fetchTls(`http://127.0.0.1:${port}/api/login`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ id: 'r-sofia', password: 'demo-sofia' }),
      });
      expect(login.status).toBe(200);
      expect(String(login.headers['set-cookie'])).not.toMatch(/Secure/);
    } finally {
      await gw.close();
    }
  });
});

describe('TLS settings from options and environment', () => {
  it('bad settings are typed errors naming the option', () => {
    const other = ca.server(['localhost'], 'other');
    const field = (f: () => unknown): string => configErrorField(f, ['PRIVATE KEY']);
    expect(field(() => gatewaySecurityFromOptions({ tlsCert: cert.certFile }, {}))).toBe('--tls-key');
    expect(field(() => gatewaySecurityFromOptions({}, { HANDOFF_TLS_KEY: cert.keyFile }))).toBe('--tls-cert');
    expect(
      field(() => gatewaySecurityFromOptions({ tlsCert: '/nonexistent/cert.pem', tlsKey: cert.keyFile }, {})),
    ).toBe('--tls-cert');
    expect(
      field(() => gatewaySecurityFromOptions({ tlsCert: ca.file('junk.pem', 'hello'), tlsKey: cert.keyFile }, {})),
    ).toBe('--tls-cert');
    expect(
      field(() =>
        gatewaySecurityFromOptions(
          {
            tlsCert: cert.certFile,
            tlsKey: ca.file('junk.key', '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n'),
          },
          {},
        ),
      ),
    ).toBe('--tls-key');
    expect(field(() => gatewaySecurityFromOptions({ tlsCert: cert.certFile, tlsKey: other.keyFile }, {}))).toBe(
      '--tls-key',
    );
    expect(field(() => gatewaySecurityFromOptions({}, { HANDOFF_INSECURE_ALLOW_PLAINTEXT: 'perhaps' }))).toBe(
      '--insecure-allow-plaintext',
    );
    const fromEnv = gatewaySecurityFromOptions(
      {},
      { HANDOFF_TLS_CERT: cert.certFile, HANDOFF_TLS_KEY: cert.keyFile, HANDOFF_INSECURE_ALLOW_PLAINTEXT: '0' },
    );
    expect(fromEnv.tls?.certFile).toBe(cert.certFile);
    expect(fromEnv.allowPlaintext).toBe(false);
    expect(gatewaySecurityFromOptions({ insecureAllowPlaintext: true }, {})).toEqual({
      tls: null,
      allowPlaintext: true,
    });
  });
});

describe('handoff start', () => {
  interface Started {
    child: ChildProcess;
    out: Promise<{ code: number | null; stdout: string; stderr: string }>;
    line: Promise<string>;
  }
  const start = async (args: string[], env: Record<string, string> = {}): Promise<Started> => {
    const dir = await mkdtemp(join(tmpdir(), 'handoff-tls-cli-'));
    dirs.push(dir);
    const child = spawn(
      process.execPath,
      [CLI, 'start', '--port', '0', '--data', dir, '--model', join(ROOT, 'models/refunds'), '--json', ...args],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, NO_COLOR: '1', ...env },
      },
    );
    let stdout = '';
    let stderr = '';
    let gotLine: (s: string) => void = () => undefined;
    const line = new Promise<string>((r) => (gotLine = r));
    child.stdout!.on('data', (d: Buffer) => {
      stdout += d.toString();
      if (stdout.includes('\n')) gotLine(stdout.split('\n')[0]!);
    });
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const out = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) =>
      child.on('close', (code) => (gotLine(''), resolve({ code, stdout, stderr }))),
    );
    return { child, out, line };
  };

  it('refuses --host 0.0.0.0 without TLS: exit code 2, the typed error in --json and a clear message', async () => {
    const r = await (await start(['--host', '0.0.0.0'])).out;
    expect(r.code).toBe(2);
    expect(JSON.parse(r.stdout).error.code).toBe('gateway.plaintext_refused');
    expect(r.stderr).toMatch(/refusing to serve the console in plain HTTP on 0\.0\.0\.0/);
  });

  it('serves HTTPS with the certificate from HANDOFF_TLS_CERT / HANDOFF_TLS_KEY, on 0.0.0.0 too', async () => {
    const s = await start(['--host', '0.0.0.0'], { HANDOFF_TLS_CERT: cert.certFile, HANDOFF_TLS_KEY: cert.keyFile });
    try {
      const line = await s.line;
      const { url } = JSON.parse(line) as { url: string };
      expect(url).toMatch(/^https:\/\//);
      const port = new URL(url).port;
      const health = await fetchTls(`https://127.0.0.1:${port}/healthz`, { ca: ca.cert });
      expect(health.status).toBe(200);
      expect(health.headers['strict-transport-security']).toBeDefined();
    } finally {
      s.child.kill('SIGTERM');
      await s.out;
    }
  });

  it('--insecure-allow-plaintext starts on 0.0.0.0 and warns on stderr', async () => {
    const s = await start(['--host', '0.0.0.0', '--insecure-allow-plaintext']);
    try {
      const { url } = JSON.parse(await s.line) as { url: string };
      expect(url).toMatch(/^http:\/\/0\.0\.0\.0:/);
    } finally {
      s.child.kill('SIGTERM');
    }
    const r = await s.out;
    expect(r.stderr).toMatch(/plain HTTP on 0\.0\.0\.0/);
  });

  it('a certificate without its key stops the start with exit code 2 naming --tls-key', async () => {
    const r = await (await start(['--tls-cert', cert.certFile])).out;
    expect(r.code).toBe(2);
    expect(JSON.parse(r.stdout).error.details.field).toBe('--tls-key');
  });
});
