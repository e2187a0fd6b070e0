/**
 * A table file corrupted under an unfinished run: the resume stops with the corruption (exit 2) and a
 * few log lines. On main before this test, LevelDB's background work met the damaged block, every
 * later write failed with it, and the runtime restarted the same actors and re-fired the same timers
 * for ever (8,000 identical error lines in 20 s, never exiting).
 */
import { open, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { runCli } from './cli.ts';
import { cleanup, tempDir } from './helpers.ts';

afterAll(cleanup);

it('a damaged table under an unfinished run ends the resume with the corruption, in a bounded log', async () => {
  const data = join(await tempDir(), 'run');
  // Killed (deterministically, at the 1,500th effect) with episodes in flight and table files written.
  const first = await runCli(['demo', '--cases', '3000', '--data', data, '--progress', 'off'], {
    failpoints: 'after-effect:1500',
  });
  expect(first.signal, first.stderr).toBe('SIGKILL');
  const tables = (await readdir(data)).filter((f) => f.endsWith('.ldb'));
  expect(tables.length).toBeGreaterThan(0);
  for (const t of tables) {
    const size = (await stat(join(data, t))).size;
    const fh = await open(join(data, t), 'r+');
    await fh.write(Buffer.alloc(64, 0xff), 0, 64, Math.floor(size * 0.8));
    await fh.close();
  }
  // A run that loops is killed once it has written 200 lines (and then fails below).
  const resume = await runCli(['demo', '--resume', '--data', data, '--progress', 'off', '--json'], {
    killOn: /(?:[^\n]*\n){200}/,
  });
  expect(resume.signal, resume.stderr.slice(0, 2000)).toBeNull();
  expect(resume.code).toBe(2);
  const err = (JSON.parse(resume.stdout) as { error: { code: string; message: string } }).error;
  expect(err.code).toBe('store.corrupt');
  expect(err.message).toMatch(/Corruption: .*handoff doctor --data/);
  expect(resume.stderr.trim().split('\n').length).toBeLessThan(50);
}, 60_000);
