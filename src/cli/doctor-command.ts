/**
 * `handoff doctor --data DIR`: checks a data folder and says what is damaged. Exit 0 when it is
 * sound, 1 when something is damaged, 2 when it cannot be checked (no such folder, in use).
 * `--repair` first copies the folder aside, then rebuilds LevelDB from its table and log files
 * (LevelDB's RepairDB: what is unreadable is dropped, the copy keeps it) and, when the database lost
 * acknowledged writes, records the database's own head as the new one (the loss is accepted, and
 * said so). (docs/durability.md, "Damaged data folders".)
 */
import { cp } from 'node:fs/promises';
import type { Command } from 'commander';
import { Level } from 'level';
import { HandoffError } from '../contracts/errors.ts';
import { verifyAudit } from '../base/audit-log.ts';
import { damageBeforeOpen, surveyFolder, writeHeadFile } from '../base/data-folder.ts';
import { LevelStore } from '../runtime/level-store.ts';
import { dataKeyring } from './keys-command.ts';
import { paint, printJson } from './output.ts';

export interface DoctorCheck {
  check: 'folder' | 'files' | 'open' | 'head' | 'scan' | 'records' | 'audit';
  ok: boolean;
  detail: string;
}

export interface DoctorReport {
  ok: boolean;
  data: string;
  damaged: DoctorCheck['check'][];
  checks: DoctorCheck[];
  /** What to do next when damaged. */
  recovery?: string;
  repaired?: { backup: string; steps: string[] };
}

const reason = (err: unknown) => (err instanceof Error ? err.message : String(err));

/** Runs every check it can; a check that cannot run because an earlier one failed is left out. */
export async function checkDataFolder(dir: string): Promise<DoctorReport> {
  const checks: DoctorCheck[] = [];
  const s = surveyFolder(dir);
  if (!s.exists) throw new HandoffError('store.not_found', `no data folder at ${dir}: check --data`, { data: dir });
  if (s.entries.length === 0)
    throw new HandoffError('store.not_found', `${dir} is empty: no data folder to check`, { data: dir });
  checks.push({
    check: 'folder',
    ok: true,
    detail: `${s.entries.length} files: ${s.tables.length} table, ${s.logs.length} log${s.foreign.length ? `; not LevelDB's: ${s.foreign.slice(0, 5).join(', ')}` : ''}`,
  });
  const damage = damageBeforeOpen(s);
  checks.push({ check: 'files', ok: !damage, detail: damage ?? `CURRENT names ${s.manifest}, which is there` });
  if (!damage) {
    let store: LevelStore | undefined;
    try {
      store = await LevelStore.open(dir, { keyring: dataKeyring(), lostWrites: 'report' });
      checks.push({ check: 'open', ok: true, detail: 'LevelDB opens' });
    } catch (err) {
      if (err instanceof HandoffError && err.code === 'store.locked') throw err;
      checks.push({ check: 'open', ok: false, detail: reason(err) });
    }
    if (store) {
      try {
        const h = store.headCheck;
        checks.push({
          check: 'head',
          ok: !h.problem,
          detail:
            h.problem ??
            (h.file
              ? `audit chain at entry ${h.lastAudit}, at or past ${h.file.auditSeq} in HANDOFF-HEAD`
              : `no HANDOFF-HEAD file yet (audit chain at entry ${h.lastAudit})`),
        });
        let keys = 0;
        try {
          for await (const _ of store.db.iterator()) keys++;
          checks.push({ check: 'scan', ok: true, detail: `${keys} keys read` });
        } catch (err) {
          checks.push({ check: 'scan', ok: false, detail: `after ${keys} keys: ${reason(err)}` });
        }
        let records = 0;
        try {
          for await (const _ of store.actors()) records++;
          checks.push({
            check: 'records',
            ok: true,
            detail: `${records} actor records, every stored object they refer to found`,
          });
        } catch (err) {
          checks.push({ check: 'records', ok: false, detail: `after ${records} records: ${reason(err)}` });
        }
        try {
          const a = await verifyAudit(store.audit());
          checks.push({
            check: 'audit',
            ok: a.ok,
            detail: a.ok ? `${a.entries} entries, chain intact` : `broken at entry ${a.firstBroken}: ${a.reason}`,
          });
        } catch (err) {
          checks.push({ check: 'audit', ok: false, detail: reason(err) });
        }
      } finally {
        await store.close().catch(() => undefined);
      }
    }
  }
  const damaged = checks.filter((c) => !c.ok).map((c) => c.check);
  return {
    ok: damaged.length === 0,
    data: dir,
    damaged,
    checks,
    ...(damaged.length
      ? {
          recovery: `handoff doctor --data ${dir} --repair (copies the folder to ${dir}.backup-<time> first), or restore the folder from a backup`,
        }
      : {}),
  };
}

/** Copies the folder aside, then repairs what the report found. */
export async function repairDataFolder(
  dir: string,
  report: DoctorReport,
): Promise<{ backup: string; steps: string[] }> {
  const backup = `${dir.replace(/\/+$/, '')}.backup-${new Date().toISOString().replace(/[:.]/g, '-')}`;
  await cp(dir, backup, { recursive: true, errorOnExist: true, force: false });
  const steps = [`copied ${dir} to ${backup}`];
  const levelDamage = report.damaged.some((c) => c === 'files' || c === 'open' || c === 'scan' || c === 'records');
  if (levelDamage) {
    await (Level as unknown as { repair(location: string): Promise<void> }).repair(dir);
    steps.push('rebuilt LevelDB from its table and log files (RepairDB; unreadable blocks are dropped)');
  }
  // What is in the database now is what there is: its head becomes the recorded one.
  const store = await LevelStore.open(dir, { keyring: dataKeyring(), lostWrites: 'report' });
  try {
    if (store.headCheck.problem) {
      const last = await store.lastAudit();
      if (last)
        await writeHeadFile(
          dir,
          { v: 1, auditSeq: last.seq, auditHash: last.hash, at: new Date().toISOString() },
          true,
        );
      steps.push(`accepted the loss: ${store.headCheck.problem}; HANDOFF-HEAD now names audit entry ${last?.seq ?? 0}`);
    }
  } finally {
    await store.close();
  }
  return { backup, steps };
}

export function registerDoctor(program: Command): void {
  program
    .command('doctor')
    .description(
      'Check a data folder and say what is damaged (exit 0 sound, 1 damaged, 2 cannot check); --repair copies it aside, then rebuilds it.',
    )
    .option('--data <dir>', 'data folder', '.handoff/demo')
    .option(
      '--repair',
      'copy the folder to <dir>.backup-<time>, rebuild LevelDB from its files and accept what was lost',
      false,
    )
    .option('--json', 'print the report as JSON', false)
    .action(async (o: { data: string; repair: boolean; json: boolean }) => {
      let report = await checkDataFolder(o.data);
      if (o.repair && !report.ok) {
        const repaired = await repairDataFolder(o.data, report);
        report = { ...(await checkDataFolder(o.data)), repaired };
      }
      if (o.json) printJson(report);
      else {
        for (const c of report.checks)
          process.stdout.write(
            `${c.ok ? paint.green('ok    ') : paint.red('DAMAGED')} ${c.check.padEnd(8)} ${c.detail}\n`,
          );
        for (const step of report.repaired?.steps ?? []) process.stdout.write(`${paint.yellow('repair')}  ${step}\n`);
        process.stdout.write(
          report.ok
            ? `${paint.green('sound')}: ${o.data}\n`
            : `${paint.red('damaged')}: ${o.data} (${report.damaged.join(', ')}). Next: ${report.recovery}\n`,
        );
      }
      process.exitCode = report.ok ? 0 : 1;
    });
}

/**
 * Opens a data folder for `audit verify`: as `openDataStore`, but a database behind its HANDOFF-HEAD
 * file is opened (and reported by the verification) rather than refused.
 */
export async function openForVerify(dir: string): Promise<LevelStore> {
  const s = surveyFolder(dir);
  if (!s.hasCurrent && damageBeforeOpen(s) === undefined)
    throw new HandoffError('store.not_found', `no data folder at ${dir} (no LevelDB store there): check --data`, {
      data: dir,
    });
  return LevelStore.open(dir, { keyring: dataKeyring(), lostWrites: 'report' });
}
