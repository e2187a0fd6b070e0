/**
 * The reference of every `model.json` field, generated from the `ModelConfig` zod schema: path,
 * type, required or default, and what it means. docs/authoring.md carries it between markers, and
 * test/model-based/authoring.test.ts fails when the docs and the schema disagree (a field added to
 * the schema without a description, a description of a field that no longer exists).
 */
import type { z } from 'zod';
import { ModelConfig } from '../contracts/model-config.ts';

type Def = { type: string; [k: string]: unknown };
const defOf = (s: unknown): Def => (s as { _zod: { def: Def } })._zod.def;

/** What each field means. Keys are schema paths (`[]` an array element, `*` a record value). */
export const FIELD_DOCS: Record<string, string> = {
  name: 'Model name: lower-case letters, digits and dashes; the folder name by convention.',
  version: 'Version of the model; shown in audits, lineage and generated suites.',
  description: 'What the model does, in a sentence or two.',
  actions:
    'Every action the model may plan or compensate with, by name; each needs an implementation in handlers.ts, or `http`.',
  'actions.*': 'One action type.',
  'actions.*.description': 'What the action does, shown to reviewers when the action has no `describe()`.',
  'actions.*.risk': "Inherent risk in [0, 1]: a plan's risk is at least the highest risk of its actions.",
  'actions.*.compensation':
    'Name of the action that undoes this one when a later step fails (a saga), or null when nothing needs undoing.',
  'actions.*.http':
    'Makes the action an HTTP call to a real service, with no code in handlers.ts: see docs/api.md, "HTTP actions".',
  'actions.*.http.method': 'HTTP method.',
  'actions.*.http.url':
    "URL template: `{arg}` is replaced with the URL-encoded argument (`{original.x}`: the undone action's result, in a compensation), `${env:NAME}` with an environment variable.",
  'actions.*.http.headers':
    'Extra headers; values may use `${env:NAME}` for secrets, never logged. `Idempotency-Key`, `traceparent` and `Content-Type` are set by the runtime.',
  'actions.*.http.headers.*': 'A header value.',
  'actions.*.http.body':
    'JSON body template: a string that is exactly `"{arg}"` becomes the value, `{arg}` inside a string its text. Absent: the arguments for POST, PUT, PATCH; no body for GET, DELETE.',
  'actions.*.http.success': 'Statuses (`201`) or classes (`"2xx"`) that mean the effect took place.',
  'actions.*.http.success[]': 'A status or class.',
  'actions.*.http.transient':
    'Statuses retried with back-off; any status neither success nor transient fails the step for good (compensation starts).',
  'actions.*.http.transient[]': 'A status or class.',
  'actions.*.http.timeoutMs': 'How long one attempt may take (ms); a timeout is transient.',
  'actions.*.http.retry': "Attempts within one step; after the last, a transient failure goes to the model's `retry`.",
  'actions.*.http.retry.maxAttempts': 'Attempts in all, the first included.',
  'actions.*.http.retry.backoffMs':
    'Wait after the first failed attempt; doubles after each further one; a `Retry-After` answer is honoured.',
  'actions.*.http.retry.maxBackoffMs': 'Longest wait between attempts.',
  'actions.*.args':
    'Arguments of an HTTP action, a JSON Schema subset (type object; closed; `sensitive: true` marks personal data): see docs/api.md.',
  policy: 'The gate: which plans run on their own, which go to review (and at which tier), which are denied.',
  'policy.version': 'Policy version, recorded in every gate decision.',
  'policy.allowedActions': 'Only these action types may ever run; any other denies the plan.',
  'policy.allowedActions[]': 'An action name.',
  'policy.deniedActions': 'Action types that are always denied.',
  'policy.deniedActions[]': 'An action name.',
  'policy.minAutoConfidence': 'A plan below this confidence goes to review (a plan exactly at it may run on its own).',
  'policy.maxAutoRisk': 'A plan whose risk is above this goes to review (exactly at it may run on its own).',
  'policy.denyAboveRisk': 'A plan whose risk is above this is denied.',
  'policy.tierRiskBounds':
    'Upper risk bound of each review tier, ascending, one per tier: risk ≤ bound[0] → tier 1, and so on.',
  'policy.tierRiskBounds[]': 'A risk bound in [0, 1].',
  'policy.reviewDataClasses': 'Observations carrying any of these data classes always go to review.',
  'policy.reviewDataClasses[]': 'A data class.',
  'policy.lowConfidenceTier2Below': 'Confidence below this goes to tier 2 at least (when there is one).',
  'policy.limits': 'Limits on one numeric argument of one action type.',
  'policy.limits[]': 'One limit.',
  'policy.limits[].action': 'The action type the limit applies to.',
  'policy.limits[].arg': 'The argument (a number) it checks.',
  'policy.limits[].reviewAbove': 'Above this value the plan goes to review at `reviewTier` (exactly at it: no review).',
  'policy.limits[].reviewTier': 'The tier a review for this limit needs (1-based).',
  'policy.limits[].denyAbove': 'Above this value the plan is denied.',
  'policy.onExpiry': 'What happens when a review expires after its last tier.',
  'policy.onExpiry.fallback': '`deny`: the episode ends expired; `safeAction`: the runtime runs `action` instead.',
  'policy.onExpiry.action': 'The safe action (`safeAction` only).',
  'policy.onExpiry.action.type': 'Its action type.',
  'policy.onExpiry.action.args': 'Its arguments, checked against the action’s schema.',
  'policy.onExpiry.action.description': 'What it does, for people.',
  review: 'Human review: escalation tiers and the claim lease.',
  'review.tiers': 'Review tiers, lowest first; a missed deadline or a reviewer escalates to the next.',
  'review.tiers[]': 'One tier.',
  'review.tiers[].name': 'Tier name, shown to reviewers.',
  'review.tiers[].queue': 'Queue the tier’s cases appear in.',
  'review.tiers[].roles': 'Roles that may see, claim, decide and escalate the tier’s cases.',
  'review.tiers[].roles[]': 'A role of `roles`.',
  'review.tiers[].ackMs': 'Time to claim a case after it enters the tier before it escalates (ms).',
  'review.tiers[].resolveMs': 'Time to decide, from entering the tier, before it escalates (ms).',
  'review.tiers[].priority': 'Queue priority; larger is more urgent.',
  'review.tiers[].fourEyes': 'Two distinct approvers are needed.',
  'review.tiers[].steps':
    'Ordered approvals ("a manager, then security"), one distinct approver per step; replaces fourEyes.',
  'review.tiers[].steps[]': 'One approval step.',
  'review.tiers[].steps[].name': 'Step name, shown to reviewers.',
  'review.tiers[].steps[].roles': 'Roles that may approve this step; each must be one of the tier’s roles.',
  'review.tiers[].steps[].roles[]': 'A role.',
  'review.leaseMs': 'How long a claim lasts before it lapses and the case returns to the queue (renewable), ms.',
  retry: 'Retries of a transiently failing step (perceive, plan, each action, each compensation).',
  'retry.maxAttempts': 'Attempts in all, the first included.',
  'retry.backoffMs': 'Wait after the first failed attempt; doubles after each further one.',
  'retry.maxBackoffMs': 'Longest wait between attempts.',
  operator:
    'The tier of operator cases (a compensation that failed for good, an actor past its restart limit); same fields as a review tier.',
  planner: 'Planner (rules or an LLM), injection screening and drift-aware gating: see docs/reasoning.md.',
  notifications: 'Webhooks and signed decision callbacks: see docs/notifications.md.',
  roles: 'Every role reviewers and tiers name, with a description.',
  'roles.*': 'One role.',
  'roles.*.description': 'What holders of the role decide.',
  reviewers: 'Known reviewers (the demo and simulations use them; the console signs people in separately).',
  'reviewers[]': 'One reviewer.',
  'reviewers[].id': 'Reviewer id.',
  'reviewers[].name': 'Display name.',
  'reviewers[].roles': 'Their roles.',
  'reviewers[].roles[]': 'A role.',
  freshness: 'How old observations may be when a plan built on them acts: see docs/governance.md.',
  'freshness.sources': 'Limit per `provenance.source`.',
  'freshness.sources.*': 'One source.',
  'freshness.sources.*.maxAgeMs': 'Largest age at which the data counts as fresh (ms).',
  'freshness.defaultMaxAgeMs': 'Limit for sources not named in `sources`; absent: they never go stale.',
  'freshness.onStale': '`reperceive` (at most `maxReperceives` times, then review) or `review`.',
  'freshness.maxReperceives': 'Re-perceptions per episode before stale data goes to review.',
  retention: 'How long finished episodes’ journals are kept; absent: for ever.',
  'retention.keepDays': 'Journals of episodes finished more than this many days ago are compacted.',
};

/** Fields documented elsewhere: listed, not descended into. */
const OPAQUE = new Set(['planner', 'notifications', 'operator', 'actions.*.args']);

interface Field {
  path: string;
  type: string;
  required: boolean;
  default?: unknown;
}

function describeType(s: z.ZodType): string {
  const d = defOf(s);
  switch (d.type) {
    case 'optional':
    case 'nullable':
    case 'default':
    case 'prefault':
      return describeType(d.innerType as z.ZodType) + (d.type === 'nullable' ? ' or null' : '');
    case 'string':
      return 'string';
    case 'number': {
      const checks = ((d.checks as { _zod: { def: Def } }[] | undefined) ?? []).map((c) => c._zod.def);
      const int = checks.some((c) => c.check === 'number_format' && String(c.format).includes('int'));
      const min = checks.find((c) => c.check === 'greater_than');
      const max = checks.find((c) => c.check === 'less_than');
      const range =
        min && max
          ? ` in [${min.value as number}, ${max.value as number}]`
          : min
            ? ` ${min.inclusive ? '≥' : '>'} ${min.value as number}`
            : '';
      return `${int ? 'integer' : 'number'}${range}`;
    }
    case 'boolean':
      return 'boolean';
    case 'literal':
      return (d.values as unknown[]).map((v) => `\`${String(v)}\``).join(' \\| ');
    case 'enum':
      return Object.values(d.entries as Record<string, string>)
        .map((v) => `\`${v}\``)
        .join(' \\| ');
    case 'array':
      return `array of ${describeType(d.element as z.ZodType)}`;
    case 'record':
      return `object: name → ${describeType(d.valueType as z.ZodType)}`;
    case 'object':
      return 'object';
    case 'union': {
      const options = d.options as z.ZodType[];
      if (options.every((o) => defOf(o).type !== 'object')) return options.map(describeType).join(' \\| ');
      return 'object (one of several forms)';
    }
    case 'unknown':
      return 'any';
    case 'lazy':
      return describeType((d.getter as () => z.ZodType)());
    default:
      return d.type;
  }
}

function fields(s: z.ZodType, path: string, required: boolean, out: Field[], def?: unknown): void {
  const d = defOf(s);
  if (d.type === 'optional') return fields(d.innerType as z.ZodType, path, false, out);
  if (d.type === 'default' || d.type === 'prefault')
    return fields(d.innerType as z.ZodType, path, false, out, d.defaultValue);
  if (path) out.push({ path, type: describeType(s), required, ...(def !== undefined ? { default: def } : {}) });
  if (OPAQUE.has(path)) return;
  const inner = d.type === 'nullable' ? defOf(d.innerType) : d;
  const at = (k: string) => (path ? `${path}.${k}` : k);
  switch (inner.type) {
    case 'object':
      for (const [k, v] of Object.entries(inner.shape as Record<string, z.ZodType>)) fields(v, at(k), true, out);
      return;
    case 'array':
      return fields(inner.element as z.ZodType, `${path}[]`, true, out);
    case 'record':
      if (defOf(inner.valueType).type === 'unknown') return;
      return fields(inner.valueType as z.ZodType, at('*'), true, out);
    case 'union': {
      // Every form's fields, once each (a field optional in one form is optional).
      const seen = new Map<string, Field>();
      for (const o of inner.options as z.ZodType[]) {
        if (defOf(o).type !== 'object') continue; // a union of scalars (a status or a class) has no fields
        const sub: Field[] = [];
        for (const [k, v] of Object.entries(defOf(o).shape as Record<string, z.ZodType>)) fields(v, at(k), true, sub);
        for (const f of sub) {
          const had = seen.get(f.path);
          if (!had) seen.set(f.path, f);
          else if (had.type !== f.type) had.type = `${had.type} \\| ${f.type}`;
        }
      }
      out.push(...seen.values());
      return;
    }
  }
}

/** Every field of model.json the schema declares, in schema order. */
export function modelFields(): Field[] {
  const out: Field[] = [];
  fields(ModelConfig, '', true, out);
  return out;
}

/** The reference table, as Markdown. */
export function modelReferenceMarkdown(): string {
  const rows = modelFields().map((f) => {
    const req = f.required
      ? 'required'
      : f.default !== undefined
        ? `default \`${JSON.stringify(f.default)}\``
        : 'optional';
    return `| \`${f.path}\` | ${f.type} | ${req} | ${FIELD_DOCS[f.path] ?? '**undocumented**'} |`;
  });
  return ['| field | type | | meaning |', '|---|---|---|---|', ...rows].join('\n');
}
