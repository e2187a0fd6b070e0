import { z } from 'zod';

/**
 * How sensitive a piece of data is. `sensitive` covers personal data (names, e-mail addresses, IBANs):
 * it is redacted in logs and inspection, minimised towards planners and, with a data key, sealed at rest.
 */
export const DataClass = z.enum(['public', 'internal', 'confidential', 'sensitive']);
export type DataClass = z.infer<typeof DataClass>;

/** Registry of field classifications; a schema marked with {@link classify} carries its class here. */
export const classifications = z.registry<{ classification: DataClass }>();

/** Marks a schema (usually an object field) with a data class. Returns the same schema. */
export function classify<S extends z.ZodType>(schema: S, classification: DataClass): S {
  classifications.add(schema, { classification });
  return schema;
}

/** Shorthand for `classify(schema, 'sensitive')`. */
export function sensitive<S extends z.ZodType>(schema: S): S {
  return classify(schema, 'sensitive');
}

function unwrap(schema: z.ZodType): z.ZodType {
  let s: z.ZodType = schema;
  for (;;) {
    const def = (s as unknown as { def: { type: string; innerType?: z.ZodType; in?: z.ZodType; out?: z.ZodType } }).def;
    if (classifications.get(s)) return s;
    const WRAPPERS = ['optional', 'nullable', 'default', 'prefault', 'readonly', 'catch', 'nonoptional', 'lazy'];
    if (WRAPPERS.includes(def.type) && def.innerType) s = def.innerType;
    else if (def.type === 'pipe' && def.in && def.out) {
      // A transform's output is not a schema; the classification sits on either side of the pipe.
      s = classifications.get(def.out) ? def.out : def.in;
    } else return s;
  }
}

/**
 * Dotted paths of every field classified `sensitive` in an object schema, nested objects and arrays
 * included (array elements appear as `*`). Used to build log redaction and inspection masks.
 */
export function sensitivePaths(schema: z.ZodType, prefix = ''): string[] {
  const out: string[] = [];
  const own = classifications.get(schema)?.classification;
  if (own === 'sensitive' && prefix) return [prefix];
  const inner = unwrap(schema);
  if (inner !== schema && classifications.get(inner)?.classification === 'sensitive' && prefix) return [prefix];
  const def = (inner as unknown as { def: { type: string; shape?: Record<string, z.ZodType>; element?: z.ZodType } })
    .def;
  if (def.type === 'object' && def.shape) {
    for (const [key, child] of Object.entries(def.shape))
      out.push(...sensitivePaths(child, prefix ? `${prefix}.${key}` : key));
  } else if (def.type === 'array' && def.element) {
    out.push(...sensitivePaths(def.element, prefix ? `${prefix}.*` : '*'));
  }
  return out;
}

/** Replaces the value at each path (with `*` for array elements) by `mask`, on a deep copy; with no paths, returns `value` itself. */
export function maskPaths<T>(
  value: T,
  paths: readonly string[],
  mask: (v: unknown) => unknown = () => '[REDACTED]',
): T {
  if (paths.length === 0 || value === null || typeof value !== 'object') return value;
  const copy = structuredClone(value) as unknown;
  for (const path of paths) maskAt(copy, path.split('.'), mask);
  return copy as T;
}

function maskAt(node: unknown, parts: string[], mask: (v: unknown) => unknown): void {
  if (node === null || typeof node !== 'object') return;
  const [head, ...rest] = parts;
  if (head === undefined) return;
  const rec = node as Record<string, unknown>;
  const keys = head === '*' ? Object.keys(rec) : [head];
  for (const k of keys) {
    if (!(k in rec)) continue;
    if (rest.length === 0) rec[k] = mask(rec[k]);
    else maskAt(rec[k], rest, mask);
  }
}
