import { spawn } from 'node:child_process';
import { join } from 'node:path';

const ROOT = join(import.meta.dirname, '..', '..');
const CLI = join(ROOT, 'bin', 'handoff.js');

export interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  /** SIGKILLs the command once that many episodes have finished (its progress lines on stderr). */
  killAfter?: number;
  /** SIGKILLs the command when its stderr first matches. */
  killOn?: RegExp;
  /** `HANDOFF_FAILPOINTS` for the command. */
  failpoints?: string;
  /** Variables added to (or, undefined, removed from) the test's environment. */
  env?: Record<string, string | undefined>;
  /** Written to the command's stdin, which is then closed. */
  input?: string;
}

/** Runs the `handoff` CLI from the repository root, with NO_COLOR. */
export function runCli(args: string[], opts: RunOptions = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      NO_COLOR: '1',
      ...(opts.failpoints ? { HANDOFF_FAILPOINTS: opts.failpoints } : {}),
    };
    for (const [k, v] of Object.entries(opts.env ?? {})) {
      if (v === undefined) delete env[k];
      else env[k] = v;
    }
    const child = spawn(process.execPath, [CLI, ...args], {
      cwd: ROOT,
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      env,
    });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => {
      stderr += d.toString();
      if (child.exitCode !== null) return;
      if (opts.killOn?.test(stderr)) child.kill('SIGKILL');
      if (opts.killAfter === undefined) return;
      const done = [...stderr.matchAll(/episodes (\d+)\//g)].map((m) => Number(m[1]));
      if (done.length && Math.max(...done) >= opts.killAfter) child.kill('SIGKILL');
    });
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
    if (opts.input !== undefined) child.stdin!.end(opts.input);
  });
}
