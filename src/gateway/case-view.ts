import { z } from 'zod';
import { maskPaths, sensitivePaths } from '../contracts/classification.ts';
import type { Plan } from '../contracts/plan.ts';
import type { AgentContext } from '../machines/agent.ts';
import { approvalSteps, caseRules, currentStep, currentTier, type CaseContext } from '../machines/review-case.ts';
import type { LoadedModel } from '../models/loader.ts';
import type { ActorView } from '../runtime/runtime.ts';
import type { Principal } from '../httpkit/auth.ts';
import { mayView } from './projection.ts';

/** Shown in place of a sensitive value the reviewer's roles may not see. Sent back unchanged, it means "keep". */
export const MASK = '••••••';

export interface ActionView {
  index: number;
  type: string;
  description: string | null;
  /** The action type's description and inherent risk, from model.json. */
  typeDescription: string;
  inherentRisk: number;
  compensation: { type: string; description: string } | null;
  args: Record<string, unknown>;
  /** Paths in `args` that are sensitive, and whether they are masked for this reviewer. */
  sensitive: string[];
  masked: boolean;
}

export interface Permissions {
  /** Has a role of the current tier. */
  tierRole: boolean;
  mayClaim: boolean;
  mayRelease: boolean;
  mayDecide: boolean;
  mayEscalate: boolean;
  isClaimant: boolean;
  isRequester: boolean;
  alreadyApproved: boolean;
  seeSensitive: boolean;
  /** Why the main action is not available, in words. */
  blocked: string | null;
}

function planView(
  model: LoadedModel,
  plan: Plan,
  masked: boolean,
): {
  id: string;
  planner: string;
  confidence: number;
  rationale: string;
  risk: Plan['risk'];
  citedInputs: string[];
  actions: ActionView[];
} {
  return {
    id: plan.id,
    planner: plan.planner,
    confidence: plan.confidence,
    rationale: plan.rationale,
    risk: plan.risk,
    citedInputs: plan.citedInputs,
    actions: plan.actions.map((a, index) => {
      const cfg = model.config.actions[a.type];
      const impl = model.handlers.actions[a.type];
      const sensitive = impl ? sensitivePaths(impl.args) : [];
      const comp = cfg?.compensation
        ? { type: cfg.compensation, description: model.config.actions[cfg.compensation]?.description ?? '' }
        : null;
      return {
        index,
        type: a.type,
        description: a.description ?? null,
        typeDescription: cfg?.description ?? '',
        inherentRisk: cfg?.risk ?? 0,
        compensation: comp,
        args: masked ? maskPaths(a.args, sensitive, () => MASK) : a.args,
        sensitive,
        masked: masked && sensitive.length > 0,
      };
    }),
  };
}

/** Whether a diff path (`actions.0.args.iban`) names a sensitive argument of its action. */
function isSensitiveChange(model: LoadedModel, plan: Plan, path: string): boolean {
  const m = /^actions\.(\d+)\.args\.(.+)$/.exec(path);
  if (!m) return false;
  const impl = model.handlers.actions[plan.actions[Number(m[1])]?.type ?? ''];
  if (!impl) return false;
  const arg = m[2]!;
  return sensitivePaths(impl.args).some((s) => arg === s || arg.startsWith(`${s}.`) || s.startsWith(`${arg}.`));
}

/** JSON Schema of each action's arguments (the modify form is generated from it). */
export function actionSchemas(model: LoadedModel, types: readonly string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const t of new Set(types)) {
    const impl = model.handlers.actions[t];
    if (impl) out[t] = z.toJSONSchema(impl.args, { io: 'input', unrepresentable: 'any' });
  }
  return out;
}

export function permissions(p: Principal, ctx: CaseContext, state: string): Permissions {
  const grant = p.grants[ctx.model];
  const me = { id: p.id, roles: grant?.roles ?? [] };
  const open = state === 'queued' || state === 'claimed';
  const tierRole = caseRules.hasTierRole(ctx, me);
  const isRequester = !caseRules.notRequester(ctx, me);
  const alreadyApproved = !caseRules.notPreviousApprover(ctx, me);
  const isClaimant = state === 'claimed' && caseRules.isClaimant(ctx, me);
  const mayClaim = open && state === 'queued' && tierRole && !isRequester && !alreadyApproved;
  const mayDecide = isClaimant && tierRole;
  const mayEscalate = open && tierRole && caseRules.hasNextTier(ctx) && (state === 'queued' || isClaimant);
  let blocked: string | null = null;
  const tier = currentTier(ctx);
  if (!open) blocked = `The case is closed (${state}).`;
  else if (!tierRole)
    blocked = `Tier ${ctx.tier} (${tier.name}) is decided by ${tier.roles.join(', ')}; you do not hold that role.`;
  else if (isRequester) blocked = 'You filed this request: separation of duties forbids you from reviewing it.';
  else if (alreadyApproved)
    blocked = 'You gave the first approval; a four-eyes tier needs a second, different approver.';
  else if (state === 'claimed' && !isClaimant) blocked = `Claimed by ${ctx.claim?.reviewer ?? 'someone else'}.`;
  return {
    tierRole,
    mayClaim,
    mayRelease: isClaimant,
    mayDecide,
    mayEscalate,
    isClaimant,
    isRequester,
    alreadyApproved,
    seeSensitive: grant?.seeSensitive ?? false,
    blocked,
  };
}

/**
 * Whether a reviewer may open a case: a role of its current tier, or they took part in it (claimed,
 * decided, escalated it), so a decision stays visible to whoever made it.
 */
export function mayOpen(p: Principal, ctx: CaseContext): boolean {
  if (!p.grants[ctx.model]) return false;
  if (mayView(p, ctx.model, currentTier(ctx).roles)) return true;
  return ctx.history.some((h) => h.by === p.id) || (ctx.resolution?.decidedBy.includes(p.id) ?? false);
}

export interface EpisodeView {
  id: string;
  state: string;
  status: string;
  outcome: string | null;
  resolution: string | null;
  steps: {
    index: number;
    type: string;
    status: 'done' | 'running' | 'pending' | 'compensated' | 'failed';
    result: unknown;
  }[];
  error: string | null;
  caseIds: string[];
}

/**
 * The agent episode behind a case. Action results have no schema; a result field named like a
 * sensitive argument of its action (e.g. `iban`) is masked too unless `seeSensitive`.
 */
export function episodeView(view: ActorView | undefined, model?: LoadedModel, seeSensitive = true): EpisodeView | null {
  if (!view || view.kind !== 'agent') return null;
  const a = view.context as AgentContext;
  const maskResult = (type: string, result: unknown): unknown => {
    const impl = model?.handlers.actions[type];
    if (seeSensitive || !impl || !result || typeof result !== 'object') return result;
    const keys = new Set(sensitivePaths(impl.args).map((p) => p.split('.').pop()!));
    return Object.fromEntries(
      Object.entries(result as Record<string, unknown>).map(([k, v]) => [k, keys.has(k) ? MASK : v]),
    );
  };
  const actions = a.plan?.actions ?? [];
  const acting = view.state === 'acting' || view.state === 'actBackoff';
  const compensating = view.state.startsWith('compensat') || a.outcome === 'compensated';
  return {
    id: view.id,
    state: view.state,
    status: view.status,
    outcome: a.outcome,
    resolution: a.resolution,
    steps: actions.map((act, index) => {
      const done = index < a.step;
      let status: EpisodeView['steps'][number]['status'] = done
        ? 'done'
        : acting && index === a.step
          ? 'running'
          : 'pending';
      if (compensating && done && (a.compensateStep < index || a.outcome === 'compensated')) status = 'compensated';
      if (a.outcome === 'failed' && index === a.step) status = 'failed';
      return { index, type: act.type, status, result: maskResult(act.type, a.results[index] ?? null) };
    }),
    error: a.error?.message ?? null,
    caseIds: a.caseIds,
  };
}

/**
 * What happened to an edited plan after this case: the agent gated it again, and either acted (it
 * needed no higher tier than this one) or opened another case at a higher tier.
 */
function afterEdit(c: CaseContext, agent: AgentContext | undefined): { caseId: string; tier: number } | null {
  if (c.resolution?.outcome !== 'modified' || !agent) return null;
  const at = agent.caseIds.indexOf(c.caseId);
  const next = at >= 0 ? agent.caseIds[at + 1] : undefined;
  if (!next || next.includes('.operator-')) return null;
  return { caseId: next, tier: agent.decision?.outcome === 'review' ? agent.decision.tier : 0 };
}

/** Everything the case page shows, masked for the reviewer. `agent`: the episode, for what followed an edit. */
export function caseView(
  model: LoadedModel,
  view: ActorView,
  p: Principal,
  names: ReadonlyMap<string, string>,
  agent?: AgentContext,
) {
  const c = view.context as CaseContext;
  const grant = p.grants[c.model];
  const masked = !(grant?.seeSensitive ?? false);
  const tier = currentTier(c);
  const name = (id: string | null | undefined) => (id ? (names.get(id) ?? id) : null);
  const plan = planView(model, c.plan, masked);
  const edited = c.modified || (c.edits ?? []).length > 0;
  const proposed = edited ? planView(model, c.proposedPlan, masked) : null;
  const fields = masked ? maskPaths(c.observation.fields, model.sensitiveFields, () => MASK) : c.observation.fields;
  return {
    id: view.id,
    episodeId: c.episodeId,
    model: { name: model.name, version: model.config.version, description: model.config.description },
    seq: view.seq,
    state: view.state,
    status: view.status,
    closed: view.status !== 'active',
    tier: {
      n: c.tier,
      name: tier.name,
      queue: tier.queue,
      roles: tier.roles,
      priority: tier.priority,
      fourEyes: tier.fourEyes ?? false,
      ackMs: tier.ackMs,
      resolveMs: tier.resolveMs,
      /** The approvals the tier needs, in order, and the one the case waits for (1-based). */
      steps: approvalSteps(tier),
      step: currentStep(c).index + 1,
    },
    tiers: c.tiers.map((t, i) => ({
      n: i + 1,
      name: t.name,
      queue: t.queue,
      roles: t.roles,
      fourEyes: t.fourEyes ?? false,
    })),
    openedAt: c.openedAt,
    enteredTierAt: c.enteredTierAt,
    ackDueAt: c.timers.ack ?? null,
    resolveDueAt: c.timers.resolve ?? null,
    leaseDueAt: c.timers.lease ?? null,
    leaseMs: c.leaseMs,
    claim: c.claim ? { reviewer: c.claim.reviewer, name: name(c.claim.reviewer), at: c.claim.at } : null,
    approvals: c.approvals.map((id) => ({ id, name: name(id) })),
    requestedBy: c.requestedBy ? { id: c.requestedBy, name: name(c.requestedBy) } : null,
    decision: c.decision,
    plan,
    /** The planner's plan, unchanged, when reviewers edited the arguments (null otherwise). */
    proposedPlan: proposed,
    /** The plan carries reviewers' edits (made here or at an earlier tier). */
    modified: edited,
    modificationNote: c.modificationNote,
    /** Every edit: who, when, at which tier, why, the changed arguments (masked like the plan), and whose approvals it discarded. */
    edits: (c.edits ?? []).map((e) => ({
      by: e.by,
      byName: name(e.by),
      at: e.at,
      tier: e.tier,
      note: e.note,
      diff: e.diff.map((d) =>
        masked && isSensitiveChange(model, c.plan, d.path)
          ? { path: d.path, from: d.from === undefined ? undefined : MASK, to: d.to === undefined ? undefined : MASK }
          : d,
      ),
      discardedApprovals: (e.discardedApprovals ?? []).map((id) => ({ id, name: name(id) })),
    })),
    /** The gate's decision on the plan as edited: the rules and risk computed from the new arguments. */
    regate: edited ? model.gate(c.plan, c.observation) : null,
    /** The case an edited plan went on to, when the gate sent it to a higher tier. */
    regated: afterEdit(c, agent),
    observation: {
      id: c.observation.id,
      kind: c.observation.kind,
      subject: c.observation.subject,
      classification: c.observation.classification,
      dataClasses: c.observation.dataClasses,
      provenance: c.observation.provenance,
      fields,
      sensitive: model.sensitiveFields,
      masked: masked && model.sensitiveFields.length > 0,
    },
    history: c.history.map((h) => ({ ...h, byName: name(h.by) })),
    escalations: c.escalations,
    resolution: c.resolution
      ? { ...c.resolution, plan: undefined, decidedByNames: c.resolution.decidedBy.map((id) => name(id) ?? id) }
      : null,
    you: permissions(p, c, view.state),
    schemas: actionSchemas(
      model,
      c.plan.actions.map((a) => a.type),
    ),
  };
}

/**
 * Puts back the sensitive argument values a masked reviewer sent as {@link MASK}, from the case's
 * current plan, and reports any sensitive value they tried to change (they cannot see it, so they may
 * not edit it). `submitted` is the modify command's `actions`: every action with its arguments.
 */
export function unmaskActions(
  model: LoadedModel,
  current: Plan,
  submitted: unknown,
  seeSensitive: boolean,
): { actions: unknown; forbidden: string[] } {
  if (!Array.isArray(submitted)) return { actions: submitted, forbidden: [] };
  const actions = structuredClone(submitted) as unknown[];
  const forbidden: string[] = [];
  actions.forEach((a: unknown, i: number) => {
    if (!a || typeof a !== 'object') return;
    const act = a as { type?: unknown; args?: unknown };
    const impl = typeof act.type === 'string' ? model.handlers.actions[act.type] : undefined;
    if (!impl || !act.args || typeof act.args !== 'object') return;
    const original = current.actions[i];
    for (const path of sensitivePaths(impl.args)) {
      const parts = path.split('.');
      if (parts.includes('*')) continue;
      const sent = getAt(act.args, parts);
      const before = original && original.type === act.type ? getAt(original.args, parts) : undefined;
      if (sent === MASK) {
        if (before !== undefined) setAt(act.args as Record<string, unknown>, parts, before);
        else forbidden.push(`actions.${i}.args.${path}`);
      } else if (!seeSensitive && sent !== undefined && JSON.stringify(sent) !== JSON.stringify(before)) {
        forbidden.push(`actions.${i}.args.${path}`);
      }
    }
  });
  return { actions, forbidden };
}

function getAt(obj: unknown, parts: string[]): unknown {
  let cur = obj;
  for (const p of parts) {
    if (!cur || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string, unknown>)[p];
  }
  return cur;
}

function setAt(obj: Record<string, unknown>, parts: string[], value: unknown): void {
  let cur: Record<string, unknown> = obj;
  for (const p of parts.slice(0, -1)) {
    if (!cur[p] || typeof cur[p] !== 'object') cur[p] = {};
    cur = cur[p] as Record<string, unknown>;
  }
  cur[parts[parts.length - 1]!] = value;
}
