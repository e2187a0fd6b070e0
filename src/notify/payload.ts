import { z } from 'zod';
import { SCHEMA_VERSION } from '../contracts/envelope.ts';
import { WebhookEventName } from '../contracts/notifications.ts';

const Iso = z.iso.datetime();

const TierRef = z.object({
  /** 1-based. */
  number: z.number().int().min(1),
  name: z.string(),
  queue: z.string(),
  priority: z.number().int(),
});

/**
 * What a case notification says. It names the case, its queue, tier and deadlines, and the types of
 * the planned actions; it never carries observation fields or action arguments (personal data stays
 * on the node: receivers open the case in the console for the details).
 */
export const CaseNotificationData = z.object({
  caseId: z.string(),
  episodeId: z.string(),
  /** The case's version after the transition (its journal sequence number). */
  version: z.number().int().min(0),
  state: z.string(),
  /** An operator case (a failed compensation, a suspended actor, a drift alarm), not a plan review. */
  operator: z.boolean(),
  tier: TierRef,
  /** `case.escalated`: the tier the case left. */
  fromTier: TierRef.optional(),
  /** Why: `ack-deadline` / `resolve-deadline` (an SLA deadline passed) or `reviewer` (escalated by hand). */
  cause: z.enum(['ack-deadline', 'resolve-deadline', 'reviewer']).optional(),
  /** `case.sla_breached`: the deadline that passed. */
  breach: z.object({ deadline: z.enum(['ack', 'resolve']), dueAt: Iso, tier: z.number().int().min(1) }).optional(),
  /** Reviewer who acted, when a person did. */
  by: z.string().optional(),
  note: z.string().optional(),
  openedAt: Iso,
  deadlines: z.object({ ackDueAt: Iso.optional(), resolveDueAt: Iso.optional() }),
  plan: z.object({ actions: z.array(z.string()), riskScore: z.number() }),
  gate: z.object({ ruleId: z.string(), tier: z.number().int() }),
  resolution: z
    .object({
      outcome: z.string(),
      decidedBy: z.array(z.string()),
      tier: z.number().int(),
      reason: z.string().optional(),
    })
    .optional(),
});
export type CaseNotificationData = z.infer<typeof CaseNotificationData>;

/** The JSON body of every webhook delivery. */
export const WebhookPayload = z.object({
  /** The delivery's idempotency id, also sent as `Webhook-Id`: the same on every retry, replay and redelivery after a restart. */
  id: z.string().min(1),
  /** `handoff.<event>`, e.g. `handoff.case.escalated`. */
  type: z.string().regex(/^handoff\./),
  event: WebhookEventName,
  schemaVersion: z.literal(SCHEMA_VERSION),
  /** When the transition happened (the runtime's clock). */
  createdAt: Iso,
  model: z.string(),
  webhook: z.string(),
  data: CaseNotificationData,
});
export type WebhookPayload = z.infer<typeof WebhookPayload>;
