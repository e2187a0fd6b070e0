import { z } from 'zod';

/**
 * The optional `planner` block of `model.json`: which planner reasons for the model, how to reach an
 * LLM endpoint, how observations are screened, and when drift tightens the gate. Every field has a
 * default, so `"planner": {}` is the rule-based planner with screening and drift monitoring on.
 */

/** Any OpenAI-compatible Chat Completions endpoint: Ollama, vLLM, llama.cpp server, or a hosted one. */
export const LlmEndpointConfig = z.object({
  /** Base URL up to and including the version, e.g. `http://localhost:11434/v1`; `/chat/completions` is appended. */
  baseUrl: z.url({ protocol: /^https?$/, error: 'expected an http(s) URL such as http://localhost:11434/v1' }),
  /** Model name as the server knows it, e.g. `qwen2.5:7b-instruct`. */
  model: z.string().min(1),
  /**
   * The API key itself. Prefer `apiKeyEnv`: a key in `model.json` ends up in version control. Never
   * logged, never part of an error message or a plan.
   */
  apiKey: z.string().min(1).optional(),
  /** Name of the environment variable holding the API key. @default 'HANDOFF_LLM_API_KEY' (none needed for a local Ollama) */
  apiKeyEnv: z
    .string()
    .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'an environment variable name')
    .default('HANDOFF_LLM_API_KEY'),
  /** Per HTTP attempt, headers and body included. @default 30000 */
  timeoutMs: z.number().int().positive().default(30_000),
  /** HTTP retries after the first attempt, on 429, 5xx, timeouts and network errors. @default 2 */
  maxRetries: z.number().int().min(0).max(10).default(2),
  /** First retry delay; doubles each retry, with ±20 % jitter. A Retry-After header wins. @default 500 */
  backoffMs: z.number().int().positive().default(500),
  /** Longest wait before a retry; a Retry-After beyond it ends the attempt (transient failure). @default 30000 */
  maxBackoffMs: z.number().int().positive().default(30_000),
  /** New requests after a reply that is not a usable plan (malformed JSON, bad arguments). @default 2 */
  maxRepairs: z.number().int().min(0).max(5).default(2),
  /** @default 0 (as deterministic as the server allows) */
  temperature: z.number().min(0).max(2).default(0),
  /** Upper bound of the reply's tokens, when the server needs one. */
  maxTokens: z.number().int().positive().optional(),
  /** The model's self-assessed confidence is capped at this. @default 1 */
  maxConfidence: z.number().min(0).max(1).default(1),
  /** Circuit breaker around the endpoint. */
  circuitBreaker: z
    .object({
      /** Consecutive failed HTTP attempts that open the circuit. @default 5 */
      failureThreshold: z.number().int().min(1).default(5),
      /** Time the circuit stays open before one trial request. @default 30000 */
      cooldownMs: z.number().int().positive().default(30_000),
    })
    .default({ failureThreshold: 5, cooldownMs: 30_000 }),
});
export type LlmEndpointConfig = z.infer<typeof LlmEndpointConfig>;
export type LlmEndpointConfigInput = z.input<typeof LlmEndpointConfig>;

/** Prompt-injection screening of observations (see `src/policy/injection-screen.ts`). */
export const ScreeningConfig = z.object({
  /** @default true */
  enabled: z.boolean().default(true),
  /** Review tier a screened hit asks for (raised to the plan's own tier when higher). @default 1 */
  tier: z.number().int().min(1).default(1),
  /** Observation fields (dotted paths) that are never screened, e.g. ids from trusted systems. @default [] */
  skipFields: z.array(z.string().min(1)).default([]),
});
export type ScreeningConfig = z.infer<typeof ScreeningConfig>;

/** When reviewers keep overriding the planner, the gate tightens (see `src/policy/drift.ts`). */
export const DriftConfig = z.object({
  /** @default true */
  enabled: z.boolean().default(true),
  /** Override rate ((modified + rejected) / decided) over the window above which the gate tightens. @default 0.3 */
  maxOverrideRate: z.number().min(0).max(1).default(0.3),
  /** Sliding window: the last N decided review cases of the model. @default 50 */
  window: z.number().int().min(1).default(50),
  /** No tightening before this many decided cases are in the window. @default 20 */
  minSamples: z.number().int().min(1).default(20),
  /**
   * Each gate rule also runs a CUSUM change detector on its own cases (e.g. the spot checks of plans
   * that would have run on their own): it tightens the gate when the rule's override rate has moved
   * from acceptable to the limit, without waiting for the window to fill with new cases.
   * The override rate regarded as normal. @default maxOverrideRate / 3
   */
  acceptableOverrideRate: z.number().min(0).max(1).optional(),
  /** CUSUM level at which a rule tightens the gate (log-likelihood ratio; higher: slower, fewer false alarms). @default 4 */
  cusumThreshold: z.number().positive().default(4),
  /** A rule's CUSUM needs at least this many cases in its current run. @default 5 */
  minRuleSamples: z.number().int().min(1).default(5),
  /**
   * Share of plans the gate would run on their own that go to review anyway (spot checks), so the
   * monitor also sees how good the plans are that nobody reviews. Chosen by the plan id's hash. @default 0.05
   */
  spotCheckRate: z.number().min(0).max(1).default(0.05),
  /**
   * What tightening means. `review-all` (the default) sends every plan of the model to review;
   * `thresholds` raises minAutoConfidence and lowers maxAutoRisk to the values given.
   */
  tighten: z
    .discriminatedUnion('mode', [
      z.object({ mode: z.literal('review-all') }),
      z.object({
        mode: z.literal('thresholds'),
        minAutoConfidence: z.number().min(0).max(1),
        maxAutoRisk: z.number().min(0).max(1),
      }),
    ])
    .default({ mode: 'review-all' }),
  /** Review tier of plans sent to review by tightening or spot checks. @default 1 */
  tier: z.number().int().min(1).default(1),
});
export type DriftConfig = z.infer<typeof DriftConfig>;
export type DriftConfigInput = z.input<typeof DriftConfig>;

export const PlannerConfig = z
  .object({
    /** `rules`: the model's own `handlers.plan`; `llm`: the LLM planner with `llm` settings. @default 'rules' */
    kind: z.enum(['rules', 'llm']).default('rules'),
    llm: LlmEndpointConfig.optional(),
    screening: ScreeningConfig.default({ enabled: true, tier: 1, skipFields: [] }),
    drift: DriftConfig.default({
      enabled: true,
      maxOverrideRate: 0.3,
      window: 50,
      minSamples: 20,
      cusumThreshold: 4,
      minRuleSamples: 5,
      spotCheckRate: 0.05,
      tighten: { mode: 'review-all' },
      tier: 1,
    }),
  })
  .refine((p) => p.kind !== 'llm' || p.llm !== undefined, {
    message: "kind 'llm' needs an llm block (baseUrl, model)",
    path: ['llm'],
  });
export type PlannerConfig = z.infer<typeof PlannerConfig>;

/**
 * The planner block of a loaded model's config, defaults applied. Reads `config.planner` whether or
 * not `ModelConfig` declares it yet; an absent block gives the defaults.
 */
export function plannerConfigOf(model: { config: object }): PlannerConfig {
  let parsed = cache.get(model.config);
  if (!parsed) {
    const raw = (model.config as { planner?: unknown }).planner;
    parsed = PlannerConfig.parse(raw ?? {});
    cache.set(model.config, parsed);
  }
  return parsed;
}
const cache = new WeakMap<object, PlannerConfig>();
