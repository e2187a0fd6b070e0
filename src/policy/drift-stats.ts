import type { DriftConfig } from '../contracts/planner-config.ts';
import type { CaseOutcome } from '../contracts/review-case.ts';

/**
 * The drift monitor's statistics: per model and per deciding gate rule, the counts of decided and
 * expired cases, the sliding window of the latest decisions, the calibration buckets and the Brier
 * score, the per-rule Bernoulli CUSUM, and the test that tightens the model's gate. Pure: the monitor
 * (`drift.ts`) owns the state, its persistence, the audit and the operator's relax.
 */

/** One decided (or expired) review case, as the monitor records it. */
export interface DriftSample {
  caseId: string;
  /** The gate rule that sent the plan to review (`confidence-threshold`, `drift-spot-check` ...). */
  rule: string;
  outcome: CaseOutcome;
  /** The planner's confidence in the plan as proposed. */
  confidence: number;
  at: number;
}

interface Counts {
  decided: number;
  approved: number;
  modified: number;
  rejected: number;
  expired: number;
  confidenceSum: number;
  brierSum: number;
}

interface Bucket {
  n: number;
  approved: number;
  confidenceSum: number;
}

/** What tightening changed, and the figures that caused it. */
export interface Tightening {
  at: number;
  /** The gate rule whose CUSUM tipped it; absent when the whole window did. */
  rule?: string;
  /** The rule's CUSUM statistic when it tipped (figures are then those of the rule's current run). */
  cusum?: number;
  overrideRate: number;
  samples: number;
  overrides: number;
  maxOverrideRate: number;
  brier: number;
  mode: DriftConfig['tighten'];
  /** Operator case opened about it, when the hook returned one. */
  operatorCase?: string;
}

interface WindowEntry {
  /** Rule. */
  r: string;
  /** a(pproved) / m(odified) / r(ejected). */
  o: 'a' | 'm' | 'r';
  /** Confidence. */
  c: number;
  at: number;
}

interface ModelState {
  config: DriftConfig;
  window: WindowEntry[];
  total: Counts;
  rules: Record<string, Counts>;
  calibration: Bucket[];
  tightened: Tightening | null;
  /** Per rule: CUSUM statistic, cases and overrides since it last stood at 0. */
  cusum?: Record<string, { s: number; n: number; k: number }>;
  history: {
    at: number;
    kind: 'tightened' | 'relaxed';
    by: string;
    overrideRate?: number;
    samples?: number;
    note?: string;
  }[];
}

/** The persisted state (store meta `drift`). */
export interface DriftState {
  version: 1;
  updatedAt: number;
  models: Record<string, ModelState>;
  /** Recently recorded case ids, so a case is never counted twice. */
  recent: string[];
}

const BUCKETS = 10;

function counts(): Counts {
  return { decided: 0, approved: 0, modified: 0, rejected: 0, expired: 0, confidenceSum: 0, brierSum: 0 };
}

const r4 = (x: number) => Math.round(x * 10_000) / 10_000;

export interface RuleFigures {
  rule: string;
  decided: number;
  approved: number;
  modified: number;
  rejected: number;
  expired: number;
  overrideRate: number;
  meanConfidence: number;
  brier: number;
  /** The rule's CUSUM statistic now (the gate tightens at `cusumThreshold`). */
  cusum: number;
}

export interface ModelFigures {
  model: string;
  config: DriftConfig;
  tightened: Tightening | null;
  window: {
    samples: number;
    overrides: number;
    overrideRate: number;
    brier: number;
    byRule: Record<string, { samples: number; overrides: number; overrideRate: number }>;
  };
  total: Omit<RuleFigures, 'rule' | 'cusum'>;
  rules: RuleFigures[];
  calibration: { bucket: string; n: number; meanConfidence: number; approvalRate: number }[];
  history: ModelState['history'];
}

export interface DriftReport {
  generatedAt: number;
  models: ModelFigures[];
}

function figuresOf(c: Counts): Omit<RuleFigures, 'rule' | 'cusum'> {
  const decided = c.decided;
  return {
    decided,
    approved: c.approved,
    modified: c.modified,
    rejected: c.rejected,
    expired: c.expired,
    overrideRate: decided ? r4((c.modified + c.rejected) / decided) : 0,
    meanConfidence: decided ? r4(c.confidenceSum / decided) : 0,
    brier: decided ? r4(c.brierSum / decided) : 0,
  };
}

/** A model's state before its first case. */
export function newModelState(config: DriftConfig): ModelState {
  return {
    config,
    window: [],
    total: counts(),
    rules: {},
    calibration: Array.from({ length: BUCKETS }, () => ({ n: 0, approved: 0, confidenceSum: 0 })),
    tightened: null,
    history: [],
  };
}

/**
 * Adds one closed case to a model's figures. Returns the tightening when this case tipped the model
 * over its limit (the window's override rate, or a rule's CUSUM); it is then also in `st.tightened`
 * and the model's history.
 */
export function recordSample(st: ModelState, cfg: DriftConfig, sample: DriftSample): Tightening | undefined {
  const rule = (st.rules[sample.rule] ??= counts());
  if (sample.outcome === 'expired') {
    st.total.expired++;
    rule.expired++;
    return undefined;
  }
  const approved = sample.outcome === 'approved' ? 1 : 0;
  const conf = Math.min(1, Math.max(0, sample.confidence));
  for (const c of [st.total, rule]) {
    c.decided++;
    c[sample.outcome]++;
    c.confidenceSum += conf;
    c.brierSum += (conf - approved) ** 2;
  }
  const b = st.calibration[Math.min(BUCKETS - 1, Math.floor(conf * BUCKETS))]!;
  b.n++;
  b.approved += approved;
  b.confidenceSum += conf;
  st.window.push({
    r: sample.rule,
    o: sample.outcome === 'approved' ? 'a' : sample.outcome === 'modified' ? 'm' : 'r',
    c: conf,
    at: sample.at,
  });
  if (st.window.length > cfg.window) st.window.splice(0, st.window.length - cfg.window);

  // Per rule, a Bernoulli CUSUM: each override adds ln(p1/p0), each approval ln((1-p1)/(1-p0)),
  // floored at 0. It stays near 0 while the rule's override rate is acceptable (p0) and climbs
  // steadily once it is at the limit (p1) or beyond, whatever came before: old, good cases do not
  // dilute a change the way they do in a window.
  const p1 = Math.min(0.999, Math.max(0.002, cfg.maxOverrideRate));
  const p0 = Math.min(p1 * 0.99, Math.max(0.001, cfg.acceptableOverrideRate ?? p1 / 3));
  const cus = ((st.cusum ??= {})[sample.rule] ??= { s: 0, n: 0, k: 0 });
  const overridden = 1 - approved;
  cus.s = Math.max(0, cus.s + (overridden ? Math.log(p1 / p0) : Math.log((1 - p1) / (1 - p0))));
  if (cus.s === 0) [cus.n, cus.k] = [0, 0];
  else [cus.n, cus.k] = [cus.n + 1, cus.k + overridden];

  if (!cfg.enabled || st.tightened) return undefined;
  const w = windowFigures(st);
  const modelWide = w.samples >= cfg.minSamples && w.overrideRate > cfg.maxOverrideRate;
  const ruleAlarm = modelWide
    ? undefined
    : cus.s >= cfg.cusumThreshold && cus.n >= cfg.minRuleSamples
      ? cus
      : undefined;
  if (!modelWide && !ruleAlarm) return undefined;
  const tightening: Tightening = {
    at: sample.at,
    ...(ruleAlarm
      ? {
          rule: sample.rule,
          cusum: r4(ruleAlarm.s),
          overrideRate: r4(ruleAlarm.k / ruleAlarm.n),
          samples: ruleAlarm.n,
          overrides: ruleAlarm.k,
        }
      : { overrideRate: w.overrideRate, samples: w.samples, overrides: w.overrides }),
    maxOverrideRate: cfg.maxOverrideRate,
    brier: w.brier,
    mode: cfg.tighten,
  };
  st.tightened = tightening;
  st.history.push({
    at: sample.at,
    kind: 'tightened',
    by: 'drift-monitor',
    overrideRate: tightening.overrideRate,
    samples: tightening.samples,
    ...(tightening.rule ? { note: `rule ${tightening.rule}` } : {}),
  });
  return tightening;
}

/** The figures of a model's sliding window. */
export function windowFigures(st: ModelState): ModelFigures['window'] {
  const byRule: ModelFigures['window']['byRule'] = {};
  let overrides = 0;
  let brier = 0;
  for (const e of st.window) {
    const o = e.o === 'a' ? 0 : 1;
    overrides += o;
    brier += (e.c - (1 - o)) ** 2;
    const r = (byRule[e.r] ??= { samples: 0, overrides: 0, overrideRate: 0 });
    r.samples++;
    r.overrides += o;
  }
  for (const r of Object.values(byRule)) r.overrideRate = r4(r.overrides / r.samples);
  const n = st.window.length;
  return { samples: n, overrides, overrideRate: n ? r4(overrides / n) : 0, brier: n ? r4(brier / n) : 0, byRule };
}

/** All figures of a model, for reports and the tightening event. */
export function modelFigures(model: string, st: ModelState): ModelFigures {
  return {
    model,
    config: st.config,
    tightened: st.tightened,
    window: windowFigures(st),
    total: figuresOf(st.total),
    rules: Object.entries(st.rules)
      .map(([rule, c]) => ({ rule, ...figuresOf(c), cusum: r4(st.cusum?.[rule]?.s ?? 0) }))
      .sort((a, b) => b.decided - a.decided),
    calibration: st.calibration.map((b, i) => ({
      bucket: `${(i / BUCKETS).toFixed(1)}-${((i + 1) / BUCKETS).toFixed(1)}`,
      n: b.n,
      meanConfidence: b.n ? r4(b.confidenceSum / b.n) : 0,
      approvalRate: b.n ? r4(b.approved / b.n) : 0,
    })),
    history: st.history,
  };
}
