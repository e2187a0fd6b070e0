import { DriftConfig, plannerConfigOf, type DriftConfigInput } from '../contracts/planner-config.ts';
import type { GateDecision } from '../contracts/gate-decision.ts';
import type { Observation } from '../contracts/observation.ts';
import type { Plan } from '../contracts/plan.ts';
import type { CaseOutcome } from '../contracts/review-case.ts';
import type { AuditDraft } from '../runtime/audit-log.ts';
import { systemClock, type Clock } from '../runtime/clock.ts';
import { drawFor } from '../runtime/rng.ts';
import { riskOf, type GatePolicy } from './gate.ts';

/**
 * Drift-aware gating: the gate learns from its reviewers.
 *
 * Every review case the planner's plan went to ends approved, modified, rejected or expired. The
 * monitor keeps, per model and per deciding gate rule, how often reviewers override the agent
 * (override rate = (modified + rejected) / decided; expired cases are not decisions) and how the
 * planner's confidence matches what reviewers did (calibration buckets and the Brier score, with
 * "approved as proposed" as the positive outcome). When the override rate over the model's sliding
 * window passes its limit, the model's gate tightens: {@link driftGate} sends every plan (or every plan
 * below raised thresholds) to review until an operator relaxes it. The change is audited
 * (`drift.tightened`), the `onTightened` hook can open an operator case, and the state is kept in the
 * store's meta, so it survives a restart.
 *
 * Plans the gate runs on its own are never reviewed, so they say nothing of the planner's quality; a
 * small share of them is sent to review anyway (spot checks, rule `drift-spot-check`) so a planner
 * that drifts in its most confident plans is noticed too.
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

export interface DriftEvent {
  model: string;
  tightening: Tightening;
  figures: ModelFigures;
}

/** The store operations the monitor uses (LevelStore, or anything with meta). */
export interface MetaStore {
  getMeta<T>(key: string): Promise<T | undefined>;
  putMeta(key: string, value: unknown): Promise<void>;
}

/** The runtime operations the monitor uses. */
export interface DriftRuntime {
  onTransition(listener: (n: { id: string; kind: string; model: string; status: string }) => void): () => void;
  get(id: string): Promise<{ context: unknown } | undefined>;
  audit(drafts: AuditDraft[]): Promise<void>;
}

export interface DriftMonitorOptions {
  /** Models with their `planner.drift` settings (defaults apply when absent). */
  models?: { name: string; config: object }[];
  /** Settings per model name that win over the model's own. */
  overrides?: Record<string, DriftConfigInput>;
  /** Where the state is kept; without one, it lives in memory only. */
  store?: MetaStore;
  /** Meta key of the state. @default 'drift' */
  key?: string;
  /** @default systemClock */
  clock?: Clock;
  /** Audit sink; `attach(rt)` uses `rt.audit` when none is given. */
  audit?: (drafts: AuditDraft[]) => Promise<void>;
  /**
   * Called once when a model's gate tightens, after the audit entry is written: the place to open an
   * operator review case. May return the case id, which is kept with the tightening.
   */
  onTightened?: (event: DriftEvent) => void | string | Promise<void | string>;
  /** Which closed cases count. @default the first case of an episode (`<episode>.case-1`): later ones review a reviewer's edit */
  countCase?: (caseId: string) => boolean;
}

const BUCKETS = 10;
const RECENT = 500;

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

export class DriftMonitor {
  #state: DriftState;
  #configs = new Map<string, DriftConfig>();
  #store: MetaStore | undefined;
  #key: string;
  #clock: Clock;
  #audit: ((drafts: AuditDraft[]) => Promise<void>) | undefined;
  #onTightened: DriftMonitorOptions['onTightened'];
  #countCase: (caseId: string) => boolean;
  #recent: Set<string>;
  #pending = new Set<Promise<unknown>>();
  #writes: Promise<void> = Promise.resolve();
  #queued = false;
  #detach: (() => void) | null = null;
  /** The last failed state write, if any. */
  lastError: unknown = null;

  private constructor(opts: DriftMonitorOptions, state: DriftState | undefined) {
    this.#store = opts.store;
    this.#key = opts.key ?? 'drift';
    this.#clock = opts.clock ?? systemClock;
    this.#audit = opts.audit;
    this.#onTightened = opts.onTightened;
    this.#countCase = opts.countCase ?? ((id) => /\.case-1$/.test(id));
    this.#state = state ?? { version: 1, updatedAt: 0, models: {}, recent: [] };
    this.#recent = new Set(this.#state.recent);
    for (const m of opts.models ?? []) {
      const own = plannerConfigOf(m).drift;
      const override = opts.overrides?.[m.name];
      this.#configs.set(m.name, override ? DriftConfig.parse({ ...own, ...override }) : own);
    }
    for (const [name, o] of Object.entries(opts.overrides ?? {}))
      if (!this.#configs.has(name)) this.#configs.set(name, DriftConfig.parse(o));
    // Settings come from the models as loaded now; the persisted figures and tightening carry over.
    for (const [name, cfg] of this.#configs) if (this.#state.models[name]) this.#state.models[name]!.config = cfg;
  }

  /** Opens a monitor on its persisted state (if any) in `store`. */
  static async open(opts: DriftMonitorOptions = {}): Promise<DriftMonitor> {
    const state = opts.store ? await opts.store.getMeta<DriftState>(opts.key ?? 'drift') : undefined;
    return new DriftMonitor(opts, state?.version === 1 ? state : undefined);
  }

  /** The persisted state as it is in a store, without opening a monitor (reports). */
  static async load(store: MetaStore, key = 'drift'): Promise<DriftState | undefined> {
    const state = await store.getMeta<DriftState>(key);
    return state?.version === 1 ? state : undefined;
  }

  /** Figures of a state (for `handoff drift report` on a data folder). */
  static reportOf(state: DriftState, at = Date.now()): DriftReport {
    const m = new DriftMonitor({}, structuredClone(state));
    return m.report(at);
  }

  /** The drift settings of a model. */
  config(model: string): DriftConfig {
    return this.#configs.get(model) ?? this.#state.models[model]?.config ?? DriftConfig.parse({});
  }

  /** How the model's gate is tightened now, or undefined. */
  tightening(model: string): Tightening | undefined {
    return this.#state.models[model]?.tightened ?? undefined;
  }

  /**
   * Subscribes to the runtime: every review case that closes is read (`rt.get`) and recorded. Audit
   * entries go through `rt.audit` unless an audit sink was given. Returns the unsubscribe function.
   */
  attach(rt: DriftRuntime): () => void {
    this.#audit ??= (drafts) => rt.audit(drafts);
    const off = rt.onTransition((n) => {
      if (n.kind !== 'case' || n.status !== 'done' || !this.#countCase(n.id) || this.#recent.has(n.id)) return;
      this.#track(
        rt.get(n.id).then((view) => {
          const c = view?.context as CaseLike | undefined;
          if (!c?.resolution) return;
          this.record(c.model ?? n.model, {
            caseId: c.caseId ?? n.id,
            rule: c.decision?.ruleId ?? 'unknown',
            outcome: c.resolution.outcome,
            confidence: c.proposedPlan?.confidence ?? c.plan?.confidence ?? 0,
            at: c.resolution.at ?? this.#clock.now(),
          });
        }),
      );
    });
    this.#detach = off;
    return off;
  }

  /**
   * Records one closed case. Returns the tightening event when this case tipped the model over its
   * limit (the audit entry and the hook run in the background; `flush()` waits for them).
   */
  record(model: string, sample: DriftSample): DriftEvent | undefined {
    if (this.#recent.has(sample.caseId)) return undefined;
    this.#recent.add(sample.caseId);
    if (this.#recent.size > RECENT) this.#recent.delete(this.#recent.values().next().value!);
    const cfg = this.config(model);
    const st = (this.#state.models[model] ??= {
      config: cfg,
      window: [],
      total: counts(),
      rules: {},
      calibration: Array.from({ length: BUCKETS }, () => ({ n: 0, approved: 0, confidenceSum: 0 })),
      tightened: null,
      history: [],
    });
    const rule = (st.rules[sample.rule] ??= counts());
    if (sample.outcome === 'expired') {
      st.total.expired++;
      rule.expired++;
      this.#changed();
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
    this.#changed();

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
    const w = this.#windowFigures(st);
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
    const event: DriftEvent = { model, tightening, figures: this.#figures(model, st) };
    this.#track(this.#announce(event));
    return event;
  }

  /** An operator lifts the tightening; the window starts afresh. Audited as `drift.relaxed`. */
  async relax(model: string, by: string, note?: string): Promise<boolean> {
    const st = this.#state.models[model];
    if (!st?.tightened) return false;
    const at = this.#clock.now();
    const was = st.tightened;
    st.tightened = null;
    st.window = [];
    st.cusum = {};
    st.history.push({ at, kind: 'relaxed', by, ...(note ? { note } : {}) });
    this.#changed();
    await this.#audit?.([
      {
        at,
        kind: 'drift.relaxed',
        actor: `drift/${model}`,
        by,
        data: { model, tightenedAt: was.at, overrideRateThen: was.overrideRate, ...(note ? { note } : {}) },
      },
    ]);
    await this.flush();
    return true;
  }

  report(at = this.#clock.now()): DriftReport {
    return { generatedAt: at, models: Object.entries(this.#state.models).map(([name, st]) => this.#figures(name, st)) };
  }

  /** Waits for pending reads, audit entries and the state write. */
  async flush(): Promise<void> {
    while (this.#pending.size > 0) await Promise.allSettled([...this.#pending]);
    await this.#writes;
  }

  /** Detaches from the runtime and writes the state. Call before closing the store. */
  async close(): Promise<void> {
    this.#detach?.();
    this.#detach = null;
    await this.flush();
  }

  // ----------------------------------------------------------------------------------------------

  #windowFigures(st: ModelState): ModelFigures['window'] {
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

  #figures(model: string, st: ModelState): ModelFigures {
    return {
      model,
      config: st.config,
      tightened: st.tightened,
      window: this.#windowFigures(st),
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

  async #announce(event: DriftEvent): Promise<void> {
    const { model, tightening: t, figures } = event;
    const cfg = figures.config;
    await this.#audit?.([
      {
        at: t.at,
        kind: 'drift.tightened',
        actor: `drift/${model}`,
        by: 'drift-monitor',
        data: {
          model,
          ...(t.rule ? { rule: t.rule, cusum: t.cusum, cusumThreshold: cfg.cusumThreshold } : {}),
          overrideRate: t.overrideRate,
          maxOverrideRate: t.maxOverrideRate,
          windowOverrideRate: figures.window.overrideRate,
          samples: t.samples,
          overrides: t.overrides,
          window: cfg.window,
          minSamples: cfg.minSamples,
          brier: t.brier,
          byRule: figures.window.byRule,
          tighten: cfg.tighten,
          total: figures.total,
        },
      },
    ]);
    const operatorCase = await this.#onTightened?.(event);
    if (typeof operatorCase === 'string') {
      const st = this.#state.models[model];
      if (st?.tightened) st.tightened.operatorCase = operatorCase;
      this.#changed();
    }
  }

  #track(p: Promise<unknown>): void {
    const tracked = p.catch(() => undefined).finally(() => this.#pending.delete(tracked));
    this.#pending.add(tracked);
  }

  /** Schedules one write of the latest state; changes made meanwhile ride along with it. */
  #changed(): void {
    const store = this.#store;
    if (!store || this.#queued) return;
    this.#queued = true;
    this.#writes = this.#writes
      .then(async () => {
        this.#queued = false;
        this.#state.updatedAt = this.#clock.now();
        this.#state.recent = [...this.#recent].slice(-RECENT);
        await store.putMeta(this.#key, structuredClone(this.#state));
      })
      .catch((err: unknown) => {
        // The next change writes the whole state again; the figures in memory stay right meanwhile.
        this.lastError = err;
      });
    this.#track(this.#writes);
  }
}

/** The parts of a review case's context the monitor reads. */
interface CaseLike {
  caseId?: string;
  model?: string;
  decision?: { ruleId: string };
  proposedPlan?: { confidence: number };
  plan?: { confidence: number };
  resolution?: { outcome: CaseOutcome; at?: number } | null;
}

type Gate = (plan: Plan, observation: Observation) => GateDecision;

function toReview(decision: GateDecision, ruleId: string, tier: number, detail: string): GateDecision {
  return {
    ...decision,
    outcome: 'review',
    ruleId,
    tier,
    reasons: [detail],
    rules: [...decision.rules, { ruleId, result: 'review', tier, detail }],
  };
}

/**
 * Wraps a model's gate with what the drift monitor knows. While the model is tightened, a plan the
 * base gate would run goes to review (rule `drift-tightened`): every plan in `review-all` mode, or
 * those under the raised confidence / above the lowered risk in `thresholds` mode. Otherwise a share
 * `spotCheckRate` of auto plans, chosen by the plan id's hash, goes to review (rule `drift-spot-check`).
 * Reviews and denials of the base gate pass unchanged.
 */
export function driftGate(
  model: { name: string; config: GatePolicy & object },
  baseGate: Gate,
  monitor: DriftMonitor,
): Gate {
  const maxTier = model.config.policy.tierRiskBounds.length;
  return (plan, observation) => {
    const decision = baseGate(plan, observation);
    if (decision.outcome !== 'auto') return decision;
    const cfg = monitor.config(model.name);
    if (!cfg.enabled) return decision;
    const tier = Math.min(maxTier, cfg.tier);
    const t = monitor.tightening(model.name);
    if (t) {
      const scope = t.rule ? `plans of ${model.name} reviewed under rule ${t.rule}` : `decided plans of ${model.name}`;
      const why = `reviewers overrode ${(t.overrideRate * 100).toFixed(1)}% of the last ${t.samples} ${scope} (limit ${(t.maxOverrideRate * 100).toFixed(0)}%); the gate is tightened until an operator relaxes it`;
      if (cfg.tighten.mode === 'review-all')
        return toReview(decision, 'drift-tightened', tier, `${why}: every plan goes to review`);
      const risk = riskOf(plan, model.config.actions);
      if (plan.confidence < cfg.tighten.minAutoConfidence)
        return toReview(
          decision,
          'drift-tightened',
          tier,
          `${why}: confidence ${plan.confidence} below the tightened threshold ${cfg.tighten.minAutoConfidence}`,
        );
      if (risk > cfg.tighten.maxAutoRisk)
        return toReview(
          decision,
          'drift-tightened',
          tier,
          `${why}: risk ${Math.round(risk * 1000) / 1000} above the tightened limit ${cfg.tighten.maxAutoRisk}`,
        );
    }
    if (cfg.spotCheckRate > 0 && drawFor('drift-spot-check', model.name, plan.id) < cfg.spotCheckRate) {
      return toReview(
        decision,
        'drift-spot-check',
        tier,
        `spot check: ${(cfg.spotCheckRate * 100).toFixed(0)}% of the plans that would run on their own are reviewed, to measure the planner's quality`,
      );
    }
    return decision;
  };
}
