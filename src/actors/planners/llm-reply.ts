import { z } from 'zod';
import { sensitivePaths } from '../../contracts/classification.ts';
import { ContractError } from '../../contracts/errors.ts';
import type { Observation } from '../../contracts/observation.ts';
import type { Plan, PlannedAction } from '../../contracts/plan.ts';
import type { StepContext } from '../../models/define.ts';
import type { LoadedModel } from '../../models/loader.ts';
import { FALLBACK_FACTOR, INJECTION_FACTOR } from '../../policy/injection-screen.ts';
import { hasToken, rehydrate, TOKEN_PREFIX } from '../../policy/minimise.ts';
import { PlanSubmission, SUBMIT_TOOL, truncate, type ChatResponse, type ToolCall, type Toolset } from './llm-wire.ts';

/**
 * The LLM planner's reading of a reply: the tool calls (or a `<tool_call>` block in the text, or one
 * JSON object for servers without tools) parsed into actions and the `submit_plan` submission, then
 * checked like any plan: each action against its argument contract, reference tokens filled back in,
 * sensitive arguments against the values on file (an IBAN the LLM made up is refused), cited inputs
 * against the observation, then `model.validatePlan`. What fails is named, for the repair request.
 */

/** The content-only form, for servers that do not pass tools through. */
const ContentPlan = PlanSubmission.extend({
  actions: z.array(z.object({ type: z.string().min(1), args: z.record(z.string(), z.unknown()) })).min(1),
});

/** Every path into a value (dotted, arrays by index), for checking cited inputs. */
function allPaths(value: unknown, prefix = '', out = new Set<string>()): Set<string> {
  if (prefix) out.add(prefix);
  if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) allPaths(v, prefix ? `${prefix}.${k}` : k, out);
  }
  return out;
}

/** Every value of the observation's sensitive fields, as JSON, for checking sensitive arguments. */
function sensitiveValues(observation: Observation, model: LoadedModel): Set<string> {
  const out = new Set<string>();
  const walk = (v: unknown, parts: string[]): void => {
    if (parts.length === 0) {
      if (v !== undefined && v !== null) out.add(JSON.stringify(v));
      return;
    }
    if (!v || typeof v !== 'object') return;
    const [head, ...rest] = parts as [string, ...string[]];
    const rec = v as Record<string, unknown>;
    for (const k of head === '*' ? Object.keys(rec) : [head]) walk(rec[k], rest);
  };
  for (const p of model.sensitiveFields) walk(observation.fields, p.split('.'));
  return out;
}

function argAt(args: unknown, parts: string[]): unknown[] {
  if (parts.length === 0) return [args];
  if (!args || typeof args !== 'object') return [];
  const [head, ...rest] = parts as [string, ...string[]];
  const rec = args as Record<string, unknown>;
  return (head === '*' ? Object.keys(rec) : head in rec ? [head] : []).flatMap((k) => argAt(rec[k], rest));
}

/** Finds a JSON object in free text: the whole text, a fenced block, or the outermost braces. */
function jsonIn(content: string): unknown {
  const tries = [content.trim()];
  const fence = /```(?:json)?\s*([\s\S]*?)```/.exec(content);
  if (fence?.[1]) tries.push(fence[1].trim());
  const first = content.indexOf('{');
  const last = content.lastIndexOf('}');
  if (first >= 0 && last > first) tries.push(content.slice(first, last + 1));
  for (const t of tries) {
    try {
      return JSON.parse(t);
    } catch {
      /* next */
    }
  }
  return undefined;
}

export interface Parsed {
  actions: PlannedAction[];
  submission?: PlanSubmission;
  issues: string[];
  notOffered: string[];
}

/** Reads a reply into actions, a submission and the problems found. */
export function parseReply(reply: ChatResponse, toolset: Toolset, model: LoadedModel): Parsed {
  const out: Parsed = { actions: [], issues: [], notOffered: [] };
  const message = reply.choices?.[0]?.message;
  if (!message) {
    out.issues.push('the reply has no message (choices[0].message)');
    return out;
  }
  const calls: ToolCall[] = [...(message.tool_calls ?? [])];
  if (message.function_call) calls.push({ function: message.function_call });
  const content = typeof message.content === 'string' ? message.content : '';
  // Some local servers leave tool calls in the text, in the chat template's own markup.
  if (calls.length === 0 && content) {
    for (const m of content.matchAll(/<tool_call>\s*([\s\S]*?)\s*<\/tool_call>/g)) {
      const j = jsonIn(m[1] ?? '') as { name?: string; arguments?: unknown } | undefined;
      if (j && typeof j.name === 'string') calls.push({ function: { name: j.name, arguments: j.arguments ?? {} } });
      else out.issues.push('a <tool_call> block in the text is not valid JSON with a name');
    }
  }
  calls.forEach((call, i) => {
    const name = call.function?.name ?? '';
    let args: unknown = call.function?.arguments ?? {};
    if (typeof args === 'string') {
      try {
        args = args.trim() === '' ? {} : JSON.parse(args);
      } catch (err) {
        out.issues.push(
          `tool call ${i + 1} (${name || 'unnamed'}): arguments are not valid JSON (${truncate((err as Error).message, 120)})`,
        );
        return;
      }
    }
    if (!args || typeof args !== 'object' || Array.isArray(args)) {
      out.issues.push(`tool call ${i + 1} (${name || 'unnamed'}): arguments must be a JSON object`);
      return;
    }
    if (name === SUBMIT_TOOL) {
      if (out.submission) {
        out.issues.push(`${SUBMIT_TOOL} was called more than once`);
        return;
      }
      const r = PlanSubmission.safeParse(args);
      if (r.success) out.submission = r.data;
      else
        out.issues.push(
          `${SUBMIT_TOOL}: ${r.error.issues.map((x) => `${x.path.join('.') || '(root)'}: ${x.message}`).join(', ')}`,
        );
      return;
    }
    const type = toolset.actions.get(name) ?? (model.config.actions[name] ? name : undefined);
    if (!type) {
      out.issues.push(`tool call ${i + 1}: there is no tool '${truncate(name, 64)}'`);
      return;
    }
    // An action of the model that was not offered (not on the allow-list) is kept: the gate denies it.
    if (!toolset.actions.has(name)) out.notOffered.push(type);
    out.actions.push({ type, args: args as Record<string, unknown> });
  });
  if (calls.length === 0) {
    const j = content ? jsonIn(content) : undefined;
    if (j === undefined) {
      out.issues.push(content ? 'the reply has neither tool calls nor a JSON plan' : 'the reply is empty');
    } else {
      const r = ContentPlan.safeParse(j);
      if (!r.success)
        out.issues.push(
          `the JSON plan in the reply: ${r.error.issues
            .slice(0, 5)
            .map((x) => `${x.path.join('.') || '(root)'}: ${x.message}`)
            .join(', ')}`,
        );
      else {
        const { actions, ...submission } = r.data;
        out.submission = submission;
        for (const a of actions) {
          const type = toolset.actions.get(a.type) ?? (model.config.actions[a.type] ? a.type : undefined);
          if (!type) out.issues.push(`there is no action '${truncate(a.type, 64)}'`);
          else {
            if (!toolset.actions.has(a.type)) out.notOffered.push(type);
            out.actions.push({ type, args: a.args });
          }
        }
      }
    }
  }
  return out;
}

/** What the plan needs of the planner: its name, its confidence cap and its redaction of the key. */
export interface PlanSource {
  name: string;
  maxConfidence: number;
  redact: (s: string) => string;
}

/** Checks a parsed reply: a valid plan, or the problems and the actions that were valid. */
export function planOfReply(
  parsed: Parsed,
  model: LoadedModel,
  episodeId: string,
  observation: Observation,
  ctx: StepContext,
  source: PlanSource,
): { plan: Plan } | { issues: string[]; validActions: PlannedAction[] } {
  const issues = [...parsed.issues];
  const valid: PlannedAction[] = [];
  const onFile = sensitiveValues(observation, model);
  parsed.actions.forEach((a, i) => {
    const impl = model.handlers.actions[a.type]!;
    const { value: args } = rehydrate(a.args, observation, model);
    if (hasToken(args)) {
      issues.push(
        `action ${i + 1} (${a.type}): an argument holds a ${TOKEN_PREFIX}...]] token that names no sensitive field of the observation`,
      );
      return;
    }
    const r = impl.args.safeParse(args);
    if (!r.success) {
      issues.push(
        `action ${i + 1} (${a.type}): ${r.error.issues.map((x) => `args.${x.path.join('.')}: ${x.message}`).join(', ')}`,
      );
      return;
    }
    // Personal data in arguments (an IBAN to pay, an address to write to) must be data on file.
    const made = sensitivePaths(impl.args).filter((p) =>
      argAt(args, p.split('.')).some((v) => v !== undefined && !onFile.has(JSON.stringify(v))),
    );
    if (made.length > 0) {
      issues.push(
        `action ${i + 1} (${a.type}): ${made.map((p) => `args.${p}`).join(', ')} must be the ${TOKEN_PREFIX}...]] token of an observation field, not a value of your own`,
      );
      return;
    }
    valid.push({ type: a.type, args: args as Record<string, unknown> });
  });
  if (parsed.actions.length === 0) issues.push('no action was proposed');
  if (!parsed.submission && !parsed.issues.some((x) => x.startsWith(SUBMIT_TOOL)))
    issues.push(`${SUBMIT_TOOL} was not called`);
  if (issues.length > 0) return { issues, validActions: valid };
  const sub = parsed.submission!;
  const known = allPaths(observation.fields);
  const cited = [...new Set(sub.citedInputs.map((c) => c.replace(/^fields\./, '')))].filter((c) => known.has(c));
  const factors = sub.risk.factors
    .filter((f) => f.name !== INJECTION_FACTOR && f.name !== FALLBACK_FACTOR)
    .map((f) => ({ ...f, ...(f.note ? { note: source.redact(f.note) } : {}) }));
  if (parsed.notOffered.length > 0)
    factors.push({
      name: 'action-not-offered',
      value: 1,
      note: `proposed ${[...new Set(parsed.notOffered)].join(', ')}, which the model's policy does not offer`,
    });
  const draft = {
    id: `${episodeId}.plan-${ctx.attempt}`,
    planner: `${model.name}/${source.name}@${model.config.version}`,
    actions: valid,
    confidence: Math.min(sub.confidence, source.maxConfidence),
    rationale: truncate(sub.rationale.trim() || 'no rationale given', 4000),
    risk: { score: sub.risk.score, factors },
    citedInputs: cited,
  };
  try {
    return { plan: model.validatePlan(draft, 'Plan') };
  } catch (err) {
    if (err instanceof ContractError)
      return { issues: err.issues.map((x) => `${x.path}: ${x.message}`), validActions: valid };
    throw err;
  }
}
