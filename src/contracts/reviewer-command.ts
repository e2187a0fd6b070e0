import { z } from 'zod';
import { SCHEMA_VERSION } from './envelope.ts';
/** Ids that travel in commands: bounded, printable, no spaces or control characters. */
export const CommandId = z
  .string()
  .min(1)
  .max(200, 'at most 200 characters')
  .regex(/^[^\p{Cc}\p{Cf}\p{Z}]+$/u, 'printable characters only (no spaces, control or format characters)');

/** Free text a reviewer writes: bounded, and not blank. */
function text(blank: string) {
  return z
    .string()
    .max(4000, 'at most 4,000 characters')
    .refine((s) => s.trim().length > 0, blank);
}

/** An action of the case's plan with the arguments the reviewer wants; the type must stay the same. */
export const EditedAction = z
  .object({
    type: z.string().min(1),
    args: z.record(z.string(), z.unknown()),
  })
  .strict();

/** The authenticated principal issuing a command. The gateway fills it from the session. */
export const Reviewer = z.object({
  id: CommandId,
  roles: z.array(z.string().min(1)),
});
export type Reviewer = z.infer<typeof Reviewer>;

const base = {
  schemaVersion: z.literal(SCHEMA_VERSION, { error: `unsupported schemaVersion (this node speaks ${SCHEMA_VERSION})` }),
  /** Unique per command; a replayed command id is refused. */
  commandId: CommandId,
  caseId: CommandId,
  reviewer: Reviewer,
  /** Optimistic concurrency: the case version the reviewer saw. */
  expectedVersion: z.number().int().nonnegative().optional(),
};

export const ClaimCommand = z.object({ type: z.literal('handoff.case.claim'), ...base });
export const ReleaseCommand = z.object({
  type: z.literal('handoff.case.release'),
  ...base,
  reason: z.string().max(4000, 'at most 4,000 characters').optional(),
});
export const RenewCommand = z.object({ type: z.literal('handoff.case.renew'), ...base });
export const ApproveCommand = z.object({
  type: z.literal('handoff.case.approve'),
  ...base,
  comment: z.string().max(4000, 'at most 4,000 characters').optional(),
});
/**
 * A reviewer changes arguments of the plan's actions, and says why. The planner's rationale,
 * confidence and risk are not the reviewer's to change; the runtime describes the edited actions
 * again from their new arguments, and the case records the edit as a diff.
 */
export const ModifyCommand = z.object({
  type: z.literal('handoff.case.modify'),
  ...base,
  /** Every action of the plan, in order, with its (possibly changed) arguments. */
  actions: z.array(EditedAction).min(1, 'send every action of the plan with its arguments'),
  comment: text('say why the plan was changed'),
});
export const RejectCommand = z.object({
  type: z.literal('handoff.case.reject'),
  ...base,
  reason: text('a rejection needs a reason'),
});
export const EscalateCommand = z.object({
  type: z.literal('handoff.case.escalate'),
  ...base,
  reason: text('an escalation needs a reason'),
});

export const ReviewerCommand = z.discriminatedUnion('type', [
  ClaimCommand,
  ReleaseCommand,
  RenewCommand,
  ApproveCommand,
  ModifyCommand,
  RejectCommand,
  EscalateCommand,
]);
export type ReviewerCommand = z.infer<typeof ReviewerCommand>;
export type ReviewerCommandType = ReviewerCommand['type'];
