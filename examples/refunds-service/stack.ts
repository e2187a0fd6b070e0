/**
 * Starting the example's parts as separate processes, as a team would run them: `handoff accounts
 * create` for the producer's key, and `handoff start` on the example model with the refunds
 * service's address and token in its environment. Used by `npm run example` (run.ts) and by the
 * exactly-once test (test/e2e/example-exactly-once.test.ts).
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';

const ROOT = join(import.meta.dirname, '..', '..');
export const CLI = join(ROOT, 'bin', 'handoff.js');
export const MODEL_DIR = join(import.meta.dirname, 'model');
export const MODEL = 'shop-refunds';

/** A free TCP port on the loopback interface (kept across restarts of `handoff start`). */
export async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', () => resolve()));
  const port = (srv.address() as { port: number }).port;
  await new Promise((resolve) => srv.close(resolve));
  return port;
}

/** `handoff accounts create` on the data folder (before `handoff start` opens it): the new key. */
export async function createAccount(data: string, name = 'helpdesk-producer'): Promise<{ id: string; key: string }> {
  const args = [
    CLI,
    'accounts',
    'create',
    '--data',
    data,
    '--name',
    name,
    '--scope',
    `${MODEL}:signals:submit`,
    '--scope',
    `${MODEL}:episodes:read`,
    '--json',
  ];
  const { stdout } = await promisify(execFile)(process.execPath, args, { cwd: ROOT });
  const out = JSON.parse(stdout) as { id: string; key: string };
  return { id: out.id, key: out.key };
}

export interface HandoffProcess {
  child: ChildProcess;
  url: string;
  /** Resolves with the exit code (or signal) once the process has ended. */
  exited: Promise<number | string | null>;
}

/**
 * `handoff start` on the example model, listening on `port`, with the service's address and token
 * in its environment (model.json reads them as `${env:REFUNDS_SERVICE_URL}` and
 * `${env:REFUNDS_SERVICE_TOKEN}`). Resolves once it listens.
 */
export async function startHandoff(opts: {
  data: string;
  port: number;
  serviceUrl: string;
  serviceToken: string;
  stderr?: (line: string) => void;
}): Promise<HandoffProcess> {
  const args = [CLI, 'start', '--data', opts.data, '--model', MODEL_DIR, '--port', String(opts.port), '--json'];
  const child = spawn(process.execPath, args, {
    cwd: ROOT,
    env: { ...process.env, REFUNDS_SERVICE_URL: opts.serviceUrl, REFUNDS_SERVICE_TOKEN: opts.serviceToken },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<number | string | null>((resolve) =>
    child.once('exit', (code, signal) => resolve(code ?? signal)),
  );
  const errLines: string[] = [];
  createInterface({ input: child.stderr! }).on('line', (l) => {
    errLines.push(l);
    if (errLines.length > 50) errLines.shift();
    opts.stderr?.(l);
  });
  const url = await new Promise<string>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    lines.on('line', (l) => {
      try {
        const j = JSON.parse(l) as { url?: string };
        if (j.url) resolve(j.url);
      } catch {
        // not the JSON line
      }
    });
    void exited.then((code) =>
      reject(new Error(`handoff start exited (${code}) before listening:\n${errLines.join('\n')}`)),
    );
  });
  return { child, url, exited };
}
