/**
 * Unknown keys in a document validated by a zod schema, with a did-you-mean: a misspelt key
 * (`fourEye` for `fourEyes`) would otherwise be dropped silently and its setting fall back to the
 * default. Walks the document along the schema (objects, arrays, records, optionals, defaults,
 * unions), so it works for nested schemas declared anywhere, strict or not.
 */
import type { z } from 'zod';

/** Levenshtein distance (insertions, deletions, substitutions), case-insensitive. */
export function editDistance(a: string, b: string): number {
  const x = a.toLowerCase();
  const y = b.toLowerCase();
  let prev = Array.from({ length: y.length + 1 }, (_, j) => j);
  for (let i = 1; i <= x.length; i++) {
    const cur = [i];
    for (let j = 1; j <= y.length; j++)
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (x[i - 1] === y[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[y.length]!;
}

/** The closest of `known` to `key` when it is close enough to be a slip (distance ≤ max(2, len/3)), else null. */
export function didYouMean(key: string, known: readonly string[]): string | null {
  let best: { k: string; d: number } | null = null;
  for (const k of known) {
    const d = editDistance(key, k);
    if (!best || d < best.d) best = { k, d };
  }
  if (!best) return null;
  const lower = key.toLowerCase();
  const contains = best.k.toLowerCase().includes(lower) || lower.includes(best.k.toLowerCase());
  return best.d <= Math.max(2, Math.floor(key.length / 3)) || (contains && best.d <= 3) ? best.k : null;
}

export interface UnknownKey {
  path: string;
  key: string;
  suggestion: string | null;
  known: string[];
  message: string;
}

type Def = { type: string; [k: string]: unknown };
const defOf = (s: unknown): Def | undefined => (s as { _zod?: { def?: Def } })?._zod?.def;

function unwrap(s: z.ZodType): z.ZodType {
  for (let i = 0; i < 20; i++) {
    const d = defOf(s);
    if (!d) return s;
    if (['optional', 'nullable', 'default', 'prefault', 'readonly', 'catch', 'nonoptional'].includes(d.type))
      s = d.innerType as z.ZodType;
    else if (d.type === 'pipe') s = d.in as z.ZodType;
    else if (d.type === 'lazy') s = (d.getter as () => z.ZodType)();
    else return s;
  }
  return s;
}

const plain = (v: unknown): v is Record<string, unknown> => !!v && typeof v === 'object' && !Array.isArray(v);

/** Every key of `value` the schema does not declare, with the closest declared key. */
export function unknownKeys(schema: z.ZodType, value: unknown, path = ''): UnknownKey[] {
  const s = unwrap(schema);
  const d = defOf(s);
  if (!d) return [];
  const at = (k: string | number) => (path ? `${path}.${k}` : String(k));
  switch (d.type) {
    case 'object': {
      if (!plain(value)) return [];
      const shape = d.shape as Record<string, z.ZodType>;
      const catchall = defOf(d.catchall);
      const open = !!catchall && catchall.type !== 'never';
      const known = Object.keys(shape);
      const out: UnknownKey[] = [];
      for (const [k, v] of Object.entries(value)) {
        if (shape[k]) out.push(...unknownKeys(shape[k], v, at(k)));
        else if (!open) {
          const suggestion = didYouMean(k, known);
          out.push({
            path: at(k),
            key: k,
            suggestion,
            known,
            message: `unknown key '${k}'${suggestion ? ` — did you mean '${suggestion}'?` : ''} (known here: ${known.join(', ')})`,
          });
        }
      }
      return out;
    }
    case 'array':
      return Array.isArray(value) ? value.flatMap((v, i) => unknownKeys(d.element as z.ZodType, v, at(i))) : [];
    case 'record':
      return plain(value)
        ? Object.entries(value).flatMap(([k, v]) => unknownKeys(d.valueType as z.ZodType, v, at(k)))
        : [];
    case 'union': {
      const options = d.options as z.ZodType[];
      const disc = d.discriminator as string | undefined;
      if (disc && plain(value)) {
        const match = options.find((o) => {
          const f = (defOf(unwrap(o))?.shape as Record<string, z.ZodType> | undefined)?.[disc];
          const lit = defOf(f);
          return lit?.type === 'literal' && (lit.values as unknown[]).includes(value[disc]);
        });
        return match ? unknownKeys(match, value, path) : [];
      }
      // Plain union: the option the value fits best.
      let best: UnknownKey[] | null = null;
      for (const o of options) {
        if (!o.safeParse(value).success) continue;
        const u = unknownKeys(o, value, path);
        if (!best || u.length < best.length) best = u;
      }
      return best ?? [];
    }
    default:
      return [];
  }
}
