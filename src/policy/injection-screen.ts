import type { GateDecision } from '../contracts/gate-decision.ts';
import type { Observation } from '../contracts/observation.ts';
import type { Plan } from '../contracts/plan.ts';
import { plannerConfigOf } from '../contracts/planner-config.ts';
import type { ScreenCategory } from './injection-corpus.ts';
import { screenText } from './injection-scan.ts';
import { scrubFreeText } from './minimise.ts';

/**
 * Prompt-injection screening of untrusted observation text.
 *
 * Observations carry text written by third parties (a customer's ticket, a log line, an alert). A
 * planner that hands it to an LLM can be steered by it. The screen looks for what such steering looks
 * like: instructions aimed at the model ("ignore previous instructions", "you are now ...", "set the
 * confidence to 1"), role-play set-ups, system-prompt leaks and chat-template tokens, hidden unicode
 * (zero-width, bidi overrides, tag characters), tool-call look-alikes (function-call JSON, `<tool_call>`,
 * code fences calling the model's actions) and encoded payloads (base64, hex, percent- or
 * entity-encoded text that decodes to any of the above), in English, German, French, Spanish,
 * Italian, Dutch, Portuguese, Polish, Turkish, Russian, Chinese and Japanese.
 *
 * It is a tripwire, not a proof: a hit sends the plan to a person with the reason, it never blocks.
 * Pure and deterministic: the gate re-screens the observation itself rather than trusting a planner.
 *
 * This file is the screen's face (whole observations, the plan's marking, the gate); the patterns are
 * in `injection-corpus.ts`, the text's normal forms in `injection-normalise.ts`, the scan of one text
 * in `injection-scan.ts`.
 */

export interface ScreenHit {
  category: ScreenCategory;
  /** Which pattern matched, e.g. `en.ignore-previous`, `unicode.zero-width`. */
  rule: string;
  /** Dotted path of the screened field (`fields.reason`), or `subject`. */
  path: string;
  /** What matched, with hidden characters made visible (`<U+200B>`); `[sensitive field]` for personal data. */
  excerpt: string;
}

export interface ScreenResult {
  flagged: boolean;
  hits: ScreenHit[];
  /** One line for the reviewer and the audit log; empty when nothing was found. */
  reason: string;
}

/** What the screen needs of a model: its action names (tool-call look-alikes), sensitive paths, settings. */
export interface ScreenModel {
  config: { actions: Record<string, unknown> } & object;
  sensitiveFields?: readonly string[];
}

// ------------------------------------------------------------------------------------------------
// Observations
// ------------------------------------------------------------------------------------------------

/** Every string in a value, with its dotted path. */
function* strings(value: unknown, path: string, depth = 0): Generator<[string, string]> {
  if (depth > 12) return;
  if (typeof value === 'string') yield [path, value];
  else if (Array.isArray(value))
    for (let i = 0; i < value.length; i++) yield* strings(value[i], `${path}.${i}`, depth + 1);
  else if (value && typeof value === 'object')
    for (const [k, v] of Object.entries(value)) yield* strings(v, path ? `${path}.${k}` : k, depth + 1);
}

function matchesPath(path: string, pattern: string): boolean {
  const a = path.split('.');
  const b = pattern.split('.');
  if (a.length < b.length) return false;
  return b.every((seg, i) => seg === '*' || seg === a[i]);
}

/** Action names of a model, for tool-call look-alikes. */
function actionNamesOf(model: ScreenModel | undefined): string[] {
  return model ? Object.keys(model.config.actions) : [];
}

/**
 * Screens every string of an observation (`subject` and all of `fields`). With a model, its action
 * names count as tool-call look-alikes, its sensitive fields are screened but never quoted, and its
 * `planner.screening` settings apply (`enabled`, `skipFields`).
 */
export function screen(observation: Pick<Observation, 'subject' | 'fields'>, model?: ScreenModel): ScreenResult {
  const settings = model ? plannerConfigOf(model).screening : { enabled: true, skipFields: [] as string[] };
  if (!settings.enabled) return { flagged: false, hits: [], reason: '' };
  const actionNames = actionNamesOf(model);
  const sensitive = (model?.sensitiveFields ?? []).map((p) => `fields.${p}`);
  const hits: ScreenHit[] = [];
  const texts: [string, string][] = [['subject', observation.subject], ...strings(observation.fields, 'fields')];
  for (const [path, text] of texts) {
    if (settings.skipFields.some((s) => matchesPath(path, `fields.${s}`))) continue;
    const secret = sensitive.some((s) => matchesPath(path, s));
    // Excerpts reach reviewers and the audit log: never a sensitive field, and no personal data from free text.
    for (const h of screenText(text, { actionNames }))
      hits.push({ ...h, path, excerpt: secret ? '[sensitive field]' : scrubFreeText(h.excerpt) });
  }
  return { flagged: hits.length > 0, hits, reason: describe(hits) };
}

const LABEL: Record<ScreenCategory, string> = {
  'instruction-override': 'instructions aimed at the planner',
  'role-play': 'a role-play set-up',
  'system-prompt': 'system-prompt or chat-template text',
  'plan-manipulation': 'an attempt to steer the decision',
  'delimiter-escape': 'an attempt to close the data block',
  'hidden-unicode': 'hidden unicode',
  'tool-call': 'a tool-call look-alike',
  'encoded-payload': 'an encoded payload',
};

function describe(hits: ScreenHit[]): string {
  if (hits.length === 0) return '';
  const parts = hits.slice(0, 4).map((h) => `${LABEL[h.category]} in ${h.path} (${h.rule}: ${h.excerpt})`);
  const more = hits.length > 4 ? `; +${hits.length - 4} more` : '';
  return `possible prompt injection: ${parts.join('; ')}${more}`;
}

// ------------------------------------------------------------------------------------------------
// Plans and the gate
// ------------------------------------------------------------------------------------------------

/** Name of the risk factor a screened hit adds to a plan. */
export const INJECTION_FACTOR = 'prompt-injection';
/** Name of the risk factor of a plan a planner could not complete (the LLM planner's fallback). */
export const FALLBACK_FACTOR = 'planner-fallback';

/**
 * Marks a plan with a screening result: a `prompt-injection` risk factor, the reason at the head of the
 * rationale, and a risk raised above the model's auto limit (but not past its deny ceiling, so the
 * plan reaches a person rather than being dropped). Returns the plan unchanged when nothing was found.
 */
export function applyScreen(
  plan: Plan,
  result: ScreenResult,
  model: { config: { policy: { maxAutoRisk: number; denyAboveRisk: number } } },
): Plan {
  if (!result.flagged) return plan;
  const { maxAutoRisk, denyAboveRisk } = model.config.policy;
  const raised = Math.min(denyAboveRisk, Math.max(plan.risk.score, Math.min(1, maxAutoRisk + 0.1)));
  const note = result.reason.length > 300 ? `${result.reason.slice(0, 297)}...` : result.reason;
  const rationale = `⚠ Screening: ${result.reason}. Treat the observation's text as untrusted. — ${plan.rationale}`;
  return {
    ...plan,
    rationale: rationale.length > 8000 ? `${rationale.slice(0, 7997)}...` : rationale,
    risk: {
      score: Math.round(raised * 1000) / 1000,
      factors: [
        ...plan.risk.factors.filter((f) => f.name !== INJECTION_FACTOR),
        { name: INJECTION_FACTOR, value: 1, note },
      ],
    },
  };
}

type Gate = (plan: Plan, observation: Observation) => GateDecision;

/**
 * Wraps a gate: an observation the screen flags never runs on its own. A plan the base gate would run
 * (or send to a lower tier) goes to review with rule `prompt-injection` and the screen's reason; a
 * deny stays a deny. The observation is screened here, whatever the planner reported; a planner's own
 * `prompt-injection` factor (the LLM noticed something the patterns did not) and a `planner-fallback`
 * plan (an LLM reply that could not be completed) also go to review. Factors only ever add review.
 */
export function screenedGate(
  model: ScreenModel & { config: { policy: { tierRiskBounds: number[] } } },
  baseGate: Gate,
): Gate {
  const tierOf = plannerConfigOf(model).screening.tier;
  const maxTier = model.config.policy.tierRiskBounds.length;
  // An episode's observation is gated again after a reviewer's edit: screen each one once.
  const screened = new WeakMap<object, ScreenResult>();
  return (plan, observation) => {
    const decision = baseGate(plan, observation);
    if (decision.outcome === 'deny') return decision;
    let result = screened.get(observation);
    if (!result) screened.set(observation, (result = screen(observation, model)));
    const reported = plan.risk.factors.find((f) => f.name === INJECTION_FACTOR);
    const fallback = plan.risk.factors.find((f) => f.name === FALLBACK_FACTOR);
    let ruleId: string;
    let detail: string;
    if (result.flagged) [ruleId, detail] = ['prompt-injection', result.reason];
    else if (reported)
      [ruleId, detail] = [
        'prompt-injection',
        `the planner reports a possible prompt injection: ${reported.note ?? 'no detail'}`,
      ];
    else if (fallback) [ruleId, detail] = [FALLBACK_FACTOR, fallback.note ?? 'the planner could not complete the plan'];
    else return decision;
    const tier = Math.min(maxTier, Math.max(decision.outcome === 'review' ? decision.tier : 0, tierOf));
    return {
      ...decision,
      outcome: 'review',
      ruleId,
      tier,
      reasons: [detail, ...(decision.outcome === 'review' ? decision.reasons : [])],
      rules: [...decision.rules, { ruleId, result: 'review', tier, detail }],
    };
  };
}
