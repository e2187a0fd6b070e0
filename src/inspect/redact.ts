import { sensitivePaths } from '../contracts/classification.ts';
import type { LoadedModel } from '../models/loader.ts';

/** What a redacted value is replaced by (the same word the logs use). */
export const REDACTED = '[REDACTED]';

type Trie = Map<string, Trie> & { leaf?: boolean };

/**
 * Redaction of the values the inspector shows (contexts, events, journal entries), driven by each
 * model's contract classification: every field marked `sensitive()` in the signal, in the
 * observation's fields and in any action's arguments, wherever an agent or a case carries it:
 *
 * - `signal.*`, `input.signal.*` (an episode's input)
 * - `observation.fields.*`, `input.observation.fields.*` (perception results, a case's input)
 * - `plan`, `proposedPlan`, `resolution.plan`, `input.plan`: `.actions.*.args.*`
 *
 * Copy-on-write: only the objects on the way to a redacted field are copied; everything else is
 * shared with the input, which is never modified. Cheap enough to run on every inspection record.
 */
export class Redactor {
  #tries = new Map<string, Trie>();
  #fallback: Trie;

  constructor(models: readonly LoadedModel[]) {
    const all = new Set<string>();
    for (const m of models) {
      const paths = pathsFor(m);
      for (const p of paths) all.add(p);
      this.#tries.set(m.name, trie(paths));
    }
    // A record of an unknown model is redacted with every model's paths.
    this.#fallback = trie([...all]);
  }

  /** The dotted paths redacted for a model (for docs and tests). */
  static paths(model: LoadedModel): string[] {
    return pathsFor(model);
  }

  redact<T>(model: string, value: T): T {
    return apply(value, this.#tries.get(model) ?? this.#fallback) as T;
  }
}

function pathsFor(m: LoadedModel): string[] {
  const signal = new Set<string>([...sensitivePaths(m.handlers.signal), ...m.sensitiveFields]);
  const fields = new Set<string>(m.sensitiveFields);
  const args = new Set<string>();
  for (const a of Object.values(m.handlers.actions)) for (const p of sensitivePaths(a.args)) args.add(p);
  const out: string[] = [];
  for (const p of signal) out.push(`signal.${p}`, `input.signal.${p}`);
  for (const p of fields) out.push(`observation.fields.${p}`, `input.observation.fields.${p}`);
  for (const plan of ['plan', 'proposedPlan', 'resolution.plan', 'input.plan'])
    for (const p of args) out.push(`${plan}.actions.*.args.${p}`);
  return out;
}

function trie(paths: readonly string[]): Trie {
  const root: Trie = new Map();
  for (const p of paths) {
    let node = root;
    for (const part of p.split('.')) {
      let next = node.get(part);
      if (!next) node.set(part, (next = new Map()));
      node = next;
    }
    node.leaf = true;
  }
  return root;
}

function apply(value: unknown, t: Trie): unknown {
  if (t.size === 0 || value === null || typeof value !== 'object') return value;
  const src = value as Record<string, unknown>;
  let copy: Record<string, unknown> | unknown[] | null = null;
  const set = (k: string, v: unknown) => {
    if (v === src[k]) return;
    copy ??= Array.isArray(src) ? [...src] : { ...src };
    (copy as Record<string, unknown>)[k] = v;
  };
  for (const [key, sub] of t) {
    const keys = key === '*' ? Object.keys(src) : key in src ? [key] : [];
    for (const k of keys) {
      const v = src[k];
      if (sub.leaf) {
        if (v !== undefined && v !== null) set(k, REDACTED);
      } else set(k, apply(v, sub));
    }
  }
  return copy ?? value;
}
