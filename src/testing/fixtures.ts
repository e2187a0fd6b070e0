/**
 * Test fixtures derived from a model: a signal its real perceiver accepts, and one plan per branch of
 * its real gate (auto, each review tier, deny), found by asking the gate itself. Also the reviewers
 * who may (and may not) act at each tier. Everything here is deterministic in the model.
 */
import { perceive } from '../actors/perceivers/perceive.ts';
import { plan as rulePlan } from '../actors/planners/rule-planner.ts';
import type { Observation } from '../contracts/observation.ts';
import type { Plan, PlannedAction } from '../contracts/plan.ts';
import type { Reviewer } from '../contracts/reviewer-command.ts';
import type { TierSpec } from '../contracts/review-case.ts';
import type { EffectContext, LedgerEntry, StepContext, World } from '../models/define.ts';
import type { LoadedModel } from '../models/loader.ts';
import { Rng } from '../base/rng.ts';
import { boundaryPlans, type BoundaryPlan, type PlanClass } from './oracle.ts';

export type { PlanClass } from './oracle.ts';

/**
 * The draw a step sees when a test scripts it to succeed: models simulate flaky systems with
 * `ctx.draw(...) < p`, and a draw this high keeps that simulated flakiness out of a scripted path
 * (failures are scripted explicitly instead).
 */
export const BENIGN_DRAW = 0.999;

/** Start of simulated time in generated tests (a Monday, 08:00 UTC). */
export const T0 = Date.UTC(2026, 0, 5, 8, 0, 0);

export const EPISODE_ID = 'ep-qa-1';

/** The operator tier the runtime uses when a model declares none (see `Runtime`). */
export const DEFAULT_OPERATOR_TIER: TierSpec = {
  name: 'operator',
  queue: 'operators',
  roles: ['operator'],
  ackMs: 30 * 60_000,
  resolveMs: 4 * 3600_000,
  priority: 9,
  fourEyes: false,
};

export interface TierReviewers {
  /** May claim and decide at this tier (never the requester); at least two, for four-eyes tiers. */
  allowed: Reviewer[];
  /** Holds none of the tier's roles. */
  outsider: Reviewer;
}

export interface Fixtures {
  model: string;
  version: string;
  episodeId: string;
  t0: number;
  signal: unknown;
  /** What the model's real perceiver makes of the signal (at `t0`). */
  observation: Observation;
  /** Who filed the request (separation of duties), or null. */
  requestedBy: string | null;
  /** One plan per reachable gate branch. */
  plans: Record<PlanClass, Plan>;
  /**
   * Reviewer edits of each plan, by the gate branch the edited plan takes when it is gated again:
   * `regated['review:1']['review:2']` is the review-1 plan with one argument changed so that it
   * needs tier 2 (an amount raised past a review limit, say). Only arguments change: the planner's
   * id, rationale, confidence and risk stay, as the runtime enforces.
   */
  regated: Record<PlanClass, Record<PlanClass, Plan>>;
  /** The modify command's `actions` for each plan: the edit that keeps its branch, else any edit. */
  edits: Record<PlanClass, { type: string; args: Record<string, unknown> }[]>;
  /** A plan a reviewer might send that breaks the plan contract (an unknown action). */
  invalidPlan: unknown;
  reviewers: TierReviewers[];
  operator: Reviewer;
  /** Branches of the gate no plan could reach, and other findings. */
  warnings: string[];
  /** Plans just below, at and just above each threshold and limit of the policy, and the branch model.json gives. */
  boundaries?: BoundaryPlan[];
}

export function benignContext(now: number, attempt = 1): StepContext {
  return { now, attempt, draw: () => BENIGN_DRAW };
}

/** The gate branch a decision stands for. */
export function classOf(decision: { outcome: string; tier: number }): PlanClass {
  return decision.outcome === 'review' ? `review:${decision.tier}` : decision.outcome;
}

/** All gate branches a model declares: auto, each review tier, deny. */
export function allClasses(model: LoadedModel): PlanClass[] {
  return ['auto', ...model.config.review.tiers.map((_, i) => `review:${i + 1}`), 'deny'];
}

class ScratchWorld implements World {
  readonly entries = new Map<string, LedgerEntry>();
  async apply(key: string, action: string, args: Record<string, unknown>, result: unknown): Promise<void> {
    const e = this.entries.get(key);
    this.entries.set(
      key,
      e ? { ...e, applications: e.applications + 1 } : { key, action, args, result, at: 0, applications: 1 },
    );
  }
  async lookup(key: string): Promise<LedgerEntry | undefined> {
    return this.entries.get(key);
  }
}

/** Runs an action and its compensation against a scratch world: does the real handler succeed? */
async function probe(model: LoadedModel, action: PlannedAction, t0: number): Promise<boolean> {
  const impl = model.handlers.actions[action.type];
  if (!impl || !impl.args.safeParse(action.args).success) return false;
  const world = new ScratchWorld();
  const ctx = (key: string): EffectContext => ({ ...benignContext(t0), key, world });
  try {
    const result = await impl.execute(action.args, ctx('probe/0'));
    const comp = model.config.actions[action.type]?.compensation;
    if (comp) {
      const cimpl = model.handlers.actions[comp];
      if (!cimpl) return false;
      await cimpl.execute({ ...action.args, original: result ?? null }, ctx('probe/0/compensate'));
    }
    return true;
  } catch {
    // Refused (EffectError) or broken for these arguments: either way not a step a path can rely on.
    return false;
  }
}

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}

function slug(cls: PlanClass): string {
  return cls.replace(/[^a-z0-9]+/gi, '');
}

interface Candidate {
  index: number;
  signal: unknown;
  observation: Observation;
  plan: Plan;
}

/**
 * Derives the fixtures of a model. The signal is one of the model's own synthesized signals, chosen
 * so that its perceiver and planner succeed, its plan has compensable steps, and (when the model's
 * signals carry one) it names a requester, so separation of duties can be exercised.
 */
export async function buildFixtures(
  model: LoadedModel,
  opts: { t0?: number; episodeId?: string; maxSignals?: number } = {},
): Promise<Fixtures> {
  const t0 = opts.t0 ?? T0;
  const ep = opts.episodeId ?? EPISODE_ID;
  const policy = model.config.policy;
  const warnings: string[] = [];

  // 1. Signals the model's perceiver and planner handle.
  const candidates: Candidate[] = [];
  const maxSignals = opts.maxSignals ?? 400;
  for (let i = 0; i < maxSignals && candidates.length < 80; i++) {
    let signal: unknown;
    try {
      signal = model.handlers.signal.parse(model.handlers.synthesize(new Rng(`handoff-testgen/${model.name}/${i}`), i));
      const observation = await perceive(model, ep, signal, benignContext(t0));
      const plan = await rulePlan(model, ep, observation, benignContext(t0));
      candidates.push({ index: i, signal, observation, plan });
    } catch {
      continue;
    }
  }
  if (candidates.length === 0)
    throw new Error(`model ${model.name}: none of ${maxSignals} synthesized signals could be perceived and planned`);

  // 2. Actions whose real handlers (and compensations) succeed.
  const usable = new Map<string, boolean>();
  const isUsable = async (a: PlannedAction) => {
    const k = JSON.stringify(a);
    if (!usable.has(k)) usable.set(k, await probe(model, a, t0));
    return usable.get(k)!;
  };
  const allowed = (a: PlannedAction) =>
    policy.allowedActions.includes(a.type) && !policy.deniedActions.includes(a.type);
  const compensable = (a: PlannedAction) => !!model.config.actions[a.type]?.compensation;
  const reviewerIds = new Set(model.config.reviewers.map((r) => r.id));

  const pool: PlannedAction[] = [];
  for (const c of candidates) for (const a of c.plan.actions) pool.push(a);
  const extras: PlannedAction[] = [];
  for (const a of pool) if (allowed(a) && !extras.some((x) => x.type === a.type) && (await isUsable(a))) extras.push(a);
  extras.sort((a, b) => Number(compensable(b)) - Number(compensable(a)));

  /** Up to three actions, compensable ones first, so that every saga branch can happen. */
  const longList = (own: PlannedAction[]) => {
    const long = [...own];
    for (const a of extras) if (long.length < 3 && !long.some((l) => l.type === a.type)) long.push(a);
    return [...long.filter(compensable), ...long.filter((a) => !compensable(a))];
  };

  const risks = new Set<number>([0, policy.maxAutoRisk, policy.denyAboveRisk, 1]);
  for (const b of [policy.maxAutoRisk, ...policy.tierRiskBounds, policy.denyAboveRisk]) {
    risks.add(round(Math.min(1, b + 0.01)));
    risks.add(round(Math.max(0, b - 0.01)));
  }
  const riskList = [...risks].filter((r) => r >= 0 && r <= 1).sort((a, b) => a - b);
  const confidences = new Set<number>([
    0.95,
    policy.minAutoConfidence,
    round(Math.max(0, policy.minAutoConfidence - 0.01)),
  ]);
  if (policy.lowConfidenceTier2Below !== undefined)
    confidences.add(round(Math.max(0, policy.lowConfidenceTier2Below - 0.01)));
  confidences.add(0.05);
  const confList = [...confidences].filter((c) => c >= 0 && c <= 1).sort((a, b) => b - a);
  const wanted = allClasses(model);

  /** The first plan (confidence high to low, risk low to high) of these actions that takes each gate branch. */
  const branches = (actions: PlannedAction[], observation: Observation, denyOnly = false) => {
    const found = new Map<PlanClass, { plan: Plan; confidence: number; score: number; rule: string }>();
    for (const confidence of confList)
      for (const score of riskList) {
        let plan: Plan;
        try {
          plan = model.validatePlan({
            id: `${ep}.plan`,
            planner: 'handoff/testgen',
            actions,
            confidence,
            rationale: 'x',
            risk: {
              score,
              factors: [
                { name: 'testgen', value: score, note: 'risk set by the test generator to reach a gate branch' },
              ],
            },
            citedInputs: [],
          });
        } catch {
          continue;
        }
        const decision = model.gate(plan, observation);
        const cls = classOf(decision);
        if (!found.has(cls) && wanted.includes(cls) && (!denyOnly || cls === 'deny'))
          found.set(cls, { plan, confidence, score, rule: decision.ruleId });
      }
    return found;
  };

  // 3. The main signal: the one whose (extended) plan takes the most gate branches; then a requester
  // (ideally one of the model's reviewers, for separation of duties), then the longest own plan.
  let best: { c: Candidate; rank: number; own: PlannedAction[]; long: PlannedAction[] } | undefined;
  for (const c of candidates) {
    const own: PlannedAction[] = [];
    for (const a of c.plan.actions) if (allowed(a) && (await isUsable(a))) own.push(a);
    if (own.length === 0) continue;
    const long = longList(own);
    const requester = c.observation.requestedBy;
    const rank =
      branches(long, c.observation).size * 100 +
      (requester ? 4 : 0) +
      (requester && reviewerIds.has(requester) ? 2 : 0) +
      Math.min(long.length, 3) * 2 +
      (own.length === c.plan.actions.length ? 1 : 0);
    if (!best || rank > best.rank) best = { c, rank, own, long };
  }
  if (!best) throw new Error(`model ${model.name}: no synthesized plan has an action whose handler succeeds`);
  const main = best.c;

  // 4. Action lists to try, most representative first; variants that can only be denied last.
  const lists: { actions: PlannedAction[]; denyOnly: boolean }[] = [{ actions: best.long, denyOnly: false }];
  if (JSON.stringify(best.own) !== JSON.stringify(best.long)) lists.push({ actions: best.own, denyOnly: false });
  for (const a of extras) lists.push({ actions: [a], denyOnly: false });
  for (const a of pool)
    if (!allowed(a) && !lists.some((l) => l.actions.at(-1)?.type === a.type))
      lists.push({ actions: [...best.long.slice(0, 1), a], denyOnly: true });
  for (const limit of policy.limits) {
    if (limit.denyAbove === undefined) continue;
    const a = pool.find((p) => p.type === limit.action);
    if (a) lists.push({ actions: [{ ...a, args: { ...a.args, [limit.arg]: limit.denyAbove + 1 } }], denyOnly: true });
  }

  const plans: Record<PlanClass, Plan> = {};
  for (const list of lists)
    for (const [cls, f] of branches(list.actions, main.observation, list.denyOnly)) {
      if (plans[cls]) continue;
      plans[cls] = {
        ...f.plan,
        id: `${ep}.plan-${slug(cls)}`,
        rationale:
          `Test plan for the gate's ${cls} branch: ${f.plan.actions.map((a) => a.type).join(', ')} ` +
          `at confidence ${f.confidence} and risk ${f.score} (${f.rule}).`,
      };
    }
  for (const cls of wanted) {
    if (plans[cls]) continue;
    const what =
      cls === 'auto'
        ? 'runs without review'
        : cls === 'deny'
          ? 'is denied'
          : `goes to review tier ${cls.slice(7)} (${model.config.review.tiers[Number(cls.slice(7)) - 1]?.name})`;
    warnings.push(`gate: no plan ${what}: with this policy the gate never takes its '${cls}' branch`);
  }
  const expiry = policy.onExpiry;
  if (expiry.fallback === 'safeAction' && !(await isUsable(expiry.action)))
    warnings.push(
      `policy.onExpiry: the safe action '${expiry.action.type}' does not succeed against the model's handlers`,
    );

  const regated: Fixtures['regated'] = {};
  const edits: Fixtures['edits'] = {};
  for (const [cls, p] of Object.entries(plans)) {
    const byTarget = reviewerEdits(model, p, (edited) => classOf(model.gate(edited, main.observation)));
    regated[cls] = sortKeys(Object.fromEntries([...byTarget].map(([target, actions]) => [target, { ...p, actions }])));
    const keep = byTarget.get(cls) ?? [...byTarget.values()][0];
    if (keep) edits[cls] = keep.map((a) => ({ type: a.type, args: a.args }));
    else if (cls.startsWith('review:'))
      warnings.push(
        `modify: no argument of the '${cls}' plan can be edited validly; its modify paths are not generated`,
      );
  }
  const reference = plans['review:1'] ?? Object.values(plans)[0]!;
  const invalidPlan = {
    ...reference,
    id: `${reference.id}.invalid`,
    actions: [{ type: '__not_an_action__', args: {} }],
  };

  const boundary = boundaryPlans(model, main.observation, ep, [...best.long, ...extras, ...pool]);
  warnings.push(...boundary.problems);

  const requestedBy = main.observation.requestedBy ?? null;
  const reviewers = model.config.review.tiers.map((tier, i) => tierReviewers(model, tier, i, requestedBy));
  const opTier = model.config.operator ?? DEFAULT_OPERATOR_TIER;
  const operator: Reviewer = { id: 'qa-operator-1', roles: [opTier.roles[0]!] };

  return {
    model: model.name,
    version: model.config.version,
    episodeId: ep,
    t0,
    signal: main.signal,
    observation: main.observation,
    requestedBy,
    plans: sortKeys(plans),
    regated: sortKeys(regated),
    edits: sortKeys(edits),
    invalidPlan,
    reviewers,
    operator,
    warnings,
    boundaries: boundary.plans,
  };
}

function tierReviewers(model: LoadedModel, tier: TierSpec, index: number, requestedBy: string | null): TierReviewers {
  const allowed: Reviewer[] = model.config.reviewers
    .filter((r) => r.id !== requestedBy && r.roles.some((role) => tier.roles.includes(role)))
    .map((r) => ({ id: r.id, roles: [...r.roles] }));
  for (let n = 1; allowed.length < 2; n++) allowed.push({ id: `qa-${tier.roles[0]}-${n}`, roles: [tier.roles[0]!] });
  // Ordered steps: at least two holders of each step's roles (one approves, one is the other kind of principal).
  for (const step of tier.steps ?? [])
    for (let n = 1; allowed.filter((r) => r.roles.some((role) => step.roles.includes(role))).length < 2; n++)
      if (!allowed.some((r) => r.id === `qa-${step.roles[0]}-${n}`))
        allowed.push({ id: `qa-${step.roles[0]}-${n}`, roles: [step.roles[0]!] });
  const other = model.config.reviewers.find(
    (r) => r.id !== requestedBy && !r.roles.some((role) => tier.roles.includes(role)),
  );
  const outsider: Reviewer = other
    ? { id: other.id, roles: [...other.roles] }
    : { id: `qa-outsider-t${index + 1}`, roles: ['qa-outsider'] };
  return { allowed, outsider };
}

function sortKeys<T>(o: Record<string, T>): Record<string, T> {
  return Object.fromEntries(Object.entries(o).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/**
 * The reviewer identity (id and roles) a test uses for `id` at `tier`: the tier's reviewers first,
 * then the requester (with a role of the tier, so separation of duties is what refuses them), then
 * anyone the fixtures know. The generator and the harness both use this, so they agree.
 */
export function identify(model: LoadedModel, fx: Fixtures, tier: number, id: string): Reviewer {
  const spec = model.config.review.tiers[tier - 1] ?? model.config.review.tiers[0]!;
  const here = fx.reviewers[tier - 1];
  const found = here?.allowed.find((r) => r.id === id) ?? (here?.outsider.id === id ? here.outsider : undefined);
  if (found) return found;
  if (id === fx.requestedBy) {
    const own = model.config.reviewers.find((r) => r.id === id);
    const roles = own && own.roles.some((r) => spec.roles.includes(r)) ? [...own.roles] : [spec.roles[0]!];
    return { id, roles };
  }
  for (const t of fx.reviewers) {
    const r = t.allowed.find((x) => x.id === id) ?? (t.outsider.id === id ? t.outsider : undefined);
    if (r) return r;
  }
  if (id === fx.operator.id) return fx.operator;
  // Principals the generator makes up: a holder of one role only, someone with no role.
  if (id.startsWith('qa-only-')) return { id, roles: [id.slice(8)] };
  if (id === 'qa-norole') return { id, roles: ['qa-none'] };
  return { id, roles: [spec.roles[0]!] };
}

/** The payload of a reviewer command in generated paths (`cls`: gate branch of the case's plan). */
export function commandPayload(fx: Fixtures, type: string, cls: PlanClass, invalid = false): Record<string, unknown> {
  switch (type) {
    case 'modify':
      return {
        actions: invalid ? [{ type: '__not_an_action__', args: {} }] : (fx.edits[cls] ?? Object.values(fx.edits)[0]),
        comment: 'edited by a test reviewer',
      };
    case 'reject':
      return { reason: 'rejected by a test reviewer' };
    case 'escalate':
      return { reason: 'needs a higher tier' };
    case 'release':
      return { reason: 'handing it back' };
    case 'approve':
      return { comment: 'checked by a test reviewer' };
    default:
      return {};
  }
}

/**
 * Reviewer edits of `plan`, one per gate branch they lead to (`branchOf`): single-argument changes
 * (a number lowered or raised, set at and just past each limit of the policy, a flag flipped, a text
 * extended) that the action's schema accepts, as the runtime applies them. First found per branch.
 */
export function reviewerEdits(
  model: LoadedModel,
  plan: Plan,
  branchOf: (edited: Plan) => PlanClass,
): Map<PlanClass, PlannedAction[]> {
  const limits = model.config.policy.limits;
  const tweaks = (type: string, key: string, v: unknown): unknown[] => {
    if (typeof v === 'number') {
      const bounds = limits
        .filter((l) => l.action === type && l.arg === key)
        .flatMap((l) =>
          [l.reviewAbove, l.denyAbove].filter((b): b is number => b !== undefined).flatMap((b) => [b, b + 1]),
        );
      return Number.isInteger(v)
        ? [v - 1, Math.floor(v / 2), v + 1, ...bounds]
        : [Math.round(v * 50) / 100, Math.round((v - 0.01) * 100) / 100, ...bounds];
    }
    if (typeof v === 'boolean') return [!v];
    if (typeof v === 'string') return [`${v} (edited)`, `${v}x`];
    return [];
  };
  const found = new Map<PlanClass, PlannedAction[]>();
  for (const [i, action] of plan.actions.entries())
    for (const [key, value] of Object.entries(action.args))
      for (const next of tweaks(action.type, key, value)) {
        const sent = plan.actions.map((a, j) => ({
          type: a.type,
          args: j === i ? { ...a.args, [key]: next } : a.args,
        }));
        let actions: PlannedAction[];
        try {
          actions = model.editActions(plan, sent);
        } catch {
          continue; // not a valid value for this argument
        }
        if (JSON.stringify(actions) === JSON.stringify(plan.actions)) continue;
        const branch = branchOf({ ...plan, actions });
        if (!found.has(branch)) found.set(branch, actions);
      }
  return found;
}

/** The gate branch whose fixture plan `plan` is (same id and actions), or null for an edited plan. */
export function fixtureClassOf(fx: Pick<Fixtures, 'plans'>, plan: Plan | null): PlanClass | null {
  if (!plan) return null;
  const same = Object.entries(fx.plans).find(
    ([, p]) => p.id === plan.id && JSON.stringify(p.actions) === JSON.stringify(plan.actions),
  );
  return same ? same[0] : null;
}
