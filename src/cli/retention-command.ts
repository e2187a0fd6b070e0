import type { Command } from 'commander';
import { userInfo } from 'node:os';
import { ContractError } from '../contracts/errors.ts';
import { Redactor } from '../inspect/redact.ts';
import { loadModel } from '../models/loader.ts';
import {
  clearHold,
  listHolds,
  retentionOf,
  runRetention,
  setHold,
  type RetentionReport,
} from '../retention/retention.ts';
import { openDataStore } from './keys-command.ts';
import { paint, printJson, table } from './output.ts';
import { parseInstant } from './lineage-command.ts';

function operator(by: string | undefined): string {
  if (by !== undefined && by.trim() === '')
    throw new ContractError('hold', [{ path: 'by', message: 'must not be empty' }]);
  return by ?? `operator:${userInfo().username}`;
}

function printReport(r: RetentionReport): void {
  const out = process.stdout;
  out.write(
    `${paint.bold(`retention pass at ${new Date(r.at).toISOString()}${r.dryRun ? ' (dry run: nothing changed)' : ''}`)}\n`,
  );
  if (r.compacted.length > 0) {
    const rows: (string | number)[][] = [['episode', 'model', 'ended', 'journal entries', 'actors']];
    for (const c of r.compacted)
      rows.push([c.episodeId, c.model, new Date(c.endedAt).toISOString(), c.journalEntries, c.actors.length]);
    out.write(`${table(rows, { header: true, align: ['l', 'l', 'l', 'r', 'r'] })}\n`);
  }
  out.write(
    `${r.dryRun ? 'would compact' : 'compacted'} ${r.compacted.length} episodes (${r.compacted.reduce((n, c) => n + c.journalEntries, 0)} journal entries); on legal hold ${r.held.length}; kept: ${r.kept.unfinished} unfinished, ${r.kept.young} within their retention, ${r.kept.noPolicy} without a policy, ${r.kept.alreadyCompacted} already compacted\n`,
  );
}

/** `handoff retention run` and `handoff hold set | clear | list`. */
export function registerRetention(program: Command): void {
  const retention = program
    .command('retention')
    .description(
      "Compaction of finished episodes' journals to their audit summary, per model's retention.keepDays (docs/governance.md).",
    );
  retention
    .command('run')
    .description(
      "Compact the journals of finished episodes older than their model's retention.keepDays, except those on legal hold. The node must be stopped (LevelDB allows one process); an embedded `handoff start` does this by itself every hour (cluster nodes on NATS do not: their JetStream journal refuses deletes).",
    )
    .option('--data <dir>', 'data folder', '.handoff/console')
    .option('--model <dirs...>', 'model folders whose retention applies', ['models/refunds', 'models/incidents'])
    .option('--now <iso>', 'the time the pass runs at (default: now)')
    .option('--dry-run', 'report what would be compacted; change nothing', false)
    .option('--json', 'print the report as JSON', false)
    .action(async (o: { data: string; model: string[]; now?: string; dryRun: boolean; json: boolean }) => {
      const models = await Promise.all(o.model.map((dir) => loadModel(dir)));
      const policies = retentionOf(models);
      const now = parseInstant(o.now, 'now', { contract: 'retention run' }) ?? Date.now();
      const store = await openDataStore(o.data);
      try {
        const report = await runRetention(store, {
          retention: policies,
          now,
          dryRun: o.dryRun,
          by: `operator:${userInfo().username}`,
          redactor: new Redactor(models),
        });
        if (o.json) printJson(report);
        else printReport(report);
      } finally {
        await store.close();
      }
    });

  const hold = program
    .command('hold')
    .description('Legal holds: an episode on hold is never compacted by retention (set and clear are audited).');
  hold
    .command('set')
    .description('Put an episode on legal hold.')
    .argument('<episodeId>', 'the episode')
    .option('--reason <text>', 'why (required; goes into the audit log)')
    .option('--by <who>', 'who sets it (default: operator:<os user>)')
    .option('--data <dir>', 'data folder', '.handoff/console')
    .option('--json', 'print the hold as JSON', false)
    .action(async (episodeId: string, o: { reason?: string; by?: string; data: string; json: boolean }) => {
      const by = operator(o.by);
      const store = await openDataStore(o.data);
      try {
        const h = await setHold(store, { episodeId, reason: o.reason, by, at: Date.now() });
        if (o.json) printJson({ ok: true, hold: h });
        else process.stdout.write(`${paint.green('held')} ${h.episodeId}: ${h.reason}\n`);
      } finally {
        await store.close();
      }
    });
  hold
    .command('clear')
    .description('Lift a legal hold.')
    .argument('<episodeId>', 'the episode')
    .option('--reason <text>', 'why (required; goes into the audit log)')
    .option('--by <who>', 'who clears it (default: operator:<os user>)')
    .option('--data <dir>', 'data folder', '.handoff/console')
    .option('--json', 'print the lifted hold as JSON', false)
    .action(async (episodeId: string, o: { reason?: string; by?: string; data: string; json: boolean }) => {
      const by = operator(o.by);
      const store = await openDataStore(o.data);
      try {
        const h = await clearHold(store, { episodeId, reason: o.reason, by, at: Date.now() });
        if (o.json) printJson({ ok: true, cleared: h });
        else
          process.stdout.write(
            `${paint.green('cleared')} hold on ${h.episodeId} (held since ${new Date(h.at).toISOString()})\n`,
          );
      } finally {
        await store.close();
      }
    });
  hold
    .command('list')
    .description('List legal holds.')
    .option('--data <dir>', 'data folder', '.handoff/console')
    .option('--json', 'print { count, holds } as JSON', false)
    .action(async (o: { data: string; json: boolean }) => {
      const store = await openDataStore(o.data);
      try {
        const holds = await listHolds(store);
        if (o.json) printJson({ count: holds.length, holds });
        else if (holds.length === 0) process.stdout.write('no legal holds\n');
        else {
          const rows: (string | number)[][] = [['episode', 'since', 'by', 'reason']];
          for (const h of holds) rows.push([h.episodeId, new Date(h.at).toISOString(), h.by, h.reason]);
          process.stdout.write(`${table(rows, { header: true, align: ['l', 'l', 'l', 'l'] })}\n`);
        }
      } finally {
        await store.close();
      }
    });
}
