/**
 * `demo --fresh`: empties a data folder, safely by construction. Only a folder that is recognisably a
 * Handoff data folder is removed, and only while this process holds its LevelDB lock:
 *
 * - a folder that does not exist or is empty: nothing to remove;
 * - a folder holding anything that is not LevelDB's or Handoff's (any other file or folder): refused,
 *   `--yes` or not (`data.not_handoff`);
 * - a folder another process has open (its LevelDB lock is held): refused (`store.locked`);
 * - a LevelDB that holds none of Handoff's keys and is not empty: refused (`data.not_handoff`);
 * - the default demo folder (`.handoff/demo`, which `npm start` clears on every run) holding a demo
 *   run: removed without asking;
 * - any other Handoff data folder (or a damaged one): removed with `--yes`; on a terminal, after a
 *   yes to a question; otherwise refused (`demo.fresh_needs_yes`).
 *
 * The files are deleted while the lock is held (LevelDB's LOCK file last), so no other process can
 * open the folder between the check and the deletion.
 */
import { createInterface } from 'node:readline/promises';
import { readdir, rm, rmdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { Level } from 'level';
import { HandoffError } from '../contracts/errors.ts';
import { damageBeforeOpen, surveyFolder } from '../base/data-folder.ts';
import { SEALED_MARKER_KEY } from '../security/sealed-level.ts';

export const DEFAULT_DEMO_DATA = '.handoff/demo';

export interface FreshOptions {
  /** Delete without asking. */
  yes: boolean;
  /** Ask on a terminal (default: stdin and stderr are both terminals). */
  interactive?: boolean;
  /** The folder cleared without asking when it holds a demo run. @default `.handoff/demo` */
  defaultFolder?: string;
  /** Asks the question; true to delete (default: a y/N prompt on stderr). */
  confirm?: (question: string) => Promise<boolean>;
}

export type FreshResult = { removed: false; reason: 'absent' | 'empty' } | { removed: true; files: number };

/** Handoff's key spaces (level-store.ts), and the marker of sealed stores. */
const OUR_RANGES: { gte: string; lt: string }[] = [
  { gte: '!head', lt: '!head\u0000' },
  { gte: SEALED_MARKER_KEY, lt: `${SEALED_MARKER_KEY}\u0000` },
  ...['a', 'j', 'l', 'm', 'x', 't', 'o', 'c', 'w', 'd'].map((s) => ({ gte: `${s}:`, lt: `${s};` })),
];

async function promptYes(question: string): Promise<boolean> {
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return /^y(es)?$/i.test((await rl.question(`${question} [y/N] `)).trim());
  } finally {
    rl.close();
  }
}

export async function clearDataFolder(dir: string, opts: FreshOptions): Promise<FreshResult> {
  const s = surveyFolder(dir);
  if (!s.exists) return { removed: false, reason: 'absent' };
  if (s.entries.length === 0) return { removed: false, reason: 'empty' };
  if (s.foreign.length > 0) {
    const shown = s.foreign.slice(0, 5).join(', ') + (s.foreign.length > 5 ? `, … (${s.foreign.length} in all)` : '');
    throw new HandoffError(
      'data.not_handoff',
      `refusing to empty ${dir}: it is not a Handoff data folder (it holds ${shown}); nothing was deleted. Choose another --data, or remove it yourself`,
      { data: dir, foreign: s.foreign.slice(0, 20) },
    );
  }
  const damage = damageBeforeOpen(s);
  let db: Level<string, string> | undefined;
  let ours = s.hasHead;
  let empty = true;
  let demoRun = false;
  {
    // Opened even when damaged (never created: createIfMissing false): the lock is taken first, so a
    // folder another process holds is told apart from a damaged one.
    db = new Level<string, string>(dir, { keyEncoding: 'utf8', valueEncoding: 'utf8' });
    try {
      await db.open({ createIfMissing: false });
    } catch (err) {
      const code = (err as { cause?: { code?: string }; code?: string }).cause?.code ?? (err as { code?: string }).code;
      if (code === 'LEVEL_LOCKED')
        throw new HandoffError(
          'store.locked',
          `refusing to empty ${dir}: it is in use by another process (a running handoff start or demo?); nothing was deleted. Stop it first`,
          { data: dir },
        );
      db = undefined;
    }
    if (db) {
      try {
        for await (const _ of db.keys({ limit: 1 })) empty = false;
        for (const range of OUR_RANGES) for await (const _ of db.keys({ ...range, limit: 1 })) ours = true;
        demoRun = (await db.get('m:demo').catch(() => undefined)) !== undefined;
      } catch {
        // Unreadable: treated as a damaged folder below.
        demoRun = false;
      }
    }
  }
  try {
    if (db && !ours && !empty)
      throw new HandoffError(
        'data.not_handoff',
        `refusing to empty ${dir}: it holds a LevelDB database that is not Handoff's; nothing was deleted`,
        { data: dir },
      );
    if (!db && !ours && s.tables.length + s.logs.length > 0)
      throw new HandoffError(
        'data.not_handoff',
        `refusing to empty ${dir}: it holds a LevelDB database that cannot be opened (${damage ?? 'damaged'}) and is not recognisably Handoff's; nothing was deleted`,
        { data: dir },
      );
    const isDefault = resolve(dir) === resolve(opts.defaultFolder ?? DEFAULT_DEMO_DATA);
    const needsYes = !(isDefault && demoRun && db) && !(db && empty);
    if (needsYes && !opts.yes) {
      const what = db ? 'a Handoff data folder' : `a damaged Handoff data folder (${damage ?? 'it cannot be opened'})`;
      const interactive = opts.interactive ?? (Boolean(process.stdin.isTTY) && Boolean(process.stderr.isTTY));
      if (!interactive)
        throw new HandoffError(
          'demo.fresh_needs_yes',
          `refusing to empty ${dir} without --yes: it is ${what} other than the default demo folder; nothing was deleted. Add --yes to delete it`,
          { data: dir },
        );
      if (!(await (opts.confirm ?? promptYes)(`Delete every file of ${what} ${dir}?`)))
        throw new HandoffError('demo.fresh_declined', `${dir} was kept: nothing was deleted`, { data: dir });
    }
    // Delete with the lock held; LevelDB's LOCK file goes last, once the database is closed.
    let files = 0;
    for (const e of await readdir(dir)) {
      if (e === 'LOCK') continue;
      await rm(join(dir, e), { recursive: e === 'lost', force: true });
      files++;
    }
    await db?.close();
    db = undefined;
    // Only LevelDB's files can have appeared meanwhile (its own background work, now stopped).
    const after = surveyFolder(dir);
    for (const e of after.entries) {
      if (after.foreign.includes(e)) continue;
      await rm(join(dir, e), { recursive: e === 'lost', force: true }).catch(() => undefined);
      files++;
    }
    await rmdir(dir);
    return { removed: true, files };
  } finally {
    await db?.close().catch(() => undefined);
  }
}
