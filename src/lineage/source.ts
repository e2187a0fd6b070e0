import { AuditIndex } from './audit-index.ts';
import type { LedgerEntry } from '../models/define.ts';
import { HOLDS_KEY, summaryKey, type CompactionSummary, type LegalHold } from './retention-records.ts';
import type { Store } from '../runtime/store.ts';
import type { LineageSource } from './lineage.ts';

/**
 * A lineage source over a store: actor records, journals, the audit log (through an
 * {@link AuditIndex}, given or built here), the world's ledger, retention summaries and holds.
 */
export function storeLineageSource(
  store: Store,
  opts: { audit?: AuditIndex; effect?: (key: string) => Promise<LedgerEntry | undefined> } = {},
): LineageSource {
  const audit = opts.audit ?? new AuditIndex(store);
  return {
    async get(id) {
      const rec = await store.load(id);
      if (!rec) return undefined;
      return {
        id: rec.id,
        kind: rec.kind,
        model: rec.model,
        state: rec.state,
        status: rec.status,
        context: (rec.snapshot as { context?: unknown } | null)?.context,
      };
    },
    auditOf: (actors) => audit.entries(actors, Number.MAX_SAFE_INTEGER),
    journal: (id) => store.journal(id),
    ...(opts.effect ? { effect: opts.effect } : {}),
    summary: (episodeId) => store.getMeta<CompactionSummary>(summaryKey(episodeId)),
    hold: async (episodeId) => (await store.getMeta<Record<string, LegalHold>>(HOLDS_KEY))?.[episodeId],
  };
}
