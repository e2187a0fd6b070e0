import type { ActorRecord } from './store.ts';

/** Marks a value stored once elsewhere in the same record (see {@link packRecord}). */
const SAME = '$same';

type CaseSnapshot = { context?: Record<string, unknown>; output?: unknown };

/**
 * The stored form of an actor record. A review case carries its proposed plan twice until a
 * reviewer modifies it (`proposedPlan` and `plan` are the same object), and once finished its
 * output is its resolution: 1.4 KB and 1.5 KB of JSON that each commit of the case would write
 * again. Stored once, with a `{ "$same": "<path>" }` marker where the copy was; {@link unpackRecord}
 * puts the shared object back. Only objects that are the same in memory are folded, so a record
 * whose copies differ is stored as it is.
 */
export function packRecord(rec: ActorRecord): ActorRecord {
  if (rec.kind !== 'case' || !rec.snapshot) return rec;
  const snap = rec.snapshot as CaseSnapshot;
  const ctx = snap.context;
  if (!ctx) return rec;
  const samePlan = ctx.proposedPlan !== undefined && ctx.proposedPlan !== null && ctx.proposedPlan === ctx.plan;
  const sameOutput = snap.output !== undefined && snap.output !== null && snap.output === ctx.resolution;
  if (!samePlan && !sameOutput) return rec;
  return {
    ...rec,
    snapshot: {
      ...snap,
      ...(samePlan ? { context: { ...ctx, proposedPlan: { [SAME]: 'plan' } } } : {}),
      ...(sameOutput ? { output: { [SAME]: 'context.resolution' } } : {}),
    },
  };
}

const isMarker = (v: unknown, path: string): boolean => typeof v === 'object' && v !== null && (v as Record<string, unknown>)[SAME] === path;

/** The record as the runtime wrote it, from its stored form (records stored before packing pass through). */
export function unpackRecord(rec: ActorRecord | undefined): ActorRecord | undefined {
  if (!rec || rec.kind !== 'case' || !rec.snapshot) return rec;
  const snap = rec.snapshot as CaseSnapshot;
  const ctx = snap.context;
  if (!ctx) return rec;
  const plan = isMarker(ctx.proposedPlan, 'plan');
  const output = isMarker(snap.output, 'context.resolution');
  if (!plan && !output) return rec;
  const context = plan ? { ...ctx, proposedPlan: ctx.plan } : ctx;
  return { ...rec, snapshot: { ...snap, context, ...(output ? { output: context.resolution } : {}) } };
}
