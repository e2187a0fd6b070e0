import type { Command } from 'commander';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { ContractError } from '../contracts/errors.ts';
import { ModelConfig } from '../contracts/model-config.ts';
import { AuditIndex, type AuditQuery } from '../lineage/audit-index.ts';
import { buildLineage, withCompensationTypes } from '../lineage/lineage.ts';
import { renderLineage } from '../lineage/render.ts';
import { storeLineageSource } from '../lineage/source.ts';
import type { AuditEntry } from '../base/audit-log.ts';
import { LevelWorld } from '../runtime/world.ts';
import { openDataStore } from './keys-command.ts';
import { paint, printJson, table } from './output.ts';

const Instant = z.union([z.iso.datetime({ offset: true }), z.iso.date()], {
  error: 'expected an ISO time (2025-06-01T12:00:00Z) or date (2025-06-01)',
});

/** Parses a time option; a bare date means its start, or with `endOfDay` its last millisecond, UTC. */
export function parseInstant(
  value: string | undefined,
  field: string,
  opts: { contract?: string; endOfDay?: boolean } = {},
): number | undefined {
  if (value === undefined) return undefined;
  const r = Instant.safeParse(value);
  if (!r.success)
    throw new ContractError(opts.contract ?? 'audit query', [
      { path: field, message: `${r.error.issues[0]?.message ?? 'invalid'} (got '${value}')` },
    ]);
  const bare = /^\d{4}-\d{2}-\d{2}$/.test(value);
  const ms = Date.parse(bare ? `${value}T00:00:00Z` : value);
  return bare && opts.endOfDay ? ms + 86_400_000 - 1 : ms;
}

async function compensations(dirs: string[]): Promise<Record<string, { compensation: string | null }>> {
  const out: Record<string, { compensation: string | null }> = {};
  for (const dir of dirs) {
    const raw = await readFile(join(dir, 'model.json'), 'utf8').catch(() => null);
    const cfg = raw ? ModelConfig.safeParse(JSON.parse(raw)) : null;
    if (cfg?.success) Object.assign(out, cfg.data.actions);
  }
  return out;
}

function describeEntry(e: AuditEntry): string {
  const d = e.data;
  if (e.kind === 'gate.decision')
    return `${String(d.outcome)} · rule ${String(d.ruleId)}${d.tier ? ` · tier ${String(d.tier)}` : ''}`;
  if (typeof d.note === 'string') return d.note;
  if (typeof d.reason === 'string') return d.reason;
  if (typeof d.outcome === 'string') return d.outcome;
  if (typeof d.key === 'string') return d.key;
  return '';
}

/** `handoff lineage <id>` and `handoff audit query`. */
export function registerLineage(program: Command): void {
  program
    .command('lineage')
    .description(
      'Show where an episode came from and what it did: sources → plan → gate → review → actions → effects, with audit entry numbers.',
    )
    .argument('<id>', 'an episode id, or the id of one of its cases')
    .option('--data <dir>', 'data folder', '.handoff/demo')
    .option('--model <dirs...>', "model folders (to name each action's compensation)", [
      'models/refunds',
      'models/incidents',
    ])
    .option('--json', 'print the lineage as one JSON object', false)
    .action(async (id: string, o: { data: string; model: string[]; json: boolean }) => {
      const store = await openDataStore(o.data);
      try {
        const world = new LevelWorld(store);
        const lineage = withCompensationTypes(
          await buildLineage(id, storeLineageSource(store, { effect: (key) => world.lookup(key) })),
          await compensations(o.model),
        );
        if (o.json) printJson(lineage);
        else process.stdout.write(`${renderLineage(lineage, paint)}\n`);
      } finally {
        await store.close();
      }
    });

  const audit =
    program.commands.find((c) => c.name() === 'audit') ??
    program.command('audit').description('The tamper-evident audit log.');
  audit
    .command('query')
    .description(
      'Audit entries by actor (an episode includes its cases), reviewer, rule and time range; every filter given must match.',
    )
    .option('--data <dir>', 'data folder', '.handoff/demo')
    .option('--actor <id>', 'actor id (an episode id also matches its cases)')
    .option('--reviewer <id>', 'who did it (reviewer id, or runtime)')
    .option('--rule <id>', 'gate rule, e.g. freshness.stale or limit:issueRefund.amount')
    .option('--since <iso>', 'from this time (inclusive; a date means its start, UTC)')
    .option('--until <iso>', 'up to this time (inclusive; a date means its end, UTC)')
    .option('--limit <n>', 'most recent entries shown', '1000')
    .option('--json', 'print { query, count, entries } as JSON', false)
    .action(
      async (o: {
        data: string;
        actor?: string;
        reviewer?: string;
        rule?: string;
        since?: string;
        until?: string;
        limit: string;
        json: boolean;
      }) => {
        const limit = Number(o.limit);
        if (!Number.isInteger(limit) || limit < 1)
          throw new ContractError('audit query', [
            { path: 'limit', message: `expected an integer ≥ 1 (got '${o.limit}')` },
          ]);
        const q: AuditQuery = { limit };
        for (const k of ['actor', 'reviewer', 'rule'] as const) {
          const v = o[k];
          if (v === undefined) continue;
          if (v.trim() === '') throw new ContractError('audit query', [{ path: k, message: 'must not be empty' }]);
          q[k] = v;
        }
        const since = parseInstant(o.since, 'since');
        const until = parseInstant(o.until, 'until', { endOfDay: true });
        if (since !== undefined) q.since = since;
        if (until !== undefined) q.until = until;
        if (since !== undefined && until !== undefined && since > until)
          throw new ContractError('audit query', [{ path: 'until', message: `is before --since (${o.since})` }]);
        const store = await openDataStore(o.data);
        try {
          const entries = await new AuditIndex(store).query(q);
          if (o.json) printJson({ count: entries.length, query: q, entries });
          else if (entries.length === 0) process.stdout.write('no matching audit entries\n');
          else {
            const rows: (string | number)[][] = [['seq', 'at', 'kind', 'actor', 'by', 'detail']];
            for (const e of entries)
              rows.push([e.seq, new Date(e.at).toISOString(), e.kind, e.actor, e.by, describeEntry(e).slice(0, 90)]);
            process.stdout.write(
              `${table(rows, { header: true, align: ['r', 'l', 'l', 'l', 'l', 'l'] })}\n${paint.dim(`${entries.length} entries`)}\n`,
            );
          }
        } finally {
          await store.close();
        }
      },
    );
}
