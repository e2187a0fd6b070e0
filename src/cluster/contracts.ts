import { z } from 'zod';
import { SCHEMA_VERSION, Traceparent } from '../contracts/envelope.ts';
import { ContractError } from '../contracts/errors.ts';
import { parseContract } from '../contracts/parse.ts';

/**
 * Contracts of the cluster's own messages (the work stream, the node-to-node subjects, the
 * membership and lease buckets). Every message a node reads from NATS is parsed with one of these
 * before any field is used: a message that fails is refused with a `contract.invalid` error naming
 * the field (request/reply), or acknowledged as terminal and written to the dead letters (the work
 * stream), never allowed to throw inside a handler (one bad message must not take a node down).
 */

/** Ids that name a placement group, an actor or a model: printable, bounded. */
const Id = z
  .string()
  .min(1)
  .max(200)
  .regex(/^[^\s*>]+$/, 'expected an id without spaces, * or >');

/** A request to start an episode (`ho.<ns>.work.start`, and the forwarded `node.<member>.start`). */
export const StartRequestContract = z.object({
  /** Absent in requests of drivers older than this field: taken as the current version. */
  schemaVersion: z
    .literal(SCHEMA_VERSION, { error: `unsupported schemaVersion (this node speaks ${SCHEMA_VERSION})` })
    .optional(),
  episodeId: Id,
  model: Id,
  signal: z.unknown().refine((s) => s !== undefined, 'a start request needs a signal'),
  traceparent: Traceparent.optional(),
});

/** A reviewer command forwarded to the owner (`node.<member>.cmd`): the command itself is parsed by the runtime. */
export const ForwardedCommandContract = z.looseObject({ caseId: Id });

/** A member's heartbeat in the membership bucket. */
export const MemberRecordContract = z.object({
  node: z.string().min(1),
  inc: z.string().min(1),
  startedAt: z.number().finite(),
  beat: z.number().int().nonnegative(),
  at: z.number().finite(),
  left: z.boolean().optional(),
});

/** A lease holder in the leases bucket. */
export const LeaseHolderContract = z.object({
  member: z.string().min(1),
  node: z.string().min(1),
  at: z.number().finite(),
});

/** Parses a cluster message; throws {@link ContractError} (`contract.invalid`, with the field's path). */
export function parseClusterMessage<S extends z.ZodType>(schema: S, input: unknown, contract: string): z.output<S> {
  return parseContract(schema, input, contract);
}

/** The same, returning undefined instead of throwing (for KV entries: an invalid one is ignored). */
export function tryParse<S extends z.ZodType>(schema: S, input: unknown): z.output<S> | undefined {
  const r = schema.safeParse(input);
  return r.success ? r.data : undefined;
}

/** A payload that is not JSON, as a contract error (the field is the whole message). */
export function notJson(contract: string, err: unknown): ContractError {
  return new ContractError(contract, [
    { path: '', message: `not JSON: ${err instanceof Error ? err.message : String(err)}` },
  ]);
}
