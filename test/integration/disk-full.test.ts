/**
 * Disk full, on a real small tmpfs (root only; skipped where `mount -t tmpfs` is not allowed): the demo
 * stops writing with one clear error, holds its writes and retries them with back-off (no stream of
 * identical errors), and resumes by itself when space returns; nothing is lost or done twice. On main
 * before this test it stopped making progress, wrote megabytes of identical errors, and never
 * recovered without a kill and a resume.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LevelStore } from '../../src/runtime/level-store.ts';
import type { Commit } from '../../src/runtime/store.ts';
import { runCli } from './cli.ts';
import { cleanup, tempDir } from './helpers.ts';

const ROOT = join(import.meta.dirname, '..', '..');
let mnt: string | undefined;

async function mountTmpfs(sizeMb: number): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  const dir = join(await tempDir(), 'mnt');
  await mkdir(dir);
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${sizeMb}m`, 'tmpfs', dir], { stdio: 'ignore' });
    return dir;
  } catch {
    return undefined;
  }
}

afterAll(async () => {
  if (mnt) execFileSync('umount', [mnt], { stdio: 'ignore' });
  await cleanup();
});

describe('disk full', async () => {
  mnt = await mountTmpfs(16);
  it.skipIf(!mnt)(
    'holds writes while the disk is full, logs it once, and resumes by itself when space returns',
    async () => {
      const data = join(mnt!, 'data');
      const filler = join(mnt!, 'filler');
      // 2 MB left: the run's log fills it after a few hundred episodes.
      await writeFile(filler, Buffer.alloc(14 << 20));
      const child = spawn(
        process.execPath,
        [join(ROOT, 'bin', 'handoff.js'), 'demo', '--cases', '400', '--data', data, '--progress', 'off', '--json'],
        {
          cwd: ROOT,
          env: { ...process.env, NO_COLOR: '1', HANDOFF_LOG_LEVEL: 'warn' },
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      );
      let stdout = '';
      let stderr = '';
      let freed = false;
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => {
        stderr += d.toString();
        // Space returns once the store has said it is full (and not before: the test waits for that).
        if (!freed && /storage full/.test(stderr)) {
          freed = true;
          void rm(filler);
        }
      });
      // A run that never recovers is killed well before the test's own limit (so it leaves no process).
      const stuck = setTimeout(() => child.kill('SIGKILL'), 45_000);
      const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
      clearTimeout(stuck);
      expect(freed, stderr).toBe(true);
      expect(code, stderr).toBe(0);
      const summary = JSON.parse(stdout) as { episodes: number; unfinished: number; duplicateEffects: number };
      expect(summary).toMatchObject({ episodes: 400, unfinished: 0, duplicateEffects: 0 });
      const lines = stderr.trim().split('\n');
      expect(lines.filter((l) => /storage full/.test(l))).toHaveLength(1);
      expect(lines.filter((l) => /storage writable again/.test(l))).toHaveLength(1);
      // Bounded: besides those two, at most one "still full" line a minute.
      expect(lines.length, stderr).toBeLessThanOrEqual(4);
      expect(JSON.parse(lines[0]!)).toMatchObject({ code: 'store.unavailable', data });

      const verify = await runCli(['audit', 'verify', '--data', data, '--json']);
      expect(verify.code, verify.stdout).toBe(0);
      await rm(data, { recursive: true });
    },
    60_000,
  );

  it.skipIf(!mnt)(
    'refuses new commands with store.unavailable while full; the held write lands when space returns',
    async () => {
      const dir = join(mnt!, 'store');
      const filler = join(mnt!, 'filler2');
      const logged: string[] = [];
      const logger = {
        error: (_: unknown, msg: string) => void logged.push(msg),
        warn: (_: unknown, msg: string) => void logged.push(msg),
      };
      const store = await LevelStore.open(dir, { noSpaceRetryMs: 20, logger: logger as never });
      try {
        await store.putAux('w', 'before', { ok: true });
        await writeFile(filler, Buffer.alloc(15 << 20)).catch(() => undefined);
        // A write larger than what is left: held, not failed.
        let landed = false;
        const held = store.putAux('w', 'big', { blob: 'x'.repeat(3 << 20) }).then(() => (landed = true));
        while (!store.unavailable) await new Promise((r) => setTimeout(r, 10));
        const command: Commit = {
          actor: {
            id: 'case-1',
            kind: 'case',
            model: 'refunds',
            seq: 1,
            status: 'active',
            state: 'queued',
            snapshot: {},
            updatedAt: 0,
          },
          journal: { seq: 1, at: 0, event: { type: 'claim' }, state: 'claimed' },
          commandId: 'cmd-1',
        } as unknown as Commit;
        await expect(store.commit(command)).rejects.toMatchObject({
          code: 'store.unavailable',
          details: { data: dir, retryable: true },
        });
        expect(landed).toBe(false);
        await rm(filler);
        await held;
        expect(store.unavailable).toBeUndefined();
        expect(await store.getAux<{ blob: string }>('w', 'big')).toMatchObject({ blob: expect.any(String) });
        expect(await store.hasCommand('cmd-1')).toBe(false);
        expect(logged.filter((m) => /storage full/.test(m))).toHaveLength(1);
        expect(logged.filter((m) => /writable again/.test(m))).toHaveLength(1);
      } finally {
        await store.close();
      }
    },
    30_000,
  );
});
