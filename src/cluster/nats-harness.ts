import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join, resolve } from 'node:path';

export const NATS_SERVER_INSTALL_HINT =
  'nats-server is not installed. Install it (Debian/Ubuntu: `apt-get install nats-server`; elsewhere: ' +
  'https://github.com/nats-io/nats-server/releases), or point NATS_SERVER at the binary. `.ci/run` installs it.';

/** The nats-server binary: `$NATS_SERVER`, else `nats-server` on the PATH (or /usr/sbin). */
export function findNatsServer(): string | undefined {
  const env = process.env.NATS_SERVER;
  if (env) return existsSync(env) ? env : undefined;
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/usr/local/sbin', '/usr/local/bin'];
  for (const d of dirs) {
    if (!d) continue;
    const p = join(d, 'nats-server');
    if (existsSync(p)) return p;
  }
  return undefined;
}

/** Throws with an install hint when nats-server is missing. */
export function requireNatsServer(): string {
  const bin = findNatsServer();
  if (!bin) throw new Error(NATS_SERVER_INSTALL_HINT);
  return bin;
}

/** The installed server's version, e.g. `2.9.10`. */
export function natsServerVersion(bin = requireNatsServer()): string {
  const out = spawnSync(bin, ['--version'], { encoding: 'utf8' });
  return /v?(\d+\.\d+\.\d+)/.exec(`${out.stdout}${out.stderr}`)?.[1] ?? 'unknown';
}

/** A free TCP port on the loopback interface. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = tcpConnect({ port, host: '127.0.0.1' });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

export interface NatsServerOptions {
  /** Port; a free one by default. */
  port?: number;
  /** JetStream store directory; a new temp dir by default (removed by `dispose`). */
  storeDir?: string;
  /** Extra command-line arguments. */
  args?: string[];
  /** Print the server's output (for debugging). */
  verbose?: boolean;
  /** Serve TLS only (`tls { ... }` in a generated config file): plain-text clients are refused. */
  tls?: NatsServerTls;
  /** Require credentials (`authorization { ... }` in a generated config file). */
  authorization?: NatsServerAuthorization;
  /** Operator mode (JWT creds): the operator's JWT and the accounts' JWTs by public key, preloaded in a memory resolver. */
  operator?: NatsServerOperator;
}

/** Decentralised auth: clients connect with creds files of users signed by these accounts. */
export interface NatsServerOperator {
  jwt: string;
  /** Public key of the system account (JetStream needs one); its JWT must be in `accounts`. */
  systemAccount: string;
  accounts: Record<string, string>;
}

/** The server's TLS: PEM files; with `verify`, clients must present a certificate signed by `caFile`. */
export interface NatsServerTls {
  certFile: string;
  keyFile: string;
  caFile?: string;
  /** Require and verify client certificates (needs `caFile`). @default false */
  verify?: boolean;
}

/** Who may connect: one user and password, a token, or several users (password or NKey public key). */
export type NatsServerAuthorization =
  | { user: string; password: string }
  | { token: string }
  | { users: ({ user: string; password: string } | { nkey: string })[] };

/** The nats-server configuration file for `tls`, `authorization` and `operator` (strings quoted as JSON, which the format accepts). */
export function natsServerConfig(opts: Pick<NatsServerOptions, 'tls' | 'authorization' | 'operator'>): string {
  const q = (v: string) => JSON.stringify(v);
  const lines: string[] = [];
  if (opts.tls) {
    const t = opts.tls;
    if (t.verify && !t.caFile) throw new Error('NatsServer: tls.verify needs tls.caFile');
    lines.push('tls {', `  cert_file: ${q(resolve(t.certFile))}`, `  key_file: ${q(resolve(t.keyFile))}`);
    if (t.caFile) lines.push(`  ca_file: ${q(resolve(t.caFile))}`);
    if (t.verify) lines.push('  verify: true');
    // The default half second is short for a loaded 2-core machine.
    lines.push('  timeout: 5', '}');
  }
  const a = opts.authorization;
  if (a) {
    lines.push('authorization {');
    if ('token' in a) lines.push(`  token: ${q(a.token)}`);
    else if ('users' in a) {
      lines.push('  users: [');
      for (const u of a.users)
        lines.push(
          'nkey' in u ? `    { nkey: ${q(u.nkey)} }` : `    { user: ${q(u.user)}, password: ${q(u.password)} }`,
        );
      lines.push('  ]');
    } else lines.push(`  user: ${q(a.user)}`, `  password: ${q(a.password)}`);
    lines.push('}');
  }
  const op = opts.operator;
  if (op) {
    lines.push(
      `operator: ${q(op.jwt)}`,
      `system_account: ${q(op.systemAccount)}`,
      'resolver: MEMORY',
      'resolver_preload: {',
    );
    for (const [pub, jwt] of Object.entries(op.accounts)) lines.push(`  ${q(pub)}: ${q(jwt)}`);
    lines.push('}');
  }
  return `${lines.join('\n')}\n`;
}

/**
 * A nats-server process with JetStream on a loopback port, for tests, benchmarks and local
 * clusters. `stop()` ends it gracefully, `kill()` with SIGKILL, `restart()` starts it again on the
 * same port and store directory (so streams and KV buckets survive), `dispose()` stops it and
 * removes the store directory if the harness created it.
 */
export class NatsServer {
  readonly port: number;
  readonly storeDir: string;
  #bin: string;
  #args: string[];
  #proc: ChildProcess | undefined;
  #ownsDir: boolean;
  #verbose: boolean;
  #log: string[] = [];
  #confDir: string | undefined;
  /** The generated configuration file (with `tls` or `authorization`), if any. */
  configFile: string | undefined;
  /** Whether the server requires TLS. */
  readonly tls: boolean;

  private constructor(bin: string, port: number, storeDir: string, ownsDir: boolean, opts: NatsServerOptions) {
    this.#bin = bin;
    this.port = port;
    this.storeDir = storeDir;
    this.#ownsDir = ownsDir;
    this.#args = opts.args ?? [];
    this.#verbose = opts.verbose ?? false;
    this.tls = !!opts.tls;
  }

  static async start(opts: NatsServerOptions = {}): Promise<NatsServer> {
    const bin = requireNatsServer();
    const port = opts.port ?? (await freePort());
    const ownsDir = !opts.storeDir;
    const dir = opts.storeDir ?? (await mkdtemp(join(tmpdir(), 'handoff-nats-')));
    const server = new NatsServer(bin, port, dir, ownsDir, opts);
    if (opts.tls || opts.authorization || opts.operator) {
      const text = natsServerConfig(opts);
      server.#confDir = await mkdtemp(join(tmpdir(), 'handoff-nats-conf-'));
      server.configFile = join(server.#confDir, 'server.conf');
      await writeFile(server.configFile, text, { mode: 0o600 });
      server.#args = ['-c', server.configFile, ...server.#args];
    }
    try {
      await server.#launch();
    } catch (err) {
      if (server.#confDir) await rm(server.#confDir, { recursive: true, force: true });
      throw err;
    }
    return server;
  }

  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  get pid(): number | undefined {
    return this.#proc?.pid;
  }

  get running(): boolean {
    return !!this.#proc && this.#proc.exitCode === null && this.#proc.signalCode === null;
  }

  /** The last lines the server printed. */
  get log(): string {
    return this.#log.join('');
  }

  async #launch(): Promise<void> {
    const proc = spawn(
      this.#bin,
      ['-a', '127.0.0.1', '-p', String(this.port), '-js', '-sd', this.storeDir, ...this.#args],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    this.#proc = proc;
    const keep = (b: Buffer) => {
      this.#log.push(b.toString());
      if (this.#log.length > 200) this.#log.splice(0, this.#log.length - 200);
      if (this.#verbose) process.stderr.write(`[nats-server] ${b.toString()}`);
    };
    proc.stdout?.on('data', keep);
    proc.stderr?.on('data', keep);
    const deadline = Date.now() + 15_000;
    while (Date.now() < deadline) {
      if (proc.exitCode !== null || proc.signalCode !== null)
        throw new Error(`nats-server exited at start (code ${proc.exitCode}):\n${this.log}`);
      if (this.log.includes('Server is ready') && (await canConnect(this.port))) return;
      await new Promise((r) => setTimeout(r, 25));
    }
    proc.kill('SIGKILL');
    throw new Error(`nats-server did not become ready on port ${this.port}:\n${this.log}`);
  }

  async #exit(signal: NodeJS.Signals): Promise<void> {
    const proc = this.#proc;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
    proc.kill(signal);
    const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }

  /** Graceful stop (SIGTERM; the server flushes its stores). */
  stop(): Promise<void> {
    return this.#exit('SIGTERM');
  }

  /** Abrupt stop, like a crash. */
  kill(): Promise<void> {
    return this.#exit('SIGKILL');
  }

  /** Stops (gracefully unless `hard`) and starts again on the same port and store directory. */
  async restart(opts: { hard?: boolean; downMs?: number } = {}): Promise<void> {
    await (opts.hard ? this.kill() : this.stop());
    if (opts.downMs) await new Promise((r) => setTimeout(r, opts.downMs));
    this.#log = [];
    await this.#launch();
  }

  async dispose(): Promise<void> {
    await this.stop();
    if (this.#ownsDir) await rm(this.storeDir, { recursive: true, force: true });
    if (this.#confDir) await rm(this.#confDir, { recursive: true, force: true });
  }
}
