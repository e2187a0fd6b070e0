/**
 * `demo --fresh` deletes only what is recognisably a Handoff data folder that no process is using
 * (src/cli/fresh.ts). On main before this test it deleted any folder it was given, recursively,
 * including one a running demo held open.
 */
import { existsSync } from 'node:fs';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Level } from 'level';
import { afterEach, describe, expect, it } from 'vitest';
import { clearDataFolder } from '../../src/cli/fresh.ts';
import { LevelStore } from '../../src/runtime/level-store.ts';
import { runCli } from './cli.ts';
import { cleanup, tempDir } from './helpers.ts';

afterEach(cleanup);

/** A small Handoff data folder holding a demo's meta key, closed. */
async function handoffFolder(): Promise<string> {
  const dir = join(await tempDir(), 'data');
  const store = await LevelStore.open(dir);
  await store.putMeta('demo', { model: 'refunds', cases: 1 });
  await store.close();
  return dir;
}

const fresh = (dir: string, ...extra: string[]) =>
  runCli(['demo', '--fresh', '--data', dir, '--cases', '3', '--progress', 'off', '--json', ...extra]);

describe('demo --fresh', () => {
  it('refuses a folder of unrelated files, with --yes too, and deletes nothing', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'notes.txt'), 'mine');
    await mkdir(join(dir, 'photos'));
    const r = await fresh(dir, '--yes');
    expect(r.code, r.stderr).toBe(2);
    expect(JSON.parse(r.stdout).error.code).toBe('data.not_handoff');
    expect(r.stderr).toMatch(/not a Handoff data folder .*notes\.txt/);
    expect((await readdir(dir)).sort()).toEqual(['notes.txt', 'photos']);
  });

  it("refuses a LevelDB that is not Handoff's", async () => {
    const dir = join(await tempDir(), 'other');
    const db = new Level<string, string>(dir);
    await db.put('users/1', 'alice');
    await db.close();
    const r = await fresh(dir, '--yes');
    expect(r.code, r.stderr).toBe(2);
    expect(JSON.parse(r.stdout).error.code).toBe('data.not_handoff');
    const again = new Level<string, string>(dir);
    expect(await again.get('users/1')).toBe('alice');
    await again.close();
  });

  it('refuses a folder another process holds open (store.locked), and the data is intact', async () => {
    const dir = await handoffFolder();
    const holder = await LevelStore.open(dir);
    try {
      const r = await fresh(dir, '--yes');
      expect(r.code, r.stderr).toBe(2);
      expect(JSON.parse(r.stdout).error.code).toBe('store.locked');
      expect(r.stderr).toMatch(/in use by another process/);
      expect(await holder.getMeta('demo')).toMatchObject({ model: 'refunds' });
    } finally {
      await holder.close();
    }
    expect(existsSync(join(dir, 'CURRENT'))).toBe(true);
  });

  it('asks for --yes off a terminal for a folder other than the default one, then deletes it and runs', async () => {
    const dir = await handoffFolder();
    const refused = await fresh(dir);
    expect(refused.code, refused.stderr).toBe(2);
    expect(JSON.parse(refused.stdout).error.code).toBe('demo.fresh_needs_yes');
    const store = await LevelStore.open(dir);
    expect(await store.getMeta('demo')).toMatchObject({ cases: 1 });
    await store.close();

    const ran = await fresh(dir, '--yes');
    expect(ran.code, ran.stderr).toBe(0);
    expect(JSON.parse(ran.stdout)).toMatchObject({ episodes: 3, unfinished: 0 });
  });

  it('clears the default demo folder without asking, and on a terminal asks for any other', async () => {
    const dir = await handoffFolder();
    // Declined on a terminal: kept.
    await expect(
      clearDataFolder(dir, { yes: false, interactive: true, confirm: async () => false }),
    ).rejects.toMatchObject({ code: 'demo.fresh_declined' });
    expect(existsSync(join(dir, 'CURRENT'))).toBe(true);
    // The default folder (npm start's) holding a demo run: cleared with no question.
    let asked = false;
    const r = await clearDataFolder(dir, {
      yes: false,
      interactive: true,
      defaultFolder: dir,
      confirm: async () => (asked = true),
    });
    expect(r).toMatchObject({ removed: true });
    expect(asked).toBe(false);
    expect(existsSync(dir)).toBe(false);
    // Nothing there: nothing to do.
    expect(await clearDataFolder(dir, { yes: false })).toEqual({ removed: false, reason: 'absent' });
  });
});
