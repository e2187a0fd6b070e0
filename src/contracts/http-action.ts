import { z } from 'zod';

/**
 * Actions on real services without code (docs/api.md, "HTTP actions"): an action of `model.json` may
 * be an HTTP call, declared here, with its arguments as a JSON Schema subset. TypeScript handlers
 * remain for anything else.
 */

/** The JSON Schema keywords an HTTP action's arguments may use (a strict subset; objects are closed). */
export interface ArgSchema {
  type: 'string' | 'number' | 'integer' | 'boolean' | 'object' | 'array';
  description?: string | undefined;
  sensitive?: boolean | undefined;
  enum?: (string | number)[] | undefined;
  minLength?: number | undefined;
  maxLength?: number | undefined;
  pattern?: string | undefined;
  minimum?: number | undefined;
  maximum?: number | undefined;
  exclusiveMinimum?: number | undefined;
  exclusiveMaximum?: number | undefined;
  items?: ArgSchema | undefined;
  minItems?: number | undefined;
  maxItems?: number | undefined;
  properties?: Record<string, ArgSchema> | undefined;
  required?: string[] | undefined;
}

export const ArgSchema: z.ZodType<ArgSchema> = z.lazy(() =>
  z.strictObject({
    type: z.enum(['string', 'number', 'integer', 'boolean', 'object', 'array']),
    description: z.string().optional(),
    /** Personal data: redacted in logs and inspection, like `sensitive()` in handlers.ts. */
    sensitive: z.boolean().optional(),
    enum: z
      .array(z.union([z.string(), z.number()]))
      .min(1)
      .optional(),
    minLength: z.number().int().min(0).optional(),
    maxLength: z.number().int().min(0).optional(),
    pattern: z.string().optional(),
    minimum: z.number().optional(),
    maximum: z.number().optional(),
    exclusiveMinimum: z.number().optional(),
    exclusiveMaximum: z.number().optional(),
    items: ArgSchema.optional(),
    minItems: z.number().int().min(0).optional(),
    maxItems: z.number().int().min(0).optional(),
    properties: z.record(z.string().min(1), ArgSchema).optional(),
    required: z.array(z.string().min(1)).optional(),
  }),
);

/** A status code (`404`) or a class of them (`"5xx"`). */
export const StatusPattern = z.union([
  z.number().int().min(100).max(599),
  z.string().regex(/^[1-5]xx$/, 'a status code or a class such as "5xx"'),
]);
export type StatusPattern = z.infer<typeof StatusPattern>;

export const HttpRetry = z.strictObject({
  /** Attempts of the call within one step, the first included. @default 3 */
  maxAttempts: z.number().int().min(1).max(10).default(3),
  /**
   * Wait after the first transient failure; doubles after each further one (a `Retry-After` answer is
   * honoured). @default 200
   */
  backoffMs: z.number().int().positive().default(200),
  /** Longest wait between attempts. @default 5000 */
  maxBackoffMs: z.number().int().positive().default(5000),
});
export type HttpRetry = z.infer<typeof HttpRetry>;

export const HTTP_METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'] as const;

/** One HTTP call: what an HTTP action (or its compensation, itself an action) does. */
export const HttpCall = z.strictObject({
  method: z.enum(HTTP_METHODS),
  /**
   * URL template: `{arg}` or `{arg.path}` is replaced with the URL-encoded argument, `${env:NAME}` with
   * an environment variable as it is (a base URL). Secrets go in headers, not in the URL.
   */
  url: z.string().min(1),
  /**
   * Extra headers; values may hold `${env:NAME}` (a secret: never logged). `Idempotency-Key` and
   * `traceparent` are set by the runtime.
   */
  headers: z.record(z.string().regex(/^[A-Za-z0-9-]+$/, 'a header name'), z.string()).default({}),
  /**
   * The JSON body: a template in which a string that is exactly `"{arg}"` becomes the argument's value
   * (any JSON type) and `{arg}` inside a longer string is replaced with its text. Absent: the
   * arguments themselves for POST, PUT and PATCH, no body for GET and DELETE.
   */
  body: z.unknown().optional(),
  /** Statuses that mean the effect took place. @default ["2xx"] */
  success: z.array(StatusPattern).min(1).default(['2xx']),
  /**
   * Statuses worth retrying (with back-off, then the model's `retry`); any other status fails for good.
   * @default [408, 425, 429, "5xx"]
   */
  transient: z.array(StatusPattern).default([408, 425, 429, '5xx']),
  /** How long one attempt may take before it counts as a transient failure (ms). @default 10000 */
  timeoutMs: z.number().int().positive().default(10_000),
  retry: HttpRetry.default({ maxAttempts: 3, backoffMs: 200, maxBackoffMs: 5000 }),
});
export type HttpCall = z.infer<typeof HttpCall>;

/** `${env:NAME}` references in a template. */
export const ENV_REF = /\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}/g;
/** `{path}` placeholders in a template (not preceded by `$`). */
export const ARG_REF = /(?<!\$)\{([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)\}/g;

/** Whether a status matches one of the patterns. */
export function statusMatches(status: number, patterns: readonly StatusPattern[]): boolean {
  return patterns.some((p) => (typeof p === 'number' ? p === status : Math.floor(status / 100) === Number(p[0])));
}
