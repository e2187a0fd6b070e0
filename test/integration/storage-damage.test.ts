/**
 * A damaged data folder is refused with its real cause and a pointer to `handoff doctor`, never
 * repaired by deletion (src/base/data-folder.ts, LevelStore.open, src/cli/doctor-command.ts). On
 * main before these tests: a missing CURRENT made `--resume` delete every table file and then say
 * "no demo run to resume"; a deleted write-ahead log lost acknowledged writes with `audit verify`
 * saying ok; a corrupt table file was reported as "blob … is missing".
 */
import { cp, readdir, rm, stat } from 'node:fs/promises';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, afterAll, describe, expect, it } from 'vitest';
import { LevelStore } from '../../src/runtime/level-store.ts';
import { runCli } from './cli.ts';
import { cleanup, tempDir } from './helpers.ts';

let base: string;
let original: string;

beforeAll(async () => {
  base = await tempDir();
  original = join(base, 'run');
  // Enough episodes for LevelDB to have written table files beside its log.
  const r = await runCli(['demo', '--cases', '400', '--data', original, '--progress', 'off', '--json']);
  expect(r.code, r.stderr).toBe(0);
  expect((await readdir(original)).some((f) => f.endsWith('.ldb'))).toBe(true);
  // Copied before anything opens the run again (opening it moves its log into a table file).
  for (const name of ['no-current', 'no-wal', 'corrupt']) await cp(original, join(base, name), { recursive: true });
}, 60_000);
afterAll(cleanup);

async function copy(name: string): Promise<string> {
  return join(base, name);
}

const json = (s: string) => JSON.parse(s) as Record<string, unknown> & { error?: { code: string; message: string } };

describe('damaged data folders', () => {
  it('a sound folder: doctor exits 0, audit verify ok', async () => {
    const doctor = await runCli(['doctor', '--data', original, '--json']);
    expect(doctor.code, doctor.stdout + doctor.stderr).toBe(0);
    expect(json(doctor.stdout)).toMatchObject({ ok: true, damaged: [] });
    const verify = await runCli(['audit', 'verify', '--data', original, '--json']);
    expect(verify.code).toBe(0);
  });

  it('no CURRENT file: refused as damaged, nothing deleted; doctor names it; --repair brings the run back', async () => {
    const dir = await copy('no-current');
    await rm(join(dir, 'CURRENT'));
    const before = (await readdir(dir)).sort();
    const resume = await runCli(['demo', '--resume', '--data', dir, '--progress', 'off', '--json']);
    expect(resume.code, resume.stderr).toBe(2);
    expect(json(resume.stdout).error).toMatchObject({ code: 'store.damaged' });
    expect(resume.stderr).toMatch(/no CURRENT file.*handoff doctor --data/s);
    expect((await readdir(dir)).sort()).toEqual(before);

    const doctor = await runCli(['doctor', '--data', dir, '--json']);
    expect(doctor.code).toBe(1);
    expect(json(doctor.stdout)).toMatchObject({ ok: false, damaged: ['files'] });

    const repair = await runCli(['doctor', '--data', dir, '--repair', '--json']);
    expect(repair.code, repair.stdout + repair.stderr).toBe(0);
    const report = json(repair.stdout) as { repaired: { backup: string } };
    expect((await stat(report.repaired.backup)).isDirectory()).toBe(true);
    const after = await runCli(['demo', '--resume', '--data', dir, '--progress', 'off', '--json']);
    expect(after.code, after.stderr).toBe(0);
    expect(json(after.stdout)).toMatchObject({ episodes: 400, unfinished: 0, duplicateEffects: 0 });
  }, 30_000);

  it('a deleted write-ahead log: resume refuses, audit verify and doctor report the lost writes', async () => {
    const dir = await copy('no-wal');
    const logs = (await readdir(dir)).filter((f) => f.endsWith('.log'));
    expect((await stat(join(dir, logs[0]!))).size).toBeGreaterThan(0);
    for (const f of logs) await rm(join(dir, f));
    const verify = await runCli(['audit', 'verify', '--data', dir, '--json']);
    expect(verify.code, verify.stderr).toBe(1);
    expect(json(verify.stdout)).toMatchObject({ ok: false });
    expect(String(json(verify.stdout).reason)).toMatch(/acknowledged writes were lost/);

    const resume = await runCli(['demo', '--resume', '--data', dir, '--progress', 'off', '--json']);
    expect(resume.code).toBe(2);
    expect(json(resume.stdout).error).toMatchObject({ code: 'store.damaged' });

    const doctor = await runCli(['doctor', '--data', dir, '--json']);
    expect(doctor.code).toBe(1);
    expect(json(doctor.stdout).damaged).toContain('head');
  }, 30_000);

  it('a corrupt table file is reported as corruption, not as a missing blob, and the command ends', async () => {
    const dir = await copy('corrupt');
    const table = (await readdir(dir)).find((f) => f.endsWith('.ldb'))!;
    const size = (await stat(join(dir, table))).size;
    const fh = await open(join(dir, table), 'r+');
    await fh.write(Buffer.alloc(64, 0xff), 0, 64, Math.floor(size / 2));
    await fh.close();
    const resume = await runCli(['demo', '--resume', '--data', dir, '--progress', 'off', '--json']);
    expect(resume.code).toBe(2);
    const err = json(resume.stdout).error!;
    expect(err.code).toBe('store.corrupt');
    expect(err.message).toMatch(/Corruption/);
    expect(err.message).not.toMatch(/is missing/);
    expect(err.message).toMatch(/handoff doctor --data/);
    const doctor = await runCli(['doctor', '--data', dir, '--json']);
    expect(doctor.code).toBe(1);
    expect(json(doctor.stdout).damaged).toContain('scan');
  }, 30_000);

  it('doctor on no folder is a usage error (2)', async () => {
    const r = await runCli(['doctor', '--data', join(base, 'nothing-here'), '--json']);
    expect(r.code).toBe(2);
    expect(json(r.stdout).error).toMatchObject({ code: 'store.not_found' });
  });
});

describe('fsync policy', () => {
  it('HANDOFF_STORE_SYNC=1 (or sync: true) fsyncs every batch; a bad value is refused naming the variable', async () => {
    const seen: boolean[] = [];
    for (const [env, opt] of [
      [undefined, undefined],
      ['1', undefined],
      [undefined, true],
    ] as const) {
      const prev = process.env.HANDOFF_STORE_SYNC;
      if (env === undefined) delete process.env.HANDOFF_STORE_SYNC;
      else process.env.HANDOFF_STORE_SYNC = env;
      try {
        const store = await LevelStore.open(await tempDir(), opt === undefined ? {} : { sync: opt });
        const db = store.db as unknown as { _batch: (ops: unknown[], o: { sync: boolean }) => Promise<void> };
        const inner = db._batch.bind(db);
        db._batch = (ops, o) => {
          seen.push(o.sync);
          return inner(ops, o);
        };
        await store.putMeta('k', 1);
        await store.close();
      } finally {
        if (prev === undefined) delete process.env.HANDOFF_STORE_SYNC;
        else process.env.HANDOFF_STORE_SYNC = prev;
      }
    }
    expect(seen).toEqual([false, true, true]);
    process.env.HANDOFF_STORE_SYNC = 'sometimes';
    try {
      await expect(LevelStore.open(await tempDir())).rejects.toMatchObject({
        code: 'config.invalid',
        details: { field: 'HANDOFF_STORE_SYNC' },
      });
    } finally {
      delete process.env.HANDOFF_STORE_SYNC;
    }
  });
});
