import type { Observation } from '../contracts/observation.ts';

/**
 * Data minimisation towards planners that run outside the process (an LLM endpoint).
 *
 * Every field the model's contract classifies `sensitive()` (names, e-mail addresses, IBANs ...) is
 * replaced by a reference token such as `[[sensitive:customer.iban]]` before the observation leaves
 * the process. The LLM reasons on the rest; when an action argument needs the withheld value it passes
 * the token, and {@link rehydrate} puts the real value back in-process, before the plan is validated.
 * Free text (a ticket's wording) may also carry personal data the contract cannot see: e-mail
 * addresses, IBANs and card numbers found in other strings are masked too (not recoverable).
 */

export const TOKEN_PREFIX = '[[sensitive:';
const TOKEN = /^\[\[sensitive:([A-Za-z0-9_.$-]+)\]\]$/;

export function tokenFor(path: string): string {
  return `${TOKEN_PREFIX}${path}]]`;
}

/** What minimisation needs of a model: the sensitive paths of its observation fields. */
export interface MinimiseModel {
  name?: string;
  sensitiveFields: readonly string[];
}

export interface MinimiseOptions {
  /** Mask e-mail addresses, IBANs and card numbers in free text as well. @default true */
  scrubFreeText?: boolean;
}

const FREE_TEXT: [RegExp, string][] = [
  [/[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}/g, '[email]'],
  [/\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]{4}){2,7}(?:[ ]?[A-Z0-9]{1,4})?\b/g, '[iban]'],
  [/\b(?:\d[ -]?){13,19}\b/g, '[card-number]'],
];

/** Masks e-mail addresses, IBANs and card numbers in a text. */
export function scrubFreeText(text: string): string {
  return scrub(text);
}

function scrub(text: string): string {
  let out = text;
  for (const [re, mask] of FREE_TEXT) out = out.replace(re, mask);
  return out;
}

/** Concrete paths (array indices filled in) of a pattern such as `items.*.name` in a value. */
function expand(value: unknown, parts: string[], prefix: string[] = []): string[][] {
  if (parts.length === 0) return [prefix];
  if (value === null || typeof value !== 'object') return [];
  const [head, ...rest] = parts as [string, ...string[]];
  const rec = value as Record<string, unknown>;
  const keys = head === '*' ? Object.keys(rec) : head in rec ? [head] : [];
  return keys.flatMap((k) => expand(rec[k], rest, [...prefix, k]));
}

function getAt(value: unknown, path: string[]): unknown {
  let v: unknown = value;
  for (const p of path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<string, unknown>)[p];
  }
  return v;
}

function setAt(value: unknown, path: string[], next: unknown): void {
  let v = value as Record<string, unknown>;
  for (const p of path.slice(0, -1)) v = v[p] as Record<string, unknown>;
  v[path.at(-1)!] = next;
}

function mapStrings(value: unknown, fn: (s: string) => string, skip: Set<string>, path = ''): unknown {
  if (skip.has(path)) return value;
  if (typeof value === 'string') return fn(value);
  if (Array.isArray(value)) return value.map((v, i) => mapStrings(v, fn, skip, path ? `${path}.${i}` : String(i)));
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = mapStrings(v, fn, skip, path ? `${path}.${k}` : k);
    return out;
  }
  return value;
}

/**
 * A copy of the observation fit to leave the process: sensitive fields replaced by reference tokens,
 * personal data in free text masked, and a `minimised` transform recorded in its provenance. The
 * original is not changed.
 */
export function minimiseObservation(
  observation: Observation,
  model: MinimiseModel,
  opts: MinimiseOptions = {},
): Observation {
  const fields = structuredClone(observation.fields) as Record<string, unknown>;
  const masked: string[] = [];
  for (const pattern of model.sensitiveFields) {
    for (const path of expand(fields, pattern.split('.'))) {
      const current = getAt(fields, path);
      if (current === undefined || current === null) continue;
      const dotted = path.join('.');
      setAt(fields, path, tokenFor(dotted));
      masked.push(dotted);
    }
  }
  const minimisedFields =
    opts.scrubFreeText === false ? fields : (mapStrings(fields, scrub, new Set(masked)) as Record<string, unknown>);
  const at = observation.provenance.observedAt;
  return {
    ...observation,
    ...(observation.requestedBy !== undefined ? { requestedBy: observation.requestedBy } : {}),
    subject: opts.scrubFreeText === false ? observation.subject : scrub(observation.subject),
    fields: minimisedFields,
    provenance: {
      ...observation.provenance,
      transforms: [
        ...observation.provenance.transforms,
        {
          name: 'minimised',
          at,
          by: 'handoff/minimise',
          note: `${masked.length} sensitive field(s) replaced by reference tokens${opts.scrubFreeText === false ? '' : '; e-mail addresses, IBANs and card numbers in free text masked'}`,
        },
      ],
    },
  };
}

/**
 * Puts withheld values back: every string argument that is exactly a reference token of a sensitive
 * field of this observation becomes that field's value. Tokens that name anything else are left as
 * they are (the argument contract then rejects them). Returns the paths that were filled in.
 */
export function rehydrate<T>(value: T, observation: Observation, model: MinimiseModel): { value: T; filled: string[] } {
  const filled: string[] = [];
  const allowed = (dotted: string) =>
    model.sensitiveFields.some((p) => {
      const a = p.split('.');
      const b = dotted.split('.');
      return a.length === b.length && a.every((seg, i) => seg === '*' || seg === b[i]);
    });
  const walk = (v: unknown): unknown => {
    if (typeof v === 'string') {
      const m = TOKEN.exec(v.trim());
      if (m && allowed(m[1]!)) {
        const real = getAt(observation.fields, m[1]!.split('.'));
        if (real !== undefined) {
          filled.push(m[1]!);
          return real;
        }
      }
      return v;
    }
    if (Array.isArray(v)) return v.map(walk);
    if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x)]));
    return v;
  };
  return { value: walk(value) as T, filled };
}

/** Whether a value still holds a reference token (an argument the LLM could not fill). */
export function hasToken(value: unknown): boolean {
  return JSON.stringify(value ?? null).includes(TOKEN_PREFIX);
}
