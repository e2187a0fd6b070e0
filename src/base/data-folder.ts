/**
 * What a data folder holds, before anything opens it: LevelDB's own files, Handoff's head file, and
 * anything else. LevelDB "recovers" a folder whose CURRENT file is missing by starting an empty
 * database and deleting every table file it does not know as obsolete; Handoff never lets it: a
 * folder with LevelDB files and no usable CURRENT is refused as damaged (`store.damaged`), with a
 * pointer to `handoff doctor`. (docs/durability.md, "Damaged data folders".)
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { mkdir, rename, writeFile, open as openFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { HandoffError } from '../contracts/errors.ts';

/** Handoff's own file in a data folder: the last store head it wrote (see {@link StoreHead}). */
export const HEAD_FILE = 'HANDOFF-HEAD';

/** Names LevelDB gives its files (leveldb/db/filename.cc; `lost` is the folder its repair moves unreadable files to). */
const LEVEL_FILE = /^(CURRENT|LOCK|LOG|LOG\.old|lost|MANIFEST-\d+|\d+\.(log|ldb|sst|dbtmp))$/;
const OURS = new RegExp(`^${HEAD_FILE}(\\.tmp)?$`);

export interface FolderSurvey {
  dir: string;
  exists: boolean;
  /** Every entry of the folder. */
  entries: string[];
  /** Entries that are neither LevelDB's nor Handoff's. */
  foreign: string[];
  hasCurrent: boolean;
  /** The MANIFEST that CURRENT names, if CURRENT is there. */
  manifest: string | undefined;
  manifestExists: boolean;
  tables: string[];
  logs: string[];
  hasHead: boolean;
}

/** Lists a folder's files by kind; throws `data.unreadable` (naming the folder) when it cannot be read. */
export function surveyFolder(dir: string): FolderSurvey {
  let entries: string[] = [];
  let exists = true;
  try {
    if (!statSync(dir).isDirectory())
      throw new HandoffError('data.not_a_folder', `--data ${dir} is not a folder`, { data: dir });
    entries = readdirSync(dir);
  } catch (err) {
    if (err instanceof HandoffError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') exists = false;
    else
      throw new HandoffError('data.unreadable', `--data ${dir} cannot be read: ${(err as Error).message}`, {
        data: dir,
        cause: code,
      });
  }
  const hasCurrent = entries.includes('CURRENT');
  let manifest: string | undefined;
  if (hasCurrent) {
    try {
      manifest = readFileSync(join(dir, 'CURRENT'), 'utf8').trim() || undefined;
    } catch {
      manifest = undefined;
    }
  }
  return {
    dir,
    exists,
    entries,
    foreign: entries.filter((e) => !LEVEL_FILE.test(e) && !OURS.test(e)),
    hasCurrent,
    manifest,
    manifestExists: manifest !== undefined && /^MANIFEST-\d+$/.test(manifest) && entries.includes(manifest),
    tables: entries.filter((e) => /^\d+\.(ldb|sst)$/.test(e)),
    logs: entries.filter((e) => /^\d+\.log$/.test(e)),
    hasHead: entries.includes(HEAD_FILE),
  };
}

/**
 * Creates a data folder and its missing parents one level at a time, with a typed error naming the
 * folder when one cannot be made. (Node's recursive mkdir, which LevelDB's binding uses too, spins
 * forever where a parent refuses creation with ENOENT, as /proc does.)
 */
export async function ensureFolder(dir: string): Promise<void> {
  const missing: string[] = [];
  for (let d = resolve(dir); ; d = dirname(d)) {
    let st;
    try {
      st = statSync(d);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT')
        throw new HandoffError('data.unusable', `--data ${dir}: ${d} cannot be read: ${(err as Error).message}`, {
          data: dir,
        });
      missing.unshift(d);
      if (dirname(d) === d) break;
      continue;
    }
    if (!st.isDirectory())
      throw new HandoffError('data.unusable', `--data ${dir}: ${d} is not a folder`, { data: dir });
    break;
  }
  for (const d of missing) {
    try {
      await mkdir(d);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') continue;
      throw new HandoffError(
        'data.unusable',
        `--data ${dir}: cannot create ${d}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
        { data: dir, cause: (err as NodeJS.ErrnoException).code },
      );
    }
  }
}

/** The folder's store is damaged: nothing was changed; `handoff doctor` says more. */
export class StoreDamagedError extends HandoffError {
  constructor(dir: string, problem: string, details: Record<string, unknown> = {}) {
    super(
      'store.damaged',
      `data folder ${dir} is damaged: ${problem}. Nothing was changed. Run \`handoff doctor --data ${dir}\` for a full check (\`--repair\` rebuilds the store from its table and log files, after copying the folder aside)`,
      { data: dir, ...details },
    );
  }
}

/**
 * Why LevelDB must not open this folder as it is, or undefined when it may: LevelDB files without a
 * CURRENT file (LevelDB would start an empty database and delete the table files), or a CURRENT
 * naming a MANIFEST that is not there.
 */
export function damageBeforeOpen(s: FolderSurvey): string | undefined {
  if (!s.exists) return undefined;
  const dataFiles = s.tables.length + s.logs.length + s.entries.filter((e) => e.startsWith('MANIFEST-')).length;
  if (!s.hasCurrent) {
    if (dataFiles === 0 && !s.hasHead) return undefined;
    return `its LevelDB has no CURRENT file (${s.tables.length} table and ${s.logs.length} log files are there; opening it as it is would discard them)`;
  }
  if (!s.manifestExists)
    return `its CURRENT file names ${s.manifest ? `'${s.manifest}', which is not there` : 'no MANIFEST'}`;
  return undefined;
}

/** Throws {@link StoreDamagedError} when LevelDB must not open the folder (see {@link damageBeforeOpen}). */
export function assertOpenable(dir: string): FolderSurvey {
  const s = surveyFolder(dir);
  const problem = damageBeforeOpen(s);
  if (problem) throw new StoreDamagedError(dir, problem, { check: 'files' });
  return s;
}

/**
 * The head of a store's audit chain: its last entry's seq and hash, copied to the HANDOFF-HEAD file
 * beside the database after the batch that wrote it (at most about once a second, and on close).
 * Every transition writes audit entries in its own batch, so a database whose chain ends before its
 * head file (or whose entry at that seq has another hash) lost writes it had acknowledged: a deleted
 * or truncated write-ahead log, a partial copy. LevelDB itself cannot tell: its batches are atomic,
 * so what is left is a consistent, shorter database.
 */
export interface StoreHead {
  v: 1;
  auditSeq: number;
  auditHash: string;
  at: string;
}

export function readHeadFile(dir: string): StoreHead | undefined {
  const path = join(dir, HEAD_FILE);
  if (!existsSync(path)) return undefined;
  try {
    const h = JSON.parse(readFileSync(path, 'utf8')) as StoreHead;
    return typeof h.auditSeq === 'number' && typeof h.auditHash === 'string' ? h : undefined;
  } catch {
    return undefined;
  }
}

/** Writes the head file atomically (temp file + rename); fsynced when `sync`. */
export async function writeHeadFile(dir: string, head: StoreHead, sync: boolean): Promise<void> {
  const tmp = join(dir, `${HEAD_FILE}.tmp`);
  const text = `${JSON.stringify(head)}\n`;
  if (sync) {
    const fh = await openFile(tmp, 'w');
    try {
      await fh.writeFile(text);
      await fh.sync();
    } finally {
      await fh.close();
    }
  } else await writeFile(tmp, text);
  await rename(tmp, join(dir, HEAD_FILE));
}

/**
 * Compares the database's audit chain (its last seq, and the hash of its entry at the head file's
 * seq) with the head file: a problem when the database is behind it or differs.
 */
export function headProblem(
  lastSeq: number,
  hashAtFileSeq: string | undefined,
  file: StoreHead | undefined,
): string | undefined {
  if (!file) return undefined;
  if (lastSeq < file.auditSeq)
    return `its audit chain ends at entry ${lastSeq}, but entry ${file.auditSeq} had been written by ${file.at} (${HEAD_FILE}): acknowledged writes were lost (a missing or truncated write-ahead log?)`;
  if (hashAtFileSeq !== file.auditHash)
    return `its audit entry ${file.auditSeq} is not the one written by ${file.at} (${HEAD_FILE} names another hash): the database was replaced or rewritten`;
  return undefined;
}

/**
 * Copies the audit head of each written batch to the HANDOFF-HEAD file, at most about once a second,
 * and on close. Best effort (a full disk, a read-only copy): the file only ever lags behind the
 * database.
 */
export class HeadWitness {
  #dir: string;
  #sync: boolean;
  #timer: NodeJS.Timeout | null = null;
  #writing: Promise<void> | null = null;
  #pending: StoreHead | undefined;

  constructor(dir: string, sync: boolean) {
    this.#dir = dir;
    this.#sync = sync;
  }

  /** A batch with audit entries was written; `closing`: no timer (close writes it). */
  written(head: StoreHead, closing: boolean): void {
    this.#pending = head;
    if (this.#timer || closing) return;
    this.#timer = setTimeout(() => {
      this.#timer = null;
      void this.#write();
    }, 1000);
    this.#timer.unref();
  }

  /** Writes the last head now; no later timer. */
  async close(): Promise<void> {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    await this.#write();
  }

  async #write(): Promise<void> {
    const head = this.#pending;
    if (!head) return;
    await this.#writing;
    if (this.#pending !== head) return;
    this.#pending = undefined;
    this.#writing = writeHeadFile(this.#dir, head, this.#sync).catch(() => undefined);
    await this.#writing;
  }
}
