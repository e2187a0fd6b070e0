import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it, expect, beforeAll } from 'vitest';
import { sensitivePaths } from '../../src/contracts/classification.ts';
import { EffectError } from '../../src/contracts/errors.ts';
import { ModelConfig } from '../../src/contracts/model-config.ts';
import type { Observation } from '../../src/contracts/observation.ts';
import type { Plan } from '../../src/contracts/plan.ts';
import type { GateDecision } from '../../src/contracts/gate-decision.ts';
import type {
  EffectContext,
  LedgerEntry,
  ModelHandlers,
  Perceived,
  PlanDraft,
  StepContext,
  World,
} from '../../src/models/define.ts';
import { evaluateGate } from '../../src/policy/gate.ts';
import { Rng, drawFor } from '../../src/base/rng.ts';
import refundsHandlers from '../../models/refunds/handlers.ts';
import incidentsHandlers from '../../models/incidents/handlers.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const NOW = Date.parse('2025-06-02T09:30:00.000Z');
const SIGNALS = 2000;

function loadConfig(name: string): ModelConfig {
  return ModelConfig.parse(JSON.parse(readFileSync(join(root, 'models', name, 'model.json'), 'utf8')));
}

function stepContext(model: string, index: number, step: string, attempt = 1): StepContext {
  return { now: NOW, attempt, draw: (salt = '') => drawFor(model, index, step, attempt, salt) };
}

function toObservation(
  p: Perceived<Record<string, unknown>>,
  id: string,
): Observation & { fields: Record<string, unknown> } {
  return {
    id,
    kind: p.kind,
    subject: p.subject,
    ...(p.requestedBy ? { requestedBy: p.requestedBy } : {}),
    provenance: { source: p.source, observedAt: new Date(p.observedAt).toISOString(), transforms: [] },
    classification: 'sensitive',
    dataClasses: ['sensitive'],
    fields: p.fields,
  };
}

/** An in-memory world that counts applications per key, like the simulated world's ledger. */
class MemoryWorld implements World {
  readonly ledger = new Map<string, LedgerEntry>();
  async apply(key: string, action: string, args: Record<string, unknown>, result: unknown): Promise<void> {
    const prev = this.ledger.get(key);
    this.ledger.set(key, { key, action, args, result, at: NOW, applications: (prev?.applications ?? 0) + 1 });
  }
  async lookup(key: string): Promise<LedgerEntry | undefined> {
    return this.ledger.get(key);
  }
}

interface Episode {
  index: number;
  signal: unknown;
  perceiveAttempts: number;
  failed?: EffectError;
  observation?: Observation & { fields: Record<string, unknown> };
  draft?: PlanDraft;
  decision?: GateDecision;
}

interface Run {
  config: ModelConfig;
  episodes: Episode[];
}

async function simulate(name: string, handlers: ModelHandlers<any, any>): Promise<Run> {
  const config = loadConfig(name);
  const rng = new Rng(`models-test/${name}`);
  const episodes: Episode[] = [];
  for (let i = 0; i < SIGNALS; i++) {
    const signal = handlers.signal.parse(handlers.synthesize(rng, i));
    const ep: Episode = { index: i, signal, perceiveAttempts: 0 };
    episodes.push(ep);
    let perceived: Perceived<Record<string, unknown>> | undefined;
    for (let attempt = 1; attempt <= config.retry.maxAttempts && !perceived; attempt++) {
      ep.perceiveAttempts = attempt;
      try {
        perceived = await handlers.perceive(signal, stepContext(name, i, 'perceive', attempt));
      } catch (err) {
        if (!(err instanceof EffectError)) throw err;
        if (!err.transient || attempt === config.retry.maxAttempts) ep.failed = err;
        if (!err.transient) break;
      }
    }
    if (!perceived) continue;
    ep.observation = toObservation(perceived, `obs-${name}-${i}`);
    ep.draft = await handlers.plan(ep.observation, stepContext(name, i, 'plan'));
    const plan: Plan = { ...ep.draft, id: `plan-${name}-${i}`, planner: `${name}-rules` };
    ep.decision = evaluateGate(plan, ep.observation, config);
  }
  return { config, episodes };
}

const MODELS = [
  {
    name: 'refunds',
    handlers: refundsHandlers as ModelHandlers<any, any>,
    personal: ['customer.name', 'customer.email', 'customer.iban'],
  },
  {
    name: 'incidents',
    handlers: incidentsHandlers as ModelHandlers<any, any>,
    personal: ['onCall.name', 'onCall.phone'],
  },
];

for (const model of MODELS) {
  describe(`model ${model.name}`, () => {
    const { name, handlers } = model;
    let run: Run;
    beforeAll(async () => {
      run = await simulate(name, handlers);
    });

    it('model.json parses with ModelConfig', () => {
      const config = loadConfig(name);
      expect(config.name).toBe(name);
      expect(config.review.tiers).toHaveLength(3);
      expect(config.policy.reviewDataClasses).not.toContain('sensitive');
    });

    it('actions in model.json and handlers match one to one, compensations included', () => {
      const config = loadConfig(name);
      const declared = new Set(Object.keys(config.actions));
      const implemented = new Set(Object.keys(handlers.actions));
      expect([...implemented].sort()).toEqual([...declared].sort());
      for (const [action, spec] of Object.entries(config.actions)) {
        if (spec.compensation !== null) {
          expect(handlers.actions[spec.compensation], `compensation ${spec.compensation} of ${action}`).toBeDefined();
          expect(declared.has(spec.compensation)).toBe(true);
        }
      }
    });

    it('every action the policy names exists', () => {
      const config = loadConfig(name);
      const { policy } = config;
      const named = [...policy.allowedActions, ...policy.deniedActions, ...policy.limits.map((l) => l.action)];
      if (policy.onExpiry.fallback === 'safeAction') named.push(policy.onExpiry.action.type);
      for (const action of named) {
        expect(config.actions[action], `policy names ${action}`).toBeDefined();
        expect(handlers.actions[action], `policy names ${action}`).toBeDefined();
      }
      for (const denied of policy.deniedActions) expect(policy.allowedActions).not.toContain(denied);
      if (policy.onExpiry.fallback === 'safeAction') {
        const safe = policy.onExpiry.action;
        expect(policy.allowedActions).toContain(safe.type);
        expect(config.actions[safe.type]!.risk).toBe(0);
        expect(config.actions[safe.type]!.compensation).toBeNull();
        expect(handlers.actions[safe.type]!.args.safeParse(safe.args).success).toBe(true);
      }
    });

    it('reviewers cover every tier role, with two people where four eyes are needed', () => {
      const config = loadConfig(name);
      for (const tier of config.review.tiers) {
        const eligible = config.reviewers.filter((r) => r.roles.some((role) => tier.roles.includes(role)));
        expect(eligible.length, tier.queue).toBeGreaterThanOrEqual(tier.fourEyes ? 2 : 1);
        for (const role of tier.roles) expect(config.roles[role], role).toBeDefined();
      }
    });

    it('personal fields are marked sensitive', () => {
      const paths = sensitivePaths(handlers.fields);
      for (const p of model.personal) expect(paths).toContain(p);
    });

    it('synthesize is deterministic and produces valid, varied signals', () => {
      const a = new Rng('same');
      const b = new Rng('same');
      const first = Array.from({ length: 50 }, (_, i) => handlers.synthesize(a, i));
      const second = Array.from({ length: 50 }, (_, i) => handlers.synthesize(b, i));
      expect(second).toEqual(first);
      for (const s of first) expect(handlers.signal.safeParse(s).success).toBe(true);
      expect(new Set(first.map((s) => JSON.stringify(s))).size).toBe(50);
    });

    it('perceive and plan are deterministic for the same signal and draws', async () => {
      for (const ep of run.episodes.slice(0, 200)) {
        if (!ep.observation) continue;
        const p = await handlers.perceive(ep.signal, stepContext(name, ep.index, 'perceive', ep.perceiveAttempts));
        expect(p.fields).toEqual(ep.observation.fields);
        const again = await handlers.plan(toObservation(p, ep.observation.id), stepContext(name, ep.index, 'plan'));
        expect(again).toEqual(ep.draft);
      }
    });

    it('plans are well formed: args valid, rationale, cited inputs and risk factors', () => {
      const config = loadConfig(name);
      for (const ep of run.episodes) {
        if (!ep.draft) continue;
        const { draft } = ep;
        expect(draft.actions.length).toBeGreaterThan(0);
        for (const a of draft.actions) {
          expect(config.actions[a.type], a.type).toBeDefined();
          const parsed = handlers.actions[a.type]!.args.safeParse(a.args);
          expect(parsed.success, `${a.type} ${JSON.stringify(a.args)}: ${parsed.error?.message}`).toBe(true);
        }
        expect(draft.confidence).toBeGreaterThanOrEqual(0);
        expect(draft.confidence).toBeLessThanOrEqual(1);
        expect(draft.rationale.length).toBeGreaterThan(40);
        expect(draft.rationale).toMatch(/\d/);
        expect(draft.citedInputs.length).toBeGreaterThan(2);
        expect(draft.risk.factors.length).toBeGreaterThan(2);
        for (const f of draft.risk.factors) {
          expect(f.value).toBeGreaterThanOrEqual(0);
          expect(f.value).toBeLessThanOrEqual(1);
        }
      }
    });

    it('gate shares land in the intended ranges and every tier occurs', () => {
      const total = run.episodes.length;
      const failed = run.episodes.filter((e) => e.failed).length;
      const decided = run.episodes.filter((e) => e.decision).map((e) => e.decision!);
      expect(failed + decided.length).toBe(total);
      const share = (o: string) => decided.filter((d) => d.outcome === o).length / decided.length;
      const tiers = decided.filter((d) => d.outcome === 'review').map((d) => d.tier);
      const tierCount = (t: number) => tiers.filter((x) => x === t).length;
      const shares = { failed: failed / total, auto: share('auto'), review: share('review'), deny: share('deny') };
      console.log(
        `${name}: failed ${(shares.failed * 100).toFixed(1)}% | of planned: auto ${(shares.auto * 100).toFixed(1)}%, review ${(shares.review * 100).toFixed(1)}%, deny ${(shares.deny * 100).toFixed(1)}% | tiers 1/2/3: ${tierCount(1)}/${tierCount(2)}/${tierCount(3)}`,
      );
      expect(shares.failed).toBeGreaterThanOrEqual(0.005);
      expect(shares.failed).toBeLessThanOrEqual(0.05);
      expect(shares.auto).toBeGreaterThanOrEqual(0.5);
      expect(shares.auto).toBeLessThanOrEqual(0.75);
      expect(shares.review).toBeGreaterThanOrEqual(0.2);
      expect(shares.review).toBeLessThanOrEqual(0.45);
      expect(shares.deny).toBeGreaterThanOrEqual(0.01);
      expect(shares.deny).toBeLessThanOrEqual(0.08);
      expect(tierCount(1)).toBeGreaterThan(tierCount(2));
      expect(tierCount(2)).toBeGreaterThan(tierCount(3));
      expect(tierCount(3)).toBeGreaterThan(0);
      // Failed perception comes from permanent errors (missing order, unknown service), not exhausted retries.
      for (const e of run.episodes.filter((x) => x.failed)) expect(e.failed!.transient).toBe(false);
      expect(run.episodes.some((e) => e.perceiveAttempts > 1 && e.observation)).toBe(true);
    });

    it('effects apply exactly once when they happen; permanent failures are compensated', async () => {
      const config = loadConfig(name);
      const world = new MemoryWorld();
      let compensated = 0;
      let transientRetries = 0;
      for (const ep of run.episodes) {
        if (!ep.draft || ep.decision?.outcome === 'deny') continue;
        const done: { type: string; args: Record<string, unknown>; key: string }[] = [];
        let failedPermanently = false;
        for (const [step, action] of ep.draft.actions.entries()) {
          const impl = handlers.actions[action.type]!;
          const args = impl.args.parse(action.args);
          const key = `ep-${ep.index}/${step}`;
          let ok = false;
          for (let attempt = 1; attempt <= config.retry.maxAttempts && !ok; attempt++) {
            const ctx: EffectContext = { ...stepContext(name, ep.index, `effect-${step}`, attempt), key, world };
            const before = world.ledger.get(key)?.applications ?? 0;
            try {
              await impl.execute(args, ctx);
              ok = true;
              expect(world.ledger.get(key)?.applications).toBe(before + 1);
              expect(world.ledger.get(key)?.action).toBe(action.type);
            } catch (err) {
              expect(err).toBeInstanceOf(EffectError);
              expect(world.ledger.get(key)?.applications ?? 0).toBe(before);
              if ((err as EffectError).transient) transientRetries++;
              else break;
            }
          }
          if (!ok) {
            failedPermanently = true;
            break;
          }
          done.push({ type: action.type, args, key });
        }
        if (!failedPermanently) continue;
        for (const d of [...done].reverse()) {
          const comp = config.actions[d.type]!.compensation;
          if (!comp) continue;
          const key = `${d.key}/compensate`;
          let ok = false;
          for (let attempt = 1; attempt <= config.retry.maxAttempts && !ok; attempt++) {
            try {
              await handlers.actions[comp]!.execute(handlers.actions[comp]!.args.parse(d.args), {
                ...stepContext(name, ep.index, `compensate-${d.key}`, attempt),
                key,
                world,
              });
              ok = true;
            } catch (err) {
              expect((err as EffectError).transient).toBe(true);
            }
          }
          expect(ok).toBe(true);
          expect(world.ledger.get(key)).toMatchObject({ action: comp, applications: 1 });
          compensated++;
        }
      }
      console.log(
        `${name}: ${world.ledger.size} effects applied, ${transientRetries} transient retries, ${compensated} compensations`,
      );
      for (const entry of world.ledger.values()) expect(entry.applications).toBe(1);
      expect(transientRetries).toBeGreaterThan(0);
      expect(compensated).toBeGreaterThan(0);
    });
  });
}
