import { DriftConfig, plannerConfigOf, type DriftConfigInput } from '../contracts/planner-config.ts';
import type { CaseOutcome } from '../contracts/review-case.ts';
import type { AuditDraft } from '../base/audit-log.ts';
import { systemClock, type Clock } from '../base/clock.ts';
import {
  modelFigures,
  newModelState,
  recordSample,
  type DriftReport,
  type DriftSample,
  type DriftState,
  type ModelFigures,
  type Tightening,
} from './drift-stats.ts';

export { driftGate } from './drift-gate.ts';
export type { DriftReport, ModelFigures } from './drift-stats.ts';

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
 *
 * This file is the monitor: the operator's workflow (recording closed cases, tightening with its
 * audit entry and hook, relaxing, reports) and the persisted state. The statistics are in
 * `drift-stats.ts`, the gate in `drift-gate.ts`.
 */

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

const RECENT = 500;

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
    const st = (this.#state.models[model] ??= newModelState(cfg));
    const tightening = recordSample(st, cfg, sample);
    this.#changed();
    if (!tightening) return undefined;
    const event: DriftEvent = { model, tightening, figures: modelFigures(model, st) };
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
    return { generatedAt: at, models: Object.entries(this.#state.models).map(([name, st]) => modelFigures(name, st)) };
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
