import type { TierSpec } from '../contracts/review-case.ts';
import type { CaseContext } from '../machines/review-case.ts';
import type { ChannelTransition } from '../runtime/runtime.ts';
import type { WebhookEventName } from '../contracts/notifications.ts';
import type { CaseNotificationData } from './payload.ts';

/** One thing worth telling the outside world about a case transition. */
export interface CaseNotification {
  event: WebhookEventName;
  /** Tiers (1-based) the notification concerns: the case's tier, and for an escalation the one it left. */
  tiers: number[];
  data: CaseNotificationData;
}

const iso = (ms: number) => new Date(ms).toISOString();

/** Operator cases carry a single pseudo-action (see the runtime's operator case input). */
export const isOperatorCase = (c: CaseContext): boolean =>
  c.plan.actions.some((a) => a.type === 'handoff.operator.decide');

function tierRef(c: CaseContext, n: number): CaseNotificationData['tier'] {
  const spec: TierSpec | undefined = c.tiers[n - 1];
  return { number: n, name: spec?.name ?? `tier ${n}`, queue: spec?.queue ?? '', priority: spec?.priority ?? 0 };
}

/**
 * The notifications a case transition causes, read from the history entries it added: `opened`
 * (`case.opened`, or `operator.opened` for an operator case), `escalated` (`case.escalated`, preceded
 * by `case.sla_breached` when a deadline passed), `expired` (`case.sla_breached` and
 * `case.expired`), and `case.resolved` when the case reaches a final state. Pure.
 */
export function caseNotifications(t: ChannelTransition): CaseNotification[] {
  if (t.kind !== 'case') return [];
  const c = t.context as CaseContext;
  const p = t.prev as CaseContext | undefined;
  const added = c.history.slice(p?.history.length ?? 0);
  if (added.length === 0 && t.status !== 'done') return [];
  const operator = isOperatorCase(c);
  const dueAt = typeof t.event.dueAt === 'number' ? t.event.dueAt : t.event.at;
  const deadline: 'ack' | 'resolve' | null =
    t.event.type === 'timer.ack' ? 'ack' : t.event.type === 'timer.resolve' ? 'resolve' : null;
  const base = (tier: number): CaseNotificationData => ({
    caseId: c.caseId,
    episodeId: c.episodeId,
    version: t.seq,
    state: t.state,
    operator,
    tier: tierRef(c, tier),
    openedAt: iso(c.openedAt),
    deadlines: {
      ...(c.timers.ack !== undefined ? { ackDueAt: iso(c.timers.ack) } : {}),
      ...(c.timers.resolve !== undefined ? { resolveDueAt: iso(c.timers.resolve) } : {}),
    },
    plan: { actions: c.plan.actions.map((a) => a.type), riskScore: c.decision.riskScore },
    gate: { ruleId: c.decision.ruleId, tier: c.decision.tier },
  });
  const out: CaseNotification[] = [];
  for (const h of added) {
    const extra = { ...(h.by ? { by: h.by } : {}), ...(h.note ? { note: h.note } : {}) };
    if (h.kind === 'opened') {
      out.push({
        event: operator ? 'operator.opened' : 'case.opened',
        tiers: [c.tier],
        data: { ...base(c.tier), ...extra },
      });
    } else if (h.kind === 'escalated') {
      const from = p?.tier ?? Math.max(1, c.tier - 1);
      const tiers = [from, c.tier];
      if (deadline) {
        const breach = { deadline, dueAt: iso(dueAt), tier: from } as const;
        out.push({
          event: 'case.sla_breached',
          tiers,
          data: { ...base(c.tier), ...extra, fromTier: tierRef(c, from), cause: `${deadline}-deadline`, breach },
        });
      }
      out.push({
        event: 'case.escalated',
        tiers,
        data: {
          ...base(c.tier),
          ...extra,
          fromTier: tierRef(c, from),
          cause: deadline ? `${deadline}-deadline` : 'reviewer',
        },
      });
    } else if (h.kind === 'expired') {
      const d: 'ack' | 'resolve' = deadline ?? 'resolve';
      out.push({
        event: 'case.sla_breached',
        tiers: [c.tier],
        data: {
          ...base(c.tier),
          ...extra,
          cause: `${d}-deadline`,
          breach: { deadline: d, dueAt: iso(dueAt), tier: c.tier },
        },
      });
      out.push({ event: 'case.expired', tiers: [c.tier], data: { ...base(c.tier), ...extra, cause: `${d}-deadline` } });
    }
  }
  if (t.status === 'done' && c.resolution) {
    const r = c.resolution;
    out.push({
      event: 'case.resolved',
      tiers: [c.tier],
      data: {
        ...base(c.tier),
        resolution: {
          outcome: r.outcome,
          decidedBy: r.decidedBy,
          tier: r.tier,
          ...(r.reason ? { reason: r.reason } : {}),
        },
      },
    });
  }
  return out;
}
