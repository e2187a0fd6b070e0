/**
 * The executor of HTTP actions (model.json `actions.<name>.http`, docs/api.md "HTTP actions"): one
 * real HTTP call per attempt with Node's fetch, the effect's idempotency key as `Idempotency-Key`,
 * the episode's trace as `traceparent`, secrets from the environment in headers (never in a message
 * or a log), statuses sorted into success, transient (retried with back-off here, then by the
 * model's `retry`) and permanent (the step fails for good: compensation starts).
 */
import { EffectError } from '../../contracts/errors.ts';
import { ARG_REF, ENV_REF, statusMatches, type HttpCall } from '../../contracts/http-action.ts';
import type { EffectContext } from '../../models/define.ts';

/** Longest part of a response body quoted in an error. */
const QUOTE = 300;

/** The value at a dotted path of the arguments, or undefined. */
function valueAt(scope: Record<string, unknown>, path: string): unknown {
  let at: unknown = scope;
  for (const k of path.split('.')) {
    // Own properties only: `{__proto__}` or `{constructor}` name nothing.
    if (!at || typeof at !== 'object' || !Object.hasOwn(at, k)) return undefined;
    at = (at as Record<string, unknown>)[k];
  }
  return at;
}

function missing(type: string, path: string, where: string): EffectError {
  return new EffectError(`HTTP action '${type}': {${path}} in its ${where} has no value in the arguments`, {
    transient: false,
    code: 'effect.http_template',
  });
}

/** `${env:NAME}` from the environment; a variable gone since load is a permanent failure naming it (not its value). */
function envValue(type: string, name: string, env: NodeJS.ProcessEnv): string {
  const v = env[name];
  if (v === undefined || v === '')
    throw new EffectError(`HTTP action '${type}': environment variable ${name} is not set`, {
      transient: false,
      code: 'config.invalid',
    });
  return v;
}

/** The URL: `${env:X}` as is, `{arg}` URL-encoded. */
export function renderUrl(
  type: string,
  template: string,
  scope: Record<string, unknown>,
  env: NodeJS.ProcessEnv,
): string {
  return template
    .replace(ARG_REF, (_, path: string) => {
      const v = valueAt(scope, path);
      if (v === undefined || v === null || typeof v === 'object') throw missing(type, path, 'URL');
      return encodeURIComponent(String(v));
    })
    .replace(ENV_REF, (_, name: string) => envValue(type, name, env));
}

/** The body template with the arguments filled in: `"{a}"` alone keeps the value's JSON type. */
export function renderBody(type: string, template: unknown, scope: Record<string, unknown>): unknown {
  if (typeof template === 'string') {
    const whole = /^\{([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)\}$/.exec(template);
    if (whole) {
      const v = valueAt(scope, whole[1]!);
      if (v === undefined) throw missing(type, whole[1]!, 'body');
      return v;
    }
    return template.replace(ARG_REF, (_, path: string) => {
      const v = valueAt(scope, path);
      if (v === undefined) throw missing(type, path, 'body');
      return typeof v === 'object' ? JSON.stringify(v) : String(v);
    });
  }
  if (Array.isArray(template)) return template.map((t) => renderBody(type, t, scope));
  if (template && typeof template === 'object')
    return Object.fromEntries(Object.entries(template).map(([k, v]) => [k, renderBody(type, v, scope)]));
  return template;
}

/** A URL fit for a message: no user info, no query (where a careless template might put a token). */
function shown(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname}${u.search ? '?…' : ''}`;
  } catch {
    return '(bad URL)';
  }
}

/** `Retry-After` in ms (seconds or an HTTP date), or undefined. */
function retryAfterMs(header: string | null, now: number): number | undefined {
  if (!header) return undefined;
  const s = Number(header);
  if (Number.isFinite(s) && s >= 0) return s * 1000;
  const at = Date.parse(header);
  return Number.isFinite(at) ? Math.max(0, at - now) : undefined;
}

async function readResult(res: Response): Promise<unknown> {
  const text = await res.text();
  if (text === '') return null;
  if ((res.headers.get('content-type') ?? '').includes('json')) {
    try {
      return JSON.parse(text) as unknown;
    } catch {
      return text;
    }
  }
  return text;
}

export interface HttpActionOptions {
  env?: NodeJS.ProcessEnv;
  /** Sleeps between attempts (tests pass a quick one). */
  sleep?: (ms: number) => Promise<void>;
}

/** The longest one HTTP action may take in all its attempts and waits: the executor's timeout for it. */
export function httpBudgetMs(call: HttpCall): number {
  let waits = 0;
  for (let i = 1; i < call.retry.maxAttempts; i++)
    waits += Math.min(call.retry.maxBackoffMs, call.retry.backoffMs * 2 ** (i - 1));
  return call.retry.maxAttempts * call.timeoutMs + waits + 1000;
}

/**
 * Makes the call of an HTTP action. `args` are the plan's validated arguments (a compensation's carry
 * `original`, the undone action's result). Records the response in the world's ledger under the
 * effect's key once the service has answered success, and returns it (parsed JSON, text, or null).
 */
export async function runHttpAction(
  type: string,
  call: HttpCall,
  args: Record<string, unknown>,
  ctx: EffectContext,
  opts: HttpActionOptions = {},
): Promise<unknown> {
  const env = opts.env ?? process.env;
  const sleep = opts.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const url = renderUrl(type, call.url, args, env);
  const hasBody = call.body !== undefined || ['POST', 'PUT', 'PATCH'].includes(call.method);
  const body = hasBody ? JSON.stringify(call.body !== undefined ? renderBody(type, call.body, args) : args) : undefined;
  const headers: Record<string, string> = { accept: 'application/json' };
  for (const [k, v] of Object.entries(call.headers))
    headers[k] = v.replace(ENV_REF, (_, name: string) => envValue(type, name, env));
  if (body !== undefined) headers['content-type'] = 'application/json';
  headers['idempotency-key'] = ctx.key;
  if (ctx.traceparent) headers.traceparent = ctx.traceparent;
  // In a cluster: the lease revision the effect runs under; a service that keeps it can refuse a smaller one.
  if (ctx.fencingToken !== undefined) headers['handoff-fencing-token'] = String(ctx.fencingToken);
  const what = `HTTP action '${type}': ${call.method} ${shown(url)}`;
  // The secrets of the headers never reach a message, even when a service echoes them back.
  const secrets = Object.values(call.headers)
    .flatMap((v) => [...v.matchAll(ENV_REF)].map((m) => env[m[1]!] ?? ''))
    .filter((v) => v.length >= 4);
  const fail = (message: string, transient: boolean, code: string) =>
    new EffectError(
      secrets.reduce((m, v) => m.split(v).join('[redacted]'), message),
      { transient, code },
    );

  let lastError = '';
  let wait = call.retry.backoffMs;
  for (let attempt = 1; attempt <= call.retry.maxAttempts; attempt++) {
    let res: Response;
    try {
      res = await fetch(url, {
        method: call.method,
        headers,
        ...(body !== undefined ? { body } : {}),
        signal: AbortSignal.timeout(call.timeoutMs),
        redirect: 'manual',
      });
    } catch (err) {
      const e = err as Error & { cause?: { code?: string } };
      lastError =
        e.name === 'TimeoutError'
          ? `no answer within ${call.timeoutMs} ms`
          : `${e.cause?.code ?? e.name}: ${e.message}`;
      if (attempt < call.retry.maxAttempts) {
        await sleep(wait);
        wait = Math.min(call.retry.maxBackoffMs, wait * 2);
        continue;
      }
      throw fail(`${what} failed after ${attempt} attempt(s): ${lastError}`, true, 'effect.http_unreachable');
    }
    const result = await readResult(res).catch(() => null);
    if (statusMatches(res.status, call.success)) {
      await ctx.world.apply(ctx.key, type, args, result);
      return result;
    }
    const quote = (typeof result === 'string' ? result : (JSON.stringify(result) ?? '')).slice(0, QUOTE);
    lastError = `status ${res.status}${quote ? ` ${quote}` : ''}`;
    if (!statusMatches(res.status, call.transient))
      throw fail(`${what} was refused: ${lastError}`, false, 'effect.http_status');
    if (attempt < call.retry.maxAttempts) {
      const hinted = retryAfterMs(res.headers.get('retry-after'), Date.now());
      await sleep(Math.min(call.retry.maxBackoffMs, hinted ?? wait));
      wait = Math.min(call.retry.maxBackoffMs, wait * 2);
    }
  }
  throw fail(`${what} failed after ${call.retry.maxAttempts} attempt(s): ${lastError}`, true, 'effect.http_status');
}
