/**
 * Helpers of the fault campaign: CPU burners (busy child processes), the state of a process
 * (stopped or running, from /proc), polling on a condition instead of fixed sleeps, and the world's
 * ledger counted directly (not only through the run's summary).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { JetStreamWorld } from '../../src/cluster/world.ts';
import { JetStreamStore } from '../../src/cluster/jetstream-store.ts';
import { NatsTransport } from '../../src/cluster/nats-transport.ts';

/** As many busy processes as cores × 4 (the load), or `n`. Returns a stop function. */
export function startBurners(n = Math.max(1, cpus().length) * 4): { count: number; stop: () => Promise<void> } {
  const procs: ChildProcess[] = [];
  for (let i = 0; i < n; i++) procs.push(spawn(process.execPath, ['-e', 'for(;;){}'], { stdio: 'ignore' }));
  return {
    count: n,
    stop: async () => {
      await Promise.all(
        procs.map(
          (p) =>
            new Promise<void>((resolve) => {
              if (p.exitCode !== null || p.signalCode !== null) return resolve();
              p.once('exit', () => resolve());
              p.kill('SIGKILL');
            }),
        ),
      );
    },
  };
}

/** The scheduler state of a process: 'T' stopped, 'R'/'S' running or sleeping, undefined if gone. */
export function procState(pid: number | undefined): string | undefined {
  if (!pid) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
  } catch {
    return undefined;
  }
}

/** Polls `cond` every 50 ms until it holds; fails naming `what` after `timeoutMs`. */
export async function until(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!(await cond())) {
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Counts the world's ledger itself: effects, keys applied more than once, extra applications. */
export async function worldLedger(
  url: string,
  namespace: string,
): Promise<{ effects: number; duplicatedKeys: string[]; extraApplications: number }> {
  const t = await NatsTransport.connect(url);
  try {
    const store = await JetStreamStore.open({
      nc: t.nc,
      namespace,
      guard: { mayWrite: () => false, fencingToken: () => undefined },
      trackAll: false,
      auditSequencer: false,
    });
    const world = new JetStreamWorld(store);
    let effects = 0;
    let extra = 0;
    const dup: string[] = [];
    for await (const e of world.entries()) {
      effects++;
      if (e.applications > 1) {
        dup.push(e.key);
        extra += e.applications - 1;
      }
    }
    return { effects, duplicatedKeys: dup, extraApplications: extra };
  } finally {
    await t.close();
  }
}
