import type { GateDecision, RuleResult } from '../contracts/gate-decision.ts';
import type { FreshnessConfig } from '../contracts/model-config.ts';
import type { Observation } from '../contracts/observation.ts';

/** Rule id of a decision on data older than its source's limit. */
export const FRESHNESS_STALE = 'freshness.stale';
/** Rule id of a decision on data within its source's limit. */
export const FRESHNESS_FRESH = 'freshness.fresh';

/** How old an observation was at one moment, against its source's limit. */
export interface FreshnessCheck {
  source: string;
  observedAt: string;
  /** When the check was made (the `at` of the event that caused it), epoch ms. */
  checkedAt: number;
  /** `checkedAt` minus `observedAt`; 0 when the source's clock runs ahead of ours. */
  ageMs: number;
  /** The source's limit; null when none applies (the data never goes stale). */
  maxAgeMs: number | null;
  stale: boolean;
}

/** The limit that applies to `source`: its own, else the model's default, else none. */
export function maxAgeFor(config: FreshnessConfig, source: string): number | null {
  return config.sources[source]?.maxAgeMs ?? config.defaultMaxAgeMs ?? null;
}

/**
 * Whether `observation` is fresh at `now`. Pure: time comes from the caller (an event's `at`). A
 * limit is inclusive (age equal to the limit is fresh); an `observedAt` that does not parse counts as
 * stale when a limit applies, since its age cannot be shown to be within it.
 */
export function checkFreshness(
  observation: Pick<Observation, 'provenance'>,
  config: FreshnessConfig,
  now: number,
): FreshnessCheck {
  const { source, observedAt } = observation.provenance;
  const maxAgeMs = maxAgeFor(config, source);
  const observed = Date.parse(observedAt);
  const ageMs = Number.isFinite(observed) ? Math.max(0, now - observed) : Number.POSITIVE_INFINITY;
  return { source, observedAt, checkedAt: now, ageMs, maxAgeMs, stale: maxAgeMs !== null && ageMs > maxAgeMs };
}

/** `1h 02m`, `14m 03s`, `950ms`: ages as people read them. */
export function formatAge(ms: number): string {
  if (!Number.isFinite(ms)) return 'of unknown age';
  if (ms < 1000) return `${Math.round(ms)}ms`;
  const s = Math.floor(ms / 1000);
  const pad = (n: number) => String(n).padStart(2, '0');
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${pad(s % 60)}s`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h ${pad(Math.floor(s / 60) % 60)}m`;
  return `${Math.floor(s / 86_400)}d ${pad(Math.floor(s / 3600) % 24)}h`;
}

/** The gate rule's result for a check; `note` is appended to a stale detail (what happens next). */
export function freshnessRule(check: FreshnessCheck, tier: number, note?: string): RuleResult {
  const limit = check.maxAgeMs === null ? 'no limit applies' : `limit ${formatAge(check.maxAgeMs)}`;
  if (!check.stale) {
    return {
      ruleId: FRESHNESS_FRESH,
      result: 'pass',
      detail: `data from '${check.source}' is ${formatAge(check.ageMs)} old (${limit})`,
    };
  }
  const age = Number.isFinite(check.ageMs) ? `${formatAge(check.ageMs)} old` : 'of unknown age';
  return {
    ruleId: FRESHNESS_STALE,
    result: 'review',
    tier,
    detail: `stale data: the observation from '${check.source}' (observed ${check.observedAt}) is ${age} at ${new Date(check.checkedAt).toISOString()}, above its ${limit}${note ? `; ${note}` : ''}`,
  };
}

/** The decision carries a stale-data finding (whatever else decided it). */
export function flagsStale(decision: GateDecision | null | undefined): boolean {
  return decision?.rules.some((r) => r.ruleId === FRESHNESS_STALE && r.result !== 'pass') ?? false;
}

/**
 * Adds the freshness rule to a gate's decision (one made without it). Stale data never runs on its
 * own: a deny stays a deny (the finding is recorded beside it); anything else goes to review, at least
 * at the tier the plan needs anyway, with `freshness.stale` as the deciding rule and its reason
 * first, since every other rule judged data that may no longer hold.
 */
export function withFreshness(decision: GateDecision, check: FreshnessCheck, note?: string): GateDecision {
  const tier = Math.max(1, decision.tier);
  const rule = freshnessRule(check, tier, note);
  const base = { ...decision, rules: [...decision.rules, rule] };
  if (!check.stale || decision.outcome === 'deny') return base;
  return {
    ...base,
    outcome: 'review',
    ruleId: FRESHNESS_STALE,
    tier,
    reasons: [rule.detail, ...(decision.outcome === 'review' ? decision.reasons : [])],
  };
}
