/**
 * Shared helpers of the NATS tests: a nats-server per test file (a free loopback port, JetStream in
 * a temp dir; a missing binary fails with an install hint), cluster nodes as child processes
 * (`handoff start --nats --events`, with the reviewer console when `extra` includes `--port`), and reads of the cluster's leases.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { Kvm } from '@nats-io/kv';
import { NatsServer, findNatsServer, NATS_SERVER_INSTALL_HINT } from '../../src/cluster/nats-harness.ts';
import { leasesBucket } from '../../src/cluster/leases.ts';
import { untok } from '../../src/cluster/keys.ts';

export const CLI = join(import.meta.dirname, '..', '..', 'bin', 'handoff.js');

/** Starts a nats-server with JetStream; fails (not skips) with an install hint when it is missing. */
export async function startServer(): Promise<NatsServer> {
  if (!findNatsServer()) throw new Error(NATS_SERVER_INSTALL_HINT);
  return NatsServer.start();
}

let nsSeq = 0;
/** A fresh namespace per test, so tests sharing a server never see each other's streams. */
export function freshNamespace(prefix: string): string {
  return `${prefix}${Date.now().toString(36)}${++nsSeq}`;
}

export interface NodeEventLine {
  event: string;
  node: string;
  at?: number;
  group?: string;
  from?: string | null;
  member?: string;
  alive?: boolean;
  active?: number;
  ms?: number;
  [k: string]: unknown;
}

/** A cluster node running as a child process (`handoff start --nats --events`, with the reviewer console when `extra` includes `--port`). */
export class NodeProcess {
  readonly name: string;
  readonly proc: ChildProcess;
  readonly events: NodeEventLine[] = [];
  stderr = '';
  member: string | undefined;
  /** The reviewer console's URL, when the node serves it (`extra` includes `--port`). */
  url: string | null = null;
  exitedAt: number | undefined;
  exitSignal: NodeJS.Signals | null = null;
  readonly ready: Promise<string>;
  readonly exited: Promise<void>;

  constructor(url: string, name: string, namespace: string, extra: string[] = [], env: Record<string, string> = {}) {
    this.name = name;
    this.proc = spawn(
      process.execPath,
      [
        CLI,
        'start',
        '--nats',
        url,
        '--node',
        name,
        '--namespace',
        namespace,
        ...(extra.includes('--port') ? [] : ['--no-console']),
        '--events',
        '--model',
        'models/refunds',
        ...extra,
      ],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, NO_COLOR: '1', HANDOFF_LOG_LEVEL: process.env.HANDOFF_LOG_LEVEL ?? 'error', ...env },
      },
    );
    let buf = '';
    let resolveReady!: (m: string) => void;
    let rejectReady!: (e: Error) => void;
    this.ready = new Promise((res, rej) => {
      resolveReady = res;
      rejectReady = rej;
    });
    this.proc.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        try {
          const e = JSON.parse(line) as NodeEventLine;
          this.events.push(e);
          if (e.event === 'ready') {
            this.member = e.member as string;
            this.url = (e.url as string | null) ?? null;
            resolveReady(this.member);
          }
        } catch {
          // not an event line
        }
      }
    });
    this.proc.stderr!.on('data', (d: Buffer) => {
      this.stderr += d.toString();
      if (this.stderr.length > 200_000) this.stderr = this.stderr.slice(-100_000);
    });
    this.exited = new Promise((resolve) =>
      this.proc.on('exit', (_code, signal) => {
        this.exitedAt = Date.now();
        this.exitSignal = signal;
        rejectReady(new Error(`node ${name} exited before it was ready:\n${this.stderr.slice(-3000)}`));
        resolve();
      }),
    );
  }

  get running(): boolean {
    return this.exitedAt === undefined;
  }

  /** SIGKILL: the process dies on the spot. */
  async kill(): Promise<void> {
    if (this.running) this.proc.kill('SIGKILL');
    await this.exited;
  }

  /** SIGTERM: a graceful leave. */
  async stop(): Promise<void> {
    if (this.running) this.proc.kill('SIGTERM');
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), 20_000);
    await this.exited;
    clearTimeout(timer);
  }
}

/** The current holder (member id) of every lease of a namespace. */
export async function leaseHolders(nc: NatsConnection, namespace: string): Promise<Map<string, string>> {
  const kv = await new Kvm(nc).open(leasesBucket(namespace));
  const out = new Map<string, string>();
  const keys = await kv.keys();
  const names: string[] = [];
  for await (const k of keys) names.push(k);
  await Promise.all(
    names.map(async (k) => {
      const e = await kv.get(k);
      if (e && e.operation === 'PUT') out.set(untok(k), e.json<{ member: string }>().member);
    }),
  );
  return out;
}

export async function natsConnect(url: string): Promise<NatsConnection> {
  return connect({ servers: url, maxReconnectAttempts: -1, reconnectTimeWait: 250 });
}

/** Polls `cond` every 50 ms until it holds; fails naming `what` after `timeoutMs`. */
export async function until(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!(await cond())) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
