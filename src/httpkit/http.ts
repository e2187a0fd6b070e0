import { readdir, readFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { extname, join, relative, sep } from 'node:path';
import type { FastifyReply } from 'fastify';
import { ContractError, HandoffError } from '../contracts/errors.ts';

/** An error answered to the browser: an HTTP status, a stable code and a sentence. */
export class HttpError extends HandoffError {
  readonly status: number;
  constructor(status: number, code: string, message: string, details: Record<string, unknown> = {}) {
    super(code, message, details);
    this.status = status;
  }
}

const STATUS_BY_CODE: Record<string, number> = {
  'contract.invalid': 400,
  'auth.required': 401,
  'auth.session_expired': 401,
  'auth.invalid_credentials': 401,
  'auth.forbidden': 403,
  'auth.csrf': 403,
  'auth.origin': 403,
  'auth.sensitive_field': 403,
  'actor.not_found': 404,
  'actor.conflict': 409,
  'command.replayed': 409,
  'event.rejected': 409,
  'auth.throttled': 429,
  'actor.restarting': 503,
  'actor.suspended': 503,
  'runtime.stopped': 503,
  'transport.no_responders': 503,
  'transport.timeout': 504,
};

/** What the browser gets for an error: `{ error: { status, code, message, details? } }`. */
export function errorBody(err: unknown): {
  status: number;
  body: { error: { status: number; code: string; message: string; details?: Record<string, unknown> } };
} {
  if (err instanceof HttpError)
    return {
      status: err.status,
      body: {
        error: {
          status: err.status,
          code: err.code,
          message: err.message,
          ...(Object.keys(err.details).length ? { details: err.details } : {}),
        },
      },
    };
  if (err instanceof HandoffError) {
    const status = STATUS_BY_CODE[err.code] ?? (err.code.startsWith('auth.') ? 403 : 500);
    if (status === 500)
      return {
        status,
        body: { error: { status, code: 'internal', message: 'the server failed to handle the request; it is logged' } },
      };
    const details: Record<string, unknown> = { ...err.details };
    if (err instanceof ContractError || err.code === 'contract.invalid') {
      const issues = (err.details.issues as { path: string; message: string }[] | undefined) ?? [];
      details.path = issues[0]?.path ?? '';
      details.issues = issues;
      delete details.contract;
    }
    return {
      status,
      body: {
        error: { status, code: err.code, message: err.message, ...(Object.keys(details).length ? { details } : {}) },
      },
    };
  }
  return {
    status: 500,
    body: {
      error: { status: 500, code: 'internal', message: 'the server failed to handle the request; it is logged' },
    },
  };
}

/**
 * Headers on every response. The content security policy allows scripts, styles, images and
 * connections from this origin only: no inline script or style, no eval, no framing.
 */
export const SECURITY_HEADERS: Record<string, string> = {
  'Content-Security-Policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  'X-Content-Type-Options': 'nosniff',
  'X-Frame-Options': 'DENY',
  'Referrer-Policy': 'no-referrer',
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Resource-Policy': 'same-origin',
  'Permissions-Policy': 'camera=(), microphone=(), geolocation=(), payment=()',
};

export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string | string[]> = {},
): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'Content-Type': 'application/json; charset=utf-8',
    'Cache-Control': 'no-store',
    'Content-Length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

export function sendError(
  res: ServerResponse,
  err: unknown,
  headers: Record<string, string | string[]> = {},
): { status: number; code: string; message: string } {
  const { status, body } = errorBody(err);
  if (!res.headersSent) sendJson(res, status, body, headers);
  else res.end();
  return { status, code: body.error.code, message: body.error.message };
}

export function parseCookies(header: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (!header) return out;
  for (const part of header.split(';')) {
    const i = part.indexOf('=');
    if (i <= 0) continue;
    const k = part.slice(0, i).trim();
    const v = part.slice(i + 1).trim();
    if (k && !(k in out)) {
      try {
        out[k] = decodeURIComponent(v);
      } catch {
        out[k] = v;
      }
    }
  }
  return out;
}

/**
 * Reads a body of at most `limit` bytes as text (signed callbacks verify these exact bytes). Refuses
 * other content types than JSON (415) and larger bodies (413, before reading them when
 * Content-Length says so).
 */
export async function readBody(req: IncomingMessage, limit: number): Promise<string> {
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== 'application/json')
    throw new HttpError(
      415,
      'request.unsupported_media_type',
      `send the body as application/json (got ${type || 'no content type'})`,
    );
  const declared = Number(req.headers['content-length'] ?? NaN);
  if (Number.isFinite(declared) && declared > limit)
    throw new HttpError(413, 'request.too_large', `the body is ${declared} bytes; the limit is ${limit}`, { limit });
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit)
      throw new HttpError(413, 'request.too_large', `the body exceeds the limit of ${limit} bytes`, { limit });
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** Reads a JSON body with {@link readBody}; text that is not JSON is refused (400). */
/** Deepest nesting of objects and arrays a request body may have (commands need about six). */
export const MAX_JSON_DEPTH = 32;

/** The nesting depth of a JSON text, counted without recursion (a deep body cannot overflow the stack). */
export function jsonDepth(text: string): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text.charCodeAt(i);
    if (inString) {
      if (ch === 92 /* \\ */) i++;
      else if (ch === 34 /* " */) inString = false;
    } else if (ch === 34) inString = true;
    else if (ch === 123 || ch === 91 /* { [ */) max = Math.max(max, ++depth);
    else if (ch === 125 || ch === 93 /* } ] */) depth--;
  }
  return max;
}

export async function readJson(req: IncomingMessage, limit: number): Promise<unknown> {
  const text = await readBody(req, limit);
  if (!text.trim()) throw new HttpError(400, 'request.malformed_json', 'the body is empty; expected a JSON object');
  const depth = jsonDepth(text);
  if (depth > MAX_JSON_DEPTH)
    throw new HttpError(
      400,
      'request.too_deep',
      `the body nests ${depth} levels deep; at most ${MAX_JSON_DEPTH} are accepted`,
    );
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new HttpError(400, 'request.malformed_json', `the body is not valid JSON: ${(err as Error).message}`);
  }
}

/** Whether a request's Origin (when the browser sends one) is this server's own. */
export function sameOrigin(req: IncomingMessage, extra: readonly string[] = []): boolean {
  const origin = req.headers.origin;
  if (req.headers['sec-fetch-site'] === 'cross-site') return false;
  if (!origin) return true;
  if (extra.includes(origin)) return true;
  const host = req.headers.host;
  if (!host) return false;
  // Over TLS only the https origin is ours: a plain-HTTP page must not command a TLS console.
  const encrypted = (req.socket as { encrypted?: boolean }).encrypted === true;
  return origin === `https://${host}` || (!encrypted && origin === `http://${host}`);
}

export const MIME: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json; charset=utf-8',
  '.woff2': 'font/woff2',
};

/**
 * Static files served by URL path (the console's and the inspector's pages): only the files found
 * under the root at start, with a known type; nothing outside this map is ever read. Cached in memory
 * after the first read (not with `HANDOFF_CONSOLE_DEV=1`).
 */
export class StaticFiles {
  #files: Map<string, string>;
  #cache = new Map<string, Buffer>();

  private constructor(files: Map<string, string>) {
    this.#files = files;
  }

  /** The files under `root`, as `<prefix><relative path>`, plus `extra` (URL path → file). */
  static async load(root: string, prefix: string, extra: Record<string, string> = {}): Promise<StaticFiles> {
    const files = new Map<string, string>();
    const walk = async (dir: string): Promise<void> => {
      for (const entry of await readdir(dir, { withFileTypes: true })) {
        const full = join(dir, entry.name);
        if (entry.isDirectory()) await walk(full);
        else if (MIME[extname(entry.name)]) files.set(`${prefix}${relative(root, full).split(sep).join('/')}`, full);
      }
    };
    await walk(root);
    for (const [path, file] of Object.entries(extra)) files.set(path, file);
    return new StaticFiles(files);
  }

  has(path: string): boolean {
    return this.#files.has(path);
  }

  async send(reply: FastifyReply, path: string): Promise<FastifyReply> {
    const file = this.#files.get(path);
    if (!file) throw new HttpError(404, 'request.not_found', `nothing at ${path}`);
    let body = this.#cache.get(file);
    if (!body) {
      body = await readFile(file);
      if (process.env.HANDOFF_CONSOLE_DEV !== '1') this.#cache.set(file, body);
    }
    return reply
      .code(200)
      .headers({ 'Content-Type': MIME[extname(file)] ?? 'application/octet-stream', 'Cache-Control': 'no-cache' })
      .send(body);
  }
}
