/**
 * HTTP actions of `model.json` (docs/api.md, "HTTP actions"), the loader's half: their argument
 * schemas (a JSON Schema subset, turned into zod so plans and reviewer edits are validated as for a
 * TypeScript action) and their checks at load (`handoff models check`). The call itself is made by
 * the executor (src/actors/executors/http-action.ts).
 */
import { z } from 'zod';
import { sensitive } from '../contracts/classification.ts';
import { EffectError } from '../contracts/errors.ts';
import { ARG_REF, ENV_REF, statusMatches, type ArgSchema } from '../contracts/http-action.ts';
import type { ModelConfig } from '../contracts/model-config.ts';
import type { ActionImpl } from './define.ts';

type Issue = { path: string; message: string };

/** Keywords that only make sense for some types. */
const KEYWORDS_OF: Record<string, ArgSchema['type'][]> = {
  minLength: ['string'],
  maxLength: ['string'],
  pattern: ['string'],
  minimum: ['number', 'integer'],
  maximum: ['number', 'integer'],
  exclusiveMinimum: ['number', 'integer'],
  exclusiveMaximum: ['number', 'integer'],
  items: ['array'],
  minItems: ['array'],
  maxItems: ['array'],
  properties: ['object'],
  required: ['object'],
  enum: ['string', 'number', 'integer'],
};

/**
 * A zod schema for a JSON Schema subset. Objects are closed (an unknown argument is refused, as a
 * strict zod object would), properties not in `required` are optional. Problems of the schema itself
 * (a keyword on the wrong type, a bad pattern) are added to `issues`.
 */
export function zodFromArgSchema(s: ArgSchema, path: string, issues: Issue[]): z.ZodType {
  for (const k of Object.keys(s)) {
    const types = KEYWORDS_OF[k];
    if (types && s[k as keyof ArgSchema] !== undefined && !types.includes(s.type))
      issues.push({
        path: `${path}.${k}`,
        message: `'${k}' does not apply to type '${s.type}' (only ${types.join(', ')})`,
      });
  }
  let out: z.ZodType;
  switch (s.type) {
    case 'string': {
      let t = z.string();
      if (s.minLength !== undefined) t = t.min(s.minLength);
      if (s.maxLength !== undefined) t = t.max(s.maxLength);
      if (s.pattern !== undefined) {
        try {
          t = t.regex(new RegExp(s.pattern));
        } catch (err) {
          issues.push({
            path: `${path}.pattern`,
            message: `not a valid regular expression: ${(err as Error).message}`,
          });
        }
      }
      out = t;
      if (s.enum) {
        const bad = s.enum.filter((v) => typeof v !== 'string');
        if (bad.length) issues.push({ path: `${path}.enum`, message: 'a string argument takes string values only' });
        const values = s.enum.filter((v): v is string => typeof v === 'string');
        if (values.length) out = t.pipe(z.enum(values as [string, ...string[]]));
      }
      break;
    }
    case 'number':
    case 'integer': {
      let t = s.type === 'integer' ? z.number().int() : z.number();
      if (s.minimum !== undefined) t = t.min(s.minimum);
      if (s.maximum !== undefined) t = t.max(s.maximum);
      if (s.exclusiveMinimum !== undefined) t = t.gt(s.exclusiveMinimum);
      if (s.exclusiveMaximum !== undefined) t = t.lt(s.exclusiveMaximum);
      out = t;
      if (s.enum) {
        if (s.enum.some((v) => typeof v !== 'number'))
          issues.push({ path: `${path}.enum`, message: 'a number argument takes number values only' });
        const values = s.enum.filter((v): v is number => typeof v === 'number');
        if (values.length) out = t.refine((v) => values.includes(v), `expected one of ${values.join(', ')}`);
      }
      break;
    }
    case 'boolean':
      out = z.boolean();
      break;
    case 'array': {
      if (!s.items) issues.push({ path: `${path}.items`, message: "an array argument needs 'items'" });
      let t = z.array(s.items ? zodFromArgSchema(s.items, `${path}.items`, issues) : z.unknown());
      if (s.minItems !== undefined) t = t.min(s.minItems);
      if (s.maxItems !== undefined) t = t.max(s.maxItems);
      out = t;
      break;
    }
    case 'object': {
      const props = s.properties ?? {};
      const required = new Set(s.required ?? []);
      for (const [i, r] of (s.required ?? []).entries())
        if (!props[r]) issues.push({ path: `${path}.required.${i}`, message: `'${r}' is not one of the properties` });
      const shape: Record<string, z.ZodType> = {};
      for (const [k, v] of Object.entries(props)) {
        const t = zodFromArgSchema(v, `${path}.properties.${k}`, issues);
        shape[k] = required.has(k) ? t : t.optional();
      }
      out = z.strictObject(shape);
      break;
    }
  }
  return s.sensitive ? sensitive(out) : out;
}

/** The placeholders (`{a.b}`) and environment variables (`${env:X}`) of a template value (strings anywhere inside). */
export function templateRefs(value: unknown): { args: string[]; env: string[] } {
  const args: string[] = [];
  const env: string[] = [];
  const walk = (v: unknown): void => {
    if (typeof v === 'string') {
      for (const m of v.matchAll(ARG_REF)) args.push(m[1]!);
      for (const m of v.matchAll(ENV_REF)) env.push(m[1]!);
    } else if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === 'object') Object.values(v).forEach(walk);
  };
  walk(value);
  return { args, env };
}

/**
 * Every problem of the HTTP actions of a model, as `handoff models check` shows them: an HTTP action
 * without `args` (or arguments on a TypeScript action), a placeholder naming no argument, an
 * environment variable that is not set, a URL that is not http(s), a status in two classes, a header
 * the runtime sets itself, and each argument schema's own problems.
 */
export function httpActionProblems(config: Pick<ModelConfig, 'actions'>, env: NodeJS.ProcessEnv): Issue[] {
  const issues: Issue[] = [];
  const compensations = new Set(
    Object.values(config.actions)
      .map((a) => a.compensation)
      .filter((c): c is string => !!c),
  );
  for (const [name, action] of Object.entries(config.actions)) {
    const at = `actions.${name}`;
    if (!action.http) {
      if (action.args)
        issues.push({
          path: `${at}.args`,
          message:
            'args in model.json belong to an HTTP action (add http); ' +
            'a TypeScript action declares its args in handlers.ts',
        });
      continue;
    }
    const http = action.http;
    if (!action.args) {
      issues.push({
        path: `${at}.args`,
        message: 'an HTTP action needs args: a JSON Schema of type object for its arguments',
      });
      continue;
    }
    if (action.args.type !== 'object')
      issues.push({ path: `${at}.args.type`, message: "the arguments of an action are an object: type 'object'" });
    zodFromArgSchema(action.args, `${at}.args`, issues);
    // A compensation runs with the arguments of the action it undoes (plus `original`, that action's result).
    const undone = Object.values(config.actions).filter((a) => a.compensation === name);
    const props = {
      ...action.args.properties,
      ...Object.assign({}, ...undone.map((a) => a.args?.properties ?? {})),
    } as Record<string, ArgSchema>;
    const unknowable = undone.some((a) => !a.http);
    for (const ref of templateRefs([http.url, http.body ?? null]).args) {
      const head = ref.split('.')[0]!;
      if (head === 'original') {
        if (!compensations.has(name))
          issues.push({
            path: `${at}.http`,
            message: `'{${ref}}': 'original' (the undone action's result) exists only in a compensation`,
          });
      } else if (!props[head] && !unknowable)
        issues.push({
          path: `${at}.http`,
          message: `'{${ref}}' names no argument (arguments: ${Object.keys(props).join(', ') || 'none'})`,
        });
    }
    for (const v of templateRefs(http.body ?? null).env)
      issues.push({
        path: `${at}.http.body`,
        message: `\${env:${v}} is not allowed in a body (secrets go in headers)`,
      });
    const envOf: [string, unknown][] = [
      ['url', http.url],
      ...Object.entries(http.headers ?? {}).map(([h, v]): [string, unknown] => [`headers.${h}`, v]),
    ];
    for (const [where, value] of envOf)
      for (const v of new Set(templateRefs(value).env))
        if (env[v] === undefined || env[v] === '')
          issues.push({ path: `${at}.http.${where}`, message: `environment variable ${v} is not set` });
    for (const h of Object.keys(http.headers))
      if (['idempotency-key', 'traceparent', 'content-type', 'handoff-fencing-token'].includes(h.toLowerCase()))
        issues.push({
          path: `${at}.http.headers.${h}`,
          message: `${h} is set by the runtime (the effect's idempotency key, the episode's trace, JSON)`,
        });
    const probe = http.url.replace(ENV_REF, (_, v: string) => env[v] ?? 'http://env.invalid').replace(ARG_REF, 'x');
    let url: URL | null = null;
    try {
      url = new URL(probe);
    } catch {
      issues.push({
        path: `${at}.http.url`,
        message: `not an absolute URL once its variables are filled in: ${http.url}`,
      });
    }
    if (url && url.protocol !== 'http:' && url.protocol !== 'https:')
      issues.push({ path: `${at}.http.url`, message: `only http and https URLs (${url.protocol})` });
    if (http.body !== undefined && (http.method === 'GET' || http.method === 'DELETE'))
      issues.push({ path: `${at}.http.body`, message: `a ${http.method} request sends no body` });
    for (const [i, p] of http.success.entries())
      if (typeof p === 'number' ? statusMatches(p, http.transient) : http.transient.includes(p))
        issues.push({ path: `${at}.http.success.${i}`, message: `status ${p} is both success and transient` });
  }
  return issues;
}

/**
 * The implementations of a model's HTTP actions as the rest of the runtime sees an action: their
 * argument schema (plans and reviewer edits are validated with it, sensitive arguments redacted).
 * The call is made by the executor from the action's `http` declaration; calling `execute` directly
 * (outside the runtime) is refused.
 */
export function httpActionImpls(config: Pick<ModelConfig, 'actions'>): Record<string, ActionImpl> {
  const out: Record<string, ActionImpl> = {};
  for (const [name, action] of Object.entries(config.actions)) {
    if (!action.http || !action.args) continue;
    out[name] = {
      args: zodFromArgSchema(action.args, `actions.${name}.args`, []) as z.ZodType<Record<string, unknown>>,
      execute: () =>
        Promise.reject(
          new EffectError(
            `'${name}' is an HTTP action of model.json: the runtime's executor calls its service, not this function`,
            { transient: false, code: 'effect.http_only' },
          ),
        ),
    };
  }
  return out;
}
