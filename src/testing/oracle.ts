/**
 * The oracle: what the runtime must show, computed from `model.json` alone, never read back from the
 * machines under test. Generated paths take their *shape* from the machines (which transitions exist)
 * but their *values* from here: deadlines (`opened + ackMs` of the tier), lease expiries, retry due
 * times (`backoffMs · 2^(attempt-1)`, capped), the retry budget, queue priorities per tier, and the
 * gate's branch for plans just below, at and just above every threshold and limit of the policy. When
 * the machines disagree with the oracle at generation, testgen says so (a bug present at generation is
 * not baked into the suite).
 */
import type { ModelConfig } from '../contracts/model-config.ts';
import type { Observation } from '../contracts/observation.ts';
import type { Plan, PlannedAction } from '../contracts/plan.ts';
import type { LoadedModel } from '../models/loader.ts';

/** A branch of the gate: `auto`, `review:<tier>` or `deny`. */
export type PlanClass = string;

type Policy = ModelConfig['policy'];

/**
 * The gate branch the policy text gives a plan (a reference reading of docs/governance.md, independent
 * of src/policy/gate.ts).
 */
export function referenceBranch(
  config: Pick<ModelConfig, 'policy' | 'actions'>,
  plan: Plan,
  observation: Observation,
): PlanClass {
  const p: Policy = config.policy;
  const n = p.tierRiskBounds.length;
  // The plan's risk is at least the inherent risk of each of its actions (unknown actions: 1).
  const risk = plan.actions.reduce((r, a) => Math.max(r, config.actions[a.type]?.risk ?? 1), plan.risk.score);
  let riskTier = n;
  for (let i = n - 1; i >= 0; i--) if (risk <= p.tierRiskBounds[i]!) riskTier = i + 1;
  let deny = false;
  const tiers: number[] = [];
  for (const a of plan.actions) {
    if (!p.allowedActions.includes(a.type) || p.deniedActions.includes(a.type)) deny = true;
    for (const l of p.limits) {
      if (l.action !== a.type) continue;
      const v = a.args[l.arg];
      if (typeof v !== 'number' || !Number.isFinite(v)) tiers.push(l.reviewTier);
      else if (l.denyAbove !== undefined && v > l.denyAbove) deny = true;
      else if (l.reviewAbove !== undefined && v > l.reviewAbove) tiers.push(l.reviewTier);
    }
  }
  if (risk > p.denyAboveRisk) deny = true;
  else if (risk > p.maxAutoRisk) tiers.push(riskTier);
  if (plan.confidence < p.minAutoConfidence)
    tiers.push(
      p.lowConfidenceTier2Below !== undefined && plan.confidence < p.lowConfidenceTier2Below
        ? Math.max(Math.min(2, n), riskTier)
        : Math.max(1, riskTier),
    );
  if (observation.dataClasses.some((c) => p.reviewDataClasses.includes(c))) tiers.push(Math.max(1, riskTier));
  if (deny) return 'deny';
  if (tiers.length) return `review:${Math.min(n, Math.max(...tiers))}`;
  return 'auto';
}

/** Retry delay after the `attempt`-th attempt failed transiently: exponential from `backoffMs`, capped. */
export function retryDelay(retry: ModelConfig['retry'], attempt: number): number {
  let d = retry.backoffMs;
  for (let i = 1; i < attempt; i++) d *= 2;
  return Math.min(retry.maxBackoffMs, d);
}

/** One plan at a threshold or limit of the policy, and the branch the policy gives it. */
export interface BoundaryPlan {
  /** Stable id: `<threshold>-<below|at|above>`, e.g. `limit-issueRefund.amount.reviewAbove-above`. */
  id: string;
  /** What is probed, for people: `confidence 0.8 = minAutoConfidence 0.8`. */
  label: string;
  plan: Plan;
  /** The policy's branch for this plan (the oracle), e.g. `review:2`. */
  expect: PlanClass;
}

const r3 = (x: number) => Math.round(x * 1000) / 1000;

/**
 * Plans just below, at and just above every threshold of the policy (confidence thresholds, risk
 * bounds, the risk ceiling) and every per-action limit (`reviewAbove`, `denyAbove`), each otherwise
 * as harmless as the model allows, so the probed rule decides. Expected branches from the oracle.
 */
export function boundaryPlans(
  model: LoadedModel,
  observation: Observation,
  episodeId: string,
  pool: PlannedAction[],
): { plans: BoundaryPlan[]; problems: string[] } {
  const p = model.config.policy;
  const out: BoundaryPlan[] = [];
  const problems: string[] = [];
  const allowed = pool.filter((a) => p.allowedActions.includes(a.type) && !p.deniedActions.includes(a.type));
  if (allowed.length === 0) return { plans: [], problems: ['oracle: no allowed action to build boundary plans from'] };
  // The least risky allowed action, so the plan's own score decides the risk.
  const calm = [...allowed].sort(
    (a, b) => (model.config.actions[a.type]?.risk ?? 1) - (model.config.actions[b.type]?.risk ?? 1),
  )[0]!;
  const floor = model.config.actions[calm.type]?.risk ?? 0;
  const seen = new Set<string>();
  const add = (id: string, label: string, actions: PlannedAction[], confidence: number, score: number) => {
    if (confidence < 0 || confidence > 1 || score < 0 || score > 1) return;
    let plan: Plan;
    try {
      plan = model.validatePlan({
        id: `${episodeId}.plan-b-${id}`,
        planner: 'handoff/testgen',
        actions,
        confidence,
        rationale: `Boundary plan: ${label}.`,
        risk: {
          score,
          factors: [{ name: 'testgen', value: score, note: 'set by the test generator at a threshold of the policy' }],
        },
        citedInputs: [],
      });
    } catch {
      return; // the action's schema refuses this value
    }
    const key = JSON.stringify([plan.actions, confidence, score]);
    if (seen.has(key)) return;
    seen.add(key);
    out.push({ id, label, plan, expect: referenceBranch(model.config, plan, observation) });
  };
  const autoConf = Math.min(1, Math.max(p.minAutoConfidence, 0.99));
  const three = (name: string, value: number, mk: (v: number) => [number, number], what: string) => {
    for (const [pos, v] of [
      ['below', r3(value - 0.001)],
      ['at', value],
      ['above', r3(value + 0.001)],
    ] as const) {
      const [c, s] = mk(v);
      add(
        `${name}-${pos}`,
        `${what} ${v} ${pos === 'at' ? '=' : pos === 'below' ? '<' : '>'} ${name} ${value}`,
        [calm],
        c,
        s,
      );
    }
  };
  // Confidence thresholds, with the lowest risk the actions allow.
  three('minAutoConfidence', p.minAutoConfidence, (v) => [v, floor], 'confidence');
  if (p.lowConfidenceTier2Below !== undefined)
    three('lowConfidenceTier2Below', p.lowConfidenceTier2Below, (v) => [v, floor], 'confidence');
  // Risk thresholds, at full confidence.
  if (p.maxAutoRisk >= floor) three('maxAutoRisk', p.maxAutoRisk, (v) => [autoConf, Math.max(v, 0)], 'risk');
  p.tierRiskBounds.forEach((b, i) => {
    if (b >= floor && b < 1) three(`tierRiskBounds.${i}`, b, (v) => [autoConf, v], 'risk');
  });
  if (p.denyAboveRisk < 1) three('denyAboveRisk', p.denyAboveRisk, (v) => [autoConf, v], 'risk');
  // Per-action limits: the action alone, at full confidence and its own risk.
  for (const l of p.limits) {
    const a = allowed.find((x) => x.type === l.action);
    if (!a) continue;
    const risk = model.config.actions[a.type]?.risk ?? 0;
    for (const [which, bound] of [
      ['reviewAbove', l.reviewAbove],
      ['denyAbove', l.denyAbove],
    ] as const) {
      if (bound === undefined) continue;
      const step = Number.isInteger(bound) && Number.isInteger(a.args[l.arg]) ? 1 : 0.01;
      for (const [pos, v] of [
        ['below', bound - step],
        ['at', bound],
        ['above', bound + step],
      ] as const) {
        const id = `limit-${l.action}.${l.arg}.${which}-${pos}`;
        add(
          id,
          `${l.action}.${l.arg} ${r3(v)} ${pos === 'at' ? '=' : pos === 'below' ? '<' : '>'} ${which} ${bound}`,
          [{ ...a, args: { ...a.args, [l.arg]: r3(v) } }],
          autoConf,
          risk,
        );
      }
    }
  }
  // Cross-check: the model's real gate must agree with the policy text.
  for (const b of out) {
    const d = model.gate(b.plan, observation);
    const got = d.outcome === 'review' ? `review:${d.tier}` : d.outcome;
    if (got !== b.expect)
      problems.push(`oracle: the gate sends the plan '${b.label}' to ${got}; the policy says ${b.expect}`);
  }
  return { plans: out, problems };
}

/** Expected case deadlines and queue priority, tracked along a path from model.json. */
export class CaseOracle {
  readonly tiers: ModelConfig['review']['tiers'];
  readonly leaseMs: number;
  tier: number;
  now: number;
  timers: Record<string, number> = {};
  constructor(config: Pick<ModelConfig, 'review'>, tier: number, openedAt: number) {
    this.tiers = config.review.tiers;
    this.leaseMs = config.review.leaseMs;
    this.tier = tier;
    this.now = openedAt;
    this.enter(tier);
  }
  private enter(tier: number) {
    const t = this.tiers[tier - 1]!;
    this.tier = tier;
    this.timers = { ack: this.now + t.ackMs, resolve: this.now + t.resolveMs };
  }
  get priority(): number {
    return this.tiers[this.tier - 1]!.priority;
  }
  /** A step: the event, the state the machine went to, and whether it went up a tier or closed. */
  step(event: string, nextState: string, closed: boolean, escalated: boolean): void {
    if (event.startsWith('timer.')) {
      const due = this.timers[event.slice(6)];
      if (due !== undefined) this.now = Math.max(this.now, due);
    }
    if (closed) {
      this.timers = {};
      return;
    }
    if (escalated) return this.enter(this.tier + 1);
    switch (event) {
      case 'claim': {
        const { ack: _a, ...rest } = this.timers;
        this.timers = { ...rest, lease: this.now + this.leaseMs };
        return;
      }
      case 'renew':
        this.timers = { ...this.timers, lease: this.now + this.leaseMs };
        return;
      default:
        if (nextState === 'queued') {
          const { lease: _l, ...rest } = this.timers;
          this.timers = rest;
        }
    }
  }
  /** Deadlines as offsets from `t0`, keys sorted. */
  due(t0: number): Record<string, number> {
    return Object.fromEntries(
      Object.entries(this.timers)
        .sort(([a], [b]) => (a < b ? -1 : 1))
        .map(([k, v]) => [k, v - t0]),
    );
  }
}

/** Expected agent retry deadline and retry budget, tracked along a path from model.json. */
export class AgentOracle {
  readonly retry: ModelConfig['retry'];
  now: number;
  failures = 0;
  timers: Record<string, number> = {};
  constructor(config: Pick<ModelConfig, 'retry'>, t0: number) {
    this.retry = config.retry;
    this.now = t0;
  }
  /**
   * A step. `transient`: the effect failed transiently; returns whether the budget allows a retry
   * (the oracle's budget: `maxAttempts` attempts in all). `clockMs`: time the step moved the clock by.
   */
  step(event: string, opts: { transient?: boolean; clockTo?: number; effectChanged?: boolean }): { retry: boolean } {
    if (event === 'timer.retry' && this.timers.retry !== undefined) this.now = Math.max(this.now, this.timers.retry);
    if (opts.clockTo !== undefined) this.now = Math.max(this.now, opts.clockTo);
    let retry = false;
    if (event === 'timer.retry') {
      this.timers = {};
    } else if (opts.transient) {
      this.failures++;
      retry = this.failures < this.retry.maxAttempts;
      this.timers = retry ? { retry: this.now + retryDelay(this.retry, this.failures) } : {};
      if (!retry) this.failures = 0;
    } else {
      this.failures = 0;
      this.timers = {};
    }
    return { retry };
  }
  due(t0: number): Record<string, number> {
    return Object.fromEntries(Object.entries(this.timers).map(([k, v]) => [k, v - t0]));
  }
}

/** How far the clock moves while every deadline of a case passes, from `tier` on (what `resolve: expired` does). */
export function expiryMs(config: Pick<ModelConfig, 'review'>, tier: number): number {
  let ms = 0;
  for (const t of config.review.tiers.slice(tier - 1)) ms += Math.min(t.ackMs, t.resolveMs);
  return ms;
}
