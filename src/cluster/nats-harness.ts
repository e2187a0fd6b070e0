import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';

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

  private constructor(bin: string, port: number, storeDir: string, ownsDir: boolean, opts: NatsServerOptions) {
    this.#bin = bin;
    this.port = port;
    this.storeDir = storeDir;
    this.#ownsDir = ownsDir;
    this.#args = opts.args ?? [];
    this.#verbose = opts.verbose ?? false;
  }

  static async start(opts: NatsServerOptions = {}): Promise<NatsServer> {
    const bin = requireNatsServer();
    const port = opts.port ?? (await freePort());
    const ownsDir = !opts.storeDir;
    const dir = opts.storeDir ?? (await mkdtemp(join(tmpdir(), 'handoff-nats-')));
    const server = new NatsServer(bin, port, dir, ownsDir, opts);
    await server.#launch();
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
    const proc = spawn(this.#bin, ['-a', '127.0.0.1', '-p', String(this.port), '-js', '-sd', this.storeDir, ...this.#args], { stdio: ['ignore', 'pipe', 'pipe'] });
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
      if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`nats-server exited at start (code ${proc.exitCode}):\n${this.log}`);
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
  }
}
