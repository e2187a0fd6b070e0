import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { Level } from 'level';
import { HandoffError } from '../contracts/errors.ts';
import { LevelStore } from '../runtime/level-store.ts';
import { generateDataKey, KEY_ENV, loadKeyring, type Keyring } from '../security/keyring.ts';
import { rotateKeys, sealingStatus } from '../security/keys-rotation.ts';
import { levelOpenFailed } from '../security/sealed-level.ts';
import { paint, printJson, progressBar, table, type ProgressMode } from './output.ts';

const int = (name: string, min: number) => (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`${name} must be an integer ≥ ${min}`);
  return n;
};

interface KeyOptions {
  dataKeyFile?: string;
  dataKeyId?: string;
}

/**
 * The data keyring of a command that opens a store: from `--data-key-file` / `--data-key-id` when
 * given, else from `HANDOFF_DATA_KEYS`, `HANDOFF_DATA_KEY_FILE`, `HANDOFF_DATA_KEY_ID`. `undefined`
 * when nothing is configured (the store stays unencrypted).
 */
export function dataKeyring(o: KeyOptions = {}): Keyring | undefined {
  return loadKeyring({ keyFile: o.dataKeyFile, activeId: o.dataKeyId });
}

/**
 * Opens an existing data folder for a command that reads or maintains it. A folder that holds no
 * store is an error naming it (`store.not_found`), never an empty store created by a typo.
 */
export async function openDataStore(dir: string, keyring: Keyring | undefined = dataKeyring()): Promise<LevelStore> {
  if (!existsSync(join(dir, 'CURRENT')))
    throw new HandoffError('store.not_found', `no data folder at ${dir} (no LevelDB store there): check --data`, {
      data: dir,
    });
  return LevelStore.open(dir, { keyring });
}

function addKeyOptions(cmd: Command): Command {
  return cmd
    .option(
      '--data-key-file <path>',
      `file of kid:base64key lines (default: $${KEY_ENV.file}; keys in $${KEY_ENV.keys} are added to it)`,
    )
    .option(
      '--data-key-id <kid>',
      `the active key, which seals new values (default: $${KEY_ENV.activeId}, or the only key)`,
    );
}

/** `handoff keys generate | status | rotate`: data keys for encryption at rest (docs/encryption.md). */
export function registerKeys(program: Command): void {
  const keys = program
    .command('keys')
    .description('Data keys of encryption at rest: generate, status, rotate (docs/encryption.md).');

  keys
    .command('generate')
    .description(`Print a new random 256-bit data key as kid:base64key, for ${KEY_ENV.keys} or a key file.`)
    .option('--id <kid>', 'key id (default: k<date>-<random>)')
    .option('--json', 'print {"id", "key", "entry"} as JSON', false)
    .action((o: { id?: string; json: boolean }) => {
      const k = generateDataKey(o.id);
      if (o.json) printJson(k);
      else process.stdout.write(`${k.entry}\n`);
    });

  addKeyOptions(
    keys
      .command('status')
      .description("Count the stored values per data key id (reads the envelopes' headers; needs no keys).")
      .option('--data <dir>', 'data folder (LevelDB)', '.handoff/demo')
      .option('--json', 'print as JSON', false),
  ).action(async (o: KeyOptions & { data: string; json: boolean }) => {
    const keyring = dataKeyring(o);
    const db = new Level<string, unknown>(o.data, { valueEncoding: 'buffer', createIfMissing: false });
    await db.open().catch(levelOpenFailed(o.data));
    try {
      const s = await sealingStatus(db);
      const configured = keyring?.ids ?? [];
      const missing = Object.keys(s.byKey).filter((id) => !configured.includes(id));
      const active = keyring?.active.id ?? null;
      const onActive = active ? (s.byKey[active] ?? 0) : 0;
      const result = {
        data: o.data,
        encrypted: s.markerKeyId !== null,
        active,
        configured,
        missing,
        values: s.values,
        plaintext: s.plaintext,
        byKey: s.byKey,
        rotationPending: s.rotationPending,
        allUnderActive: active !== null && onActive === s.values,
      };
      if (o.json) printJson(result);
      else {
        const rows: (string | number)[][] = [['key id', 'values', '']];
        for (const [id, n] of Object.entries(s.byKey))
          rows.push([
            id,
            n,
            id === active ? 'active' : configured.includes(id) ? 'configured' : paint.red('not configured'),
          ]);
        if (s.plaintext > 0) rows.push(['(plaintext)', s.plaintext, '']);
        process.stdout.write(`${table(rows, { header: true, align: ['l', 'r', 'l'] })}\n`);
        process.stdout.write(
          `${s.values} values · ${result.encrypted ? 'encrypted' : 'not encrypted'}${s.rotationPending ? ` · ${paint.yellow('a rotation was interrupted: run handoff keys rotate to finish it')}` : ''}\n`,
        );
      }
      if (missing.length > 0) process.exitCode = 1;
    } finally {
      await db.close();
    }
  });

  addKeyOptions(
    keys
      .command('rotate')
      .description(
        'Re-seal every value under the active key (offline; resumable: an interrupted rotation continues from its cursor). Also encrypts a plaintext store.',
      )
      .option('--data <dir>', 'data folder (LevelDB)', '.handoff/demo')
      .option('--batch-size <n>', 'values per atomic batch', int('--batch-size', 1), 500)
      .option('--pause-ms <ms>', 'pause between batches (bounds the load on the disk)', int('--pause-ms', 0), 0)
      .addOption(
        new Option('--progress <mode>', 'progress display on stderr').choices(['auto', 'lines', 'off']).default('auto'),
      )
      .option('--json', 'print the result as JSON', false),
  ).action(
    async (
      o: KeyOptions & { data: string; batchSize: number; pauseMs: number; progress: ProgressMode; json: boolean },
    ) => {
      const keyring = dataKeyring(o);
      const store = await openDataStore(o.data, keyring);
      const bar = progressBar(o.progress, 'rotate');
      const stop = new AbortController();
      const onSignal = () => stop.abort();
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      try {
        const r = await rotateKeys(store, {
          batchSize: o.batchSize,
          pauseMs: o.pauseMs,
          signal: stop.signal,
          onProgress: (p) => bar.update(p.scanned, p.total, `· ${p.resealed} re-sealed under ${p.target}`),
        });
        bar.done();
        if (o.json) printJson(r);
        else
          process.stdout.write(
            `${r.complete ? paint.green('done') : paint.yellow('stopped')} ${r.scanned} values scanned, ${r.resealed} re-sealed under '${r.target}'${r.resumedFrom !== null ? ` (resumed after ${r.resumedFrom})` : ''}${r.complete ? '' : ': run again to continue'}\n`,
          );
        if (!r.complete) process.exitCode = 1;
      } finally {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
        await store.close();
      }
    },
  );
}
