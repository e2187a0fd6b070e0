import { z } from 'zod';
import { SCHEMA_VERSION } from './envelope.ts';
import { Plan } from './plan.ts';

/** The authenticated principal issuing a command. The gateway fills it from the session. */
export const Reviewer = z.object({
  id: z.string().min(1),
  roles: z.array(z.string().min(1)),
});
export type Reviewer = z.infer<typeof Reviewer>;

const base = {
  schemaVersion: z.literal(SCHEMA_VERSION, { error: `unsupported schemaVersion (this node speaks ${SCHEMA_VERSION})` }),
  /** Unique per command; a replayed command id is refused. */
  commandId: z.string().min(1),
  caseId: z.string().min(1),
  reviewer: Reviewer,
  /** Optimistic concurrency: the case version the reviewer saw. */
  expectedVersion: z.number().int().nonnegative().optional(),
};

export const ClaimCommand = z.object({ type: z.literal('handoff.case.claim'), ...base });
export const ReleaseCommand = z.object({ type: z.literal('handoff.case.release'), ...base, reason: z.string().optional() });
export const RenewCommand = z.object({ type: z.literal('handoff.case.renew'), ...base });
export const ApproveCommand = z.object({ type: z.literal('handoff.case.approve'), ...base, comment: z.string().optional() });
export const ModifyCommand = z.object({
  type: z.literal('handoff.case.modify'),
  ...base,
  plan: Plan,
  comment: z.string().min(1, 'say why the plan was changed'),
});
export const RejectCommand = z.object({ type: z.literal('handoff.case.reject'), ...base, reason: z.string().min(1, 'a rejection needs a reason') });
export const EscalateCommand = z.object({ type: z.literal('handoff.case.escalate'), ...base, reason: z.string().min(1, 'an escalation needs a reason') });

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
