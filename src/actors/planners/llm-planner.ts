import pino, { type Logger } from 'pino';
import { EffectError } from '../../contracts/errors.ts';
import type { Observation } from '../../contracts/observation.ts';
import type { Plan, PlannedAction } from '../../contracts/plan.ts';
import { LlmEndpointConfig, plannerConfigOf, type LlmEndpointConfigInput } from '../../contracts/planner-config.ts';
import type { StepContext } from '../../models/define.ts';
import type { LoadedModel } from '../../models/loader.ts';
import { applyScreen, FALLBACK_FACTOR, screen } from '../../policy/injection-screen.ts';
import { CircuitBreaker } from '../../base/circuit-breaker.ts';
import { systemClock, type Clock } from '../../base/clock.ts';
import { ChatClient } from './llm-client.ts';
import { promptMessages, toolsetOf } from './llm-prompt.ts';
import { parseReply, planOfReply, type PlanSource } from './llm-reply.ts';
import { SUBMIT_TOOL, truncate, type ChatResponse, type Toolset } from './llm-wire.ts';
import { rulePlanner, type Planner } from './planner.ts';

/**
 * A planner that asks an LLM, over any OpenAI-compatible Chat Completions endpoint (Ollama, vLLM,
 * llama.cpp's server, a hosted API).
 *
 * Protocol. The model's allowed actions are offered as tools whose parameters are the JSON Schema of
 * each action's zod argument contract; a `submit_plan` tool takes the confidence, the rationale, the
 * risk factors and the cited inputs. The LLM calls the action tools in order, then `submit_plan` once
 * (servers without tool support may answer with one JSON object instead). The observation goes in as
 * JSON between delimiters with a per-request nonce, marked as untrusted data; sensitive fields are
 * replaced by reference tokens that are filled back in here, in-process.
 *
 * What comes back is checked like any plan: each action against its argument contract, sensitive
 * arguments against the values on file (an IBAN the LLM made up is refused), then `model.validatePlan`.
 * A reply that fails is re-asked with the problem named (`maxRepairs` times). Then:
 * - some valid actions: a plan with confidence 0, a high risk and a `planner-fallback` factor, so the
 *   gate routes it to review (never executed on its own), with the failure in the rationale;
 * - no valid action: a permanent `EffectError` (`planner.no_valid_plan`), the episode fails with it.
 *
 * The endpoint: each HTTP attempt has a timeout; 429, 5xx, timeouts and network errors are retried
 * with exponential backoff (a `Retry-After` header wins); a circuit breaker opens after consecutive
 * failures and fails fast (transient: the runtime's plan retry takes over) until its cool-down. The
 * API key only ever goes into the `Authorization` header: it is not logged, not part of any error
 * message and not in the plan.
 *
 * This file is the planner's loop (ask, check, re-ask, fall back); the prompt is built in
 * `llm-prompt.ts`, the endpoint is called by `llm-client.ts` (its span in `llm-span.ts`), the reply is
 * read and checked in `llm-reply.ts`, the protocol's shapes are in `llm-wire.ts`.
 */

export interface LlmPlannerOptions {
  /** Endpoint settings (`planner.llm` of `model.json`). */
  config: LlmEndpointConfigInput;
  /** Time source of the circuit breaker's cool-down. @default systemClock */
  clock?: Clock;
  /** @default globalThis.fetch */
  fetch?: typeof fetch;
  /** @default a pino logger on stderr at HANDOFF_LOG_LEVEL (default `warn`) */
  logger?: Logger;
  /** Where `apiKeyEnv` is looked up. @default process.env */
  env?: Record<string, string | undefined>;
  /** Waits between HTTP retries. @default setTimeout */
  sleep?: (ms: number) => Promise<void>;
  /** Jitter source in [0, 1). @default Math.random */
  random?: () => number;
  /**
   * Used when the endpoint cannot be reached (retries spent, circuit open): its plan is returned with
   * the LLM's unavailability noted. Without it, the failure is transient and the runtime retries.
   */
  fallback?: Planner;
}

export { FALLBACK_FACTOR };

export class LlmPlanner implements Planner {
  readonly name: string;
  /** The endpoint settings, API key left out. */
  readonly config: Omit<LlmEndpointConfig, 'apiKey'>;
  readonly breaker: CircuitBreaker;
  /** Counters for tests and dashboards. */
  readonly stats = { requests: 0, httpRetries: 0, repairs: 0, fallbacks: 0, failures: 0 };
  #hasKey: boolean;
  #client: ChatClient;
  #log: Logger;
  #fallback: Planner | undefined;
  /** Its own plans pass `model.validatePlan`; a fallback's are returned as they come, so they count too. */
  get validatesPlans(): boolean {
    return !this.#fallback || this.#fallback.validatesPlans === true;
  }
  #tools = new WeakMap<LoadedModel, Toolset>();
  /** What a plan of a reply takes from this planner. */
  #source: PlanSource;

  constructor(opts: LlmPlannerOptions) {
    const { apiKey, ...config } = LlmEndpointConfig.parse(opts.config);
    const env = opts.env ?? process.env;
    const key = apiKey ?? env[config.apiKeyEnv] ?? undefined;
    this.#hasKey = Boolean(key);
    this.config = config;
    this.name = `llm:${config.model}`;
    this.#log =
      opts.logger ??
      pino(
        { level: process.env.HANDOFF_LOG_LEVEL ?? 'warn', base: { app: 'handoff', component: 'llm-planner' } },
        pino.destination(2),
      );
    this.#fallback = opts.fallback;
    this.breaker = new CircuitBreaker(
      `llm:${new URL(config.baseUrl).host}`,
      opts.clock ?? systemClock,
      config.circuitBreaker,
    );
    this.#client = new ChatClient({
      config,
      apiKey: key,
      keySource: apiKey ? 'the planner config (apiKey)' : `the environment variable ${config.apiKeyEnv}`,
      fetch: opts.fetch ?? globalThis.fetch.bind(globalThis),
      log: this.#log,
      ...(opts.sleep ? { sleep: opts.sleep } : {}),
      random: opts.random ?? Math.random,
      breaker: this.breaker,
      stats: this.stats,
    });
    this.#source = { name: this.name, maxConfidence: config.maxConfidence, redact: (s) => this.#redact(s) };
  }

  /** Keeps the key out of `JSON.stringify(planner)` and `console.log(planner)`. */
  toJSON(): Record<string, unknown> {
    return { name: this.name, config: this.config, apiKey: this.#hasKey ? '[REDACTED]' : null };
  }
  [Symbol.for('nodejs.util.inspect.custom')](): Record<string, unknown> {
    return this.toJSON();
  }

  async plan(model: LoadedModel, episodeId: string, observation: Observation, ctx: StepContext): Promise<Plan> {
    const screened = screen(observation, model);
    const toolset = this.#toolsFor(model);
    const messages = promptMessages(model, observation, toolset, screened);
    let lastIssues: string[] = [];
    let best: PlannedAction[] = [];
    const rounds = this.config.maxRepairs + 1;
    for (let round = 1; round <= rounds; round++) {
      let reply: ChatResponse;
      try {
        reply = await this.#client.complete(messages, toolset, {
          episodeId,
          round,
          ...(ctx.traceparent ? { traceparent: ctx.traceparent } : {}),
        });
      } catch (err) {
        if (this.#fallback && err instanceof EffectError && err.transient)
          return this.#fromFallback(model, episodeId, observation, ctx, err);
        this.stats.failures++;
        throw err;
      }
      const parsed = parseReply(reply, toolset, model);
      const outcome = planOfReply(parsed, model, episodeId, observation, ctx, this.#source);
      if ('plan' in outcome) {
        let plan = applyScreen(outcome.plan, screened, model);
        if (parsed.submission?.injectionSuspected && !screened.flagged) {
          plan = applyScreen(
            plan,
            { flagged: true, hits: [], reason: 'the planner (LLM) reports that the observation tries to instruct it' },
            model,
          );
        }
        return plan;
      }
      lastIssues = outcome.issues;
      if (outcome.validActions.length > 0) best = outcome.validActions;
      this.#log.warn({ episodeId, round, issues: lastIssues.slice(0, 5) }, 'LLM reply is not a usable plan');
      if (round < rounds) {
        this.stats.repairs++;
        messages.push({
          role: 'user',
          content: `Your previous reply could not be used: ${truncate(lastIssues.join('; '), 1500)}. Reply again in full: call the action tools with arguments that match their schemas, then call ${SUBMIT_TOOL} exactly once.`,
        });
      }
    }
    const problem = truncate(lastIssues.join('; '), 600);
    if (best.length > 0) {
      this.stats.fallbacks++;
      const plan = this.#reviewPlan(
        model,
        episodeId,
        ctx,
        best,
        `The LLM planner's replies were not usable after ${rounds} attempt(s) (last problem: ${problem}). The actions below are the valid ones it proposed; they need a reviewer's decision and never run on their own.`,
      );
      return applyScreen(plan, screened, model);
    }
    this.stats.failures++;
    throw new EffectError(`LLM planner: no valid action after ${rounds} attempt(s): ${problem}`, {
      transient: false,
      code: 'planner.no_valid_plan',
    });
  }

  /** The tools offered for a model, built once per model. */
  #toolsFor(model: LoadedModel): Toolset {
    const cached = this.#tools.get(model);
    if (cached) return cached;
    const set = toolsetOf(model);
    this.#tools.set(model, set);
    return set;
  }

  /** Removes the API key from any text that might carry it. */
  #redact(s: string): string {
    return this.#client.redact(s);
  }

  /** A plan that can only go to review: confidence 0, risk at the deny ceiling, the failure stated. */
  #reviewPlan(
    model: LoadedModel,
    episodeId: string,
    ctx: StepContext,
    actions: PlannedAction[],
    rationale: string,
  ): Plan {
    const { policy } = model.config;
    return model.validatePlan(
      {
        id: `${episodeId}.plan-${ctx.attempt}`,
        planner: `${model.name}/${this.name}@${model.config.version}`,
        actions,
        confidence: 0,
        rationale: this.#redact(rationale),
        risk: {
          score: Math.min(1, policy.denyAboveRisk),
          factors: [{ name: FALLBACK_FACTOR, value: 1, note: truncate(this.#redact(rationale), 300) }],
        },
        citedInputs: [],
      },
      'Plan',
    );
  }

  async #fromFallback(
    model: LoadedModel,
    episodeId: string,
    observation: Observation,
    ctx: StepContext,
    err: EffectError,
  ): Promise<Plan> {
    this.stats.fallbacks++;
    const plan = await this.#fallback!.plan(model, episodeId, observation, ctx);
    return {
      ...plan,
      rationale: truncate(
        `(LLM planner unavailable: ${this.#redact(err.message)}; planned by ${this.#fallback!.name}.) ${plan.rationale}`,
        8000,
      ),
    };
  }
}

/**
 * The planner a model's `planner` block asks for: the LLM planner for `kind: 'llm'`, otherwise the
 * model's rule-based planner. For `Runtime.open({ planners })`.
 */
export function plannerFor(model: LoadedModel, opts: Omit<LlmPlannerOptions, 'config'> = {}): Planner {
  const cfg = plannerConfigOf(model);
  if (cfg.kind === 'llm' && cfg.llm) return new LlmPlanner({ ...opts, config: cfg.llm });
  return rulePlanner;
}
