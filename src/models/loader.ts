import { readFile, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { z } from 'zod';
import { sensitivePaths } from '../contracts/classification.ts';
import { ContractError, ModelError } from '../contracts/errors.ts';
import type { GateDecision } from '../contracts/gate-decision.ts';
import { ModelConfig } from '../contracts/model-config.ts';
import type { Observation } from '../contracts/observation.ts';
import { Plan, type PlannedAction } from '../contracts/plan.ts';
import { parseContract, toIssues } from '../contracts/parse.ts';
import { evaluateGate } from '../policy/gate.ts';
import type { ModelHandlers } from './define.ts';
import { resolveModelDir } from './builtin.ts';
import { ensureTypeScriptLoader } from './typescript-loader.ts';
import { unknownKeys } from './schema-keys.ts';
import { httpActionImpls, httpActionProblems } from './http-actions.ts';

/** A model folder, validated and ready to run. */
export interface LoadedModel {
  dir: string;
  name: string;
  config: ModelConfig;
  handlers: ModelHandlers;
  /** Sensitive paths in `observation.fields`. */
  sensitiveFields: string[];
  gate(plan: Plan, observation: Observation): GateDecision;
  /**
   * Parses a plan with the plan contract and each action's argument schema; throws ContractError.
   * The plan returned carries the *parsed* arguments (what the schema stripped never runs).
   */
  validatePlan(plan: unknown, contract?: string, prefix?: string): Plan;
  /**
   * A reviewer's edit of `current`: each action's new arguments parsed with its schema (an argument
   * the schema does not know is refused, not dropped), and each edited action described again from
   * its new arguments. Throws ContractError naming the field.
   */
  editActions(
    current: Plan,
    edited: readonly { type: string; args: Record<string, unknown> }[],
    contract?: string,
    prefix?: string,
  ): PlannedAction[];
}

/** Paths present in `input` that `parsed` does not have: keys a schema would strip. */
function strippedPaths(input: unknown, parsed: unknown, path: string, depth = 0): string[] {
  const plain = (v: unknown): v is Record<string, unknown> => !!v && typeof v === 'object' && !Array.isArray(v);
  if (depth > 32) return [path];
  if (plain(input) && plain(parsed))
    return Object.keys(input).flatMap((k) =>
      k in parsed ? strippedPaths(input[k], parsed[k], `${path}.${k}`, depth + 1) : [`${path}.${k}`],
    );
  if (Array.isArray(input) && Array.isArray(parsed))
    return input.flatMap((v, i) => strippedPaths(v, parsed[i], `${path}.${i}`, depth + 1));
  return [];
}

/** One problem in a model folder: the file, the path inside it, what is wrong. */
export type Problem = { file: string; path: string; message: string };

const HandlersShape = z.object({
  signal: z.custom<z.ZodType>((v) => v instanceof z.ZodType, 'expected a zod schema'),
  fields: z.custom<z.ZodType>((v) => v instanceof z.ZodType, 'expected a zod schema'),
  perceive: z.function(),
  plan: z.function(),
  actions: z.record(
    z.string(),
    z.object({
      args: z.custom<z.ZodType>((v) => v instanceof z.ZodType, 'expected a zod schema'),
      execute: z.function(),
    }),
  ),
  synthesize: z.function(),
});

/** A deep copy of `raw` without the keys at `paths` (dotted). */
function withoutPaths(raw: unknown, paths: string[]): unknown {
  if (paths.length === 0) return raw;
  type Tree = { [key: string]: Tree | undefined };
  const copy = structuredClone(raw) as Tree;
  for (const p of paths) {
    const parts = p.split('.');
    let at: Tree | undefined = copy;
    for (const k of parts.slice(0, -1)) at = at?.[k];
    if (at && typeof at === 'object') delete at[parts.at(-1)!];
  }
  return copy;
}

/** A raw model.json with the containers the cross-reference checks walk defaulted to empty. */
// A raw model.json before its schema: the checks read any shape defensively, hence `any` (and only here).
/* eslint-disable @typescript-eslint/no-explicit-any */
function withDefaults(raw: Record<string, any>): Record<string, any> {
  const arr = (v: unknown) => (Array.isArray(v) ? v : []);
  const obj = (v: unknown) => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, any>) : {});
  const policy = obj(raw.policy);
  const review = obj(raw.review);
  return {
    ...raw,
    actions: obj(raw.actions),
    roles: obj(raw.roles),
    reviewers: arr(raw.reviewers).map((r) => ({ ...obj(r), roles: arr(obj(r).roles) })),
    policy: {
      ...policy,
      allowedActions: arr(policy.allowedActions),
      deniedActions: arr(policy.deniedActions),
      limits: arr(policy.limits).map(obj),
      tierRiskBounds: arr(policy.tierRiskBounds),
      onExpiry: obj(policy.onExpiry),
    },
    review: { ...review, tiers: arr(review.tiers).map((t) => ({ ...obj(t), roles: arr(obj(t).roles) })) },
    ...(raw.operator ? { operator: { ...obj(raw.operator), roles: arr(obj(raw.operator).roles) } } : {}),
  };
}
/* eslint-enable @typescript-eslint/no-explicit-any */

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/**
 * Loads a model folder: `model.json` (declarative: actions, policy, review tiers, roles) and
 * `handlers.ts` or `handlers.js` (schemas and implementations). Reports every problem found, each with
 * its file and path, in one {@link ModelError}.
 */
export async function loadModel(dirArg: string): Promise<LoadedModel> {
  const dir = resolveModelDir(dirArg);
  const label = basename(dir);
  const problems: Problem[] = [];
  const jsonFile = join(dir, 'model.json');
  const rel = (f: string) => join(dirArg, basename(f));

  if (!(await exists(jsonFile)))
    throw new ModelError(label, [
      { file: rel(jsonFile), path: '', message: 'missing: a model folder needs model.json' },
    ]);
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(jsonFile, 'utf8'));
  } catch (err) {
    throw new ModelError(label, [
      { file: rel(jsonFile), path: '', message: `not valid JSON: ${(err as Error).message}` },
    ]);
  }
  // Unknown keys (a misspelt `fourEye` would silently leave four eyes off) with a did-you-mean. zod's
  // strict objects stop at an unknown key, so the rest is validated without them: one run, every problem.
  const unknown = unknownKeys(ModelConfig, raw);
  for (const u of unknown) problems.push({ file: rel(jsonFile), path: u.path, message: u.message });
  const parsed = ModelConfig.safeParse(
    withoutPaths(
      raw,
      unknown.map((u) => u.path),
    ),
  );
  if (!parsed.success)
    for (const i of toIssues({
      issues: parsed.error.issues.filter((x) => x.code !== 'unrecognized_keys'),
    } as z.ZodError))
      problems.push({ file: rel(jsonFile), ...i });

  // handlers.mts is ESM wherever it lives; a handlers.ts outside an ESM package ("type": "module")
  // would load as CommonJS with its own copies of Handoff's classes, and errors thrown from it would
  // then fail the runtime's instanceof checks.
  const candidates = ['handlers.ts', 'handlers.mts', 'handlers.js', 'handlers.mjs'].map((f) => join(dir, f));
  let handlersFile: string | undefined;
  for (const c of candidates) if (await exists(c)) handlersFile = handlersFile ?? c;
  let handlers: ModelHandlers | undefined;
  if (!handlersFile) {
    problems.push({
      file: join(dirArg, 'handlers.ts'),
      path: '',
      message: 'missing: a model folder needs handlers.ts (in an ESM package) or handlers.mts',
    });
  } else {
    try {
      await ensureTypeScriptLoader(handlersFile);
      const mod = (await import(pathToFileURL(handlersFile).href)) as { default?: unknown };
      const shape = HandlersShape.safeParse(mod.default);
      if (!shape.success)
        for (const i of toIssues(shape.error, 'default')) problems.push({ file: rel(handlersFile), ...i });
      else handlers = mod.default as ModelHandlers;
    } catch (err) {
      problems.push({ file: rel(handlersFile), path: '', message: `failed to load: ${(err as Error).message}` });
    }
  }

  // Cross-references are checked even when model.json has schema problems (best effort on the raw
  // document), so one run reports every problem.
  if (handlers && handlersFile && (parsed.success || (raw && typeof raw === 'object'))) {
    try {
      const config = (parsed.success ? parsed.data : withDefaults(raw as Record<string, unknown>)) as ModelConfig;
      const hf = rel(handlersFile);
      const jf = rel(jsonFile);
      for (const [name, action] of Object.entries(config.actions)) {
        if (action.http && handlers.actions[name])
          problems.push({
            file: hf,
            path: `actions.${name}`,
            message: `'${name}' is an HTTP action in model.json and also implemented in handlers.ts: keep one`,
          });
        else if (!action.http && !handlers.actions[name])
          problems.push({
            file: hf,
            path: `actions.${name}`,
            message: `action '${name}' of model.json has no implementation`,
          });
        if (action.compensation && !config.actions[action.compensation])
          problems.push({
            file: jf,
            path: `actions.${name}.compensation`,
            message: `compensation '${action.compensation}' is not an action of the model`,
          });
      }
      for (const name of Object.keys(handlers.actions))
        if (!config.actions[name])
          problems.push({
            file: hf,
            path: `actions.${name}`,
            message: `implementation '${name}' is not declared in model.json actions`,
          });
      const known = (list: string[], path: string) =>
        list.forEach((a, i) => {
          if (!config.actions[a]) problems.push({ file: jf, path: `${path}.${i}`, message: `unknown action '${a}'` });
        });
      known(config.policy.allowedActions, 'policy.allowedActions');
      known(config.policy.deniedActions, 'policy.deniedActions');
      config.policy.limits.forEach((l, i) => {
        if (!config.actions[l.action])
          problems.push({ file: jf, path: `policy.limits.${i}.action`, message: `unknown action '${l.action}'` });
      });
      const bounds = config.policy.tierRiskBounds;
      if (bounds.length !== config.review.tiers.length)
        problems.push({
          file: jf,
          path: 'policy.tierRiskBounds',
          message: `has ${bounds.length} bounds for ${config.review.tiers.length} review tiers`,
        });
      bounds.forEach((b, i) => {
        if (i > 0 && b < bounds[i - 1]!)
          problems.push({ file: jf, path: `policy.tierRiskBounds.${i}`, message: 'bounds must ascend' });
      });
      config.review.tiers.forEach((t, i) =>
        t.roles.forEach((r, j) => {
          if (!config.roles[r])
            problems.push({ file: jf, path: `review.tiers.${i}.roles.${j}`, message: `unknown role '${r}'` });
        }),
      );
      config.reviewers.forEach((rv, i) =>
        rv.roles.forEach((r, j) => {
          if (!config.roles[r])
            problems.push({ file: jf, path: `reviewers.${i}.roles.${j}`, message: `unknown role '${r}'` });
        }),
      );
      config.operator?.roles.forEach((r, j) => {
        if (!config.roles[r]) problems.push({ file: jf, path: `operator.roles.${j}`, message: `unknown role '${r}'` });
      });
      const expiry = config.policy.onExpiry;
      if (expiry?.fallback === 'safeAction' && !config.actions[expiry.action?.type])
        problems.push({
          file: jf,
          path: 'policy.onExpiry.action.type',
          message: `unknown action '${expiry.action?.type}'`,
        });
    } catch {
      // The raw document is too broken for cross-references; its schema problems are reported above.
    }
  }
  if (parsed.success)
    for (const i of httpActionProblems(parsed.data, process.env)) problems.push({ file: rel(jsonFile), ...i });

  if (problems.length > 0 || !parsed.success || !handlers) throw new ModelError(label, problems);
  const config = parsed.data;
  // HTTP actions of model.json join the handlers' actions: their argument schemas validate plans and edits alike.
  const h: ModelHandlers = { ...handlers, actions: { ...handlers.actions, ...httpActionImpls(config) } };
  const sensitiveFields = sensitivePaths(h.fields);

  const validatePlan = (plan: unknown, contract = 'Plan', prefix = ''): Plan => {
    const p = parseContract(Plan, plan, contract, prefix);
    const issues: { path: string; message: string }[] = [];
    const actions = p.actions.map((a, i) => {
      const impl = h.actions[a.type];
      const at = [prefix, `actions.${i}`].filter(Boolean).join('.');
      if (!impl || !config.actions[a.type]) {
        issues.push({ path: `${at}.type`, message: `unknown action '${a.type}'` });
        return a;
      }
      const r = impl.args.safeParse(a.args);
      if (!r.success) issues.push(...toIssues(r.error, `${at}.args`));
      return r.success ? { ...a, args: r.data as Record<string, unknown> } : a;
    });
    if (issues.length > 0) throw new ContractError(contract, issues);
    return { ...p, actions };
  };

  const editActions = (
    current: Plan,
    edited: readonly { type: string; args: Record<string, unknown> }[],
    contract = 'ReviewerCommand',
    prefix = 'actions',
  ): PlannedAction[] => {
    const issues: { path: string; message: string }[] = [];
    if (edited.length !== current.actions.length)
      issues.push({
        path: prefix,
        message: `the plan has ${current.actions.length} actions; send each of them, in order (${edited.length} sent)`,
      });
    const actions = current.actions.map((before, i) => {
      const sent = edited[i];
      const at = `${prefix}.${i}`;
      if (!sent) return before;
      if (sent.type !== before.type) {
        issues.push({
          path: `${at}.type`,
          message: `action ${i} is '${before.type}'; a reviewer may change its arguments, not the action`,
        });
        return before;
      }
      const impl = h.actions[before.type];
      if (!impl) {
        issues.push({ path: `${at}.type`, message: `unknown action '${before.type}'` });
        return before;
      }
      const r = impl.args.safeParse(sent.args);
      if (!r.success) {
        issues.push(...toIssues(r.error, `${at}.args`));
        return before;
      }
      for (const path of strippedPaths(sent.args, r.data, `${at}.args`))
        issues.push({ path, message: `'${before.type}' has no such argument` });
      const args = r.data as Record<string, unknown>;
      if (JSON.stringify(args) === JSON.stringify(before.args)) return before;
      const description = impl.describe?.(args as never);
      const { description: _planners, ...rest } = before;
      return { ...rest, args, ...(description ? { description } : {}) };
    });
    if (issues.length > 0) throw new ContractError(contract, issues);
    return actions;
  };

  return {
    dir,
    name: config.name,
    config,
    handlers: h,
    sensitiveFields,
    gate: (plan, observation) => evaluateGate(plan, observation, config),
    validatePlan,
    editActions,
  };
}
