import { EffectError } from '../contracts/errors.ts';

/** Probabilities that one step of each kind fails transiently, for tests and `--faults`. */
export interface FaultSpec {
  perceive?: number;
  plan?: number;
  execute?: number;
  compensate?: number;
  /** A LevelDB batch write fails (see `LevelStoreOptions.faultRate`). */
  store?: number;
}

/** Parses `0.05` (every kind) or `perceive=0.05,execute=0.1,store=0.01`. */
export function parseFaults(text: string): FaultSpec {
  const t = text.trim();
  if (/^\d*\.?\d+$/.test(t)) {
    const p = Number(t);
    return { perceive: p, plan: p, execute: p, compensate: p, store: p };
  }
  const spec: FaultSpec = {};
  for (const part of t.split(',').filter(Boolean)) {
    const [k, v] = part.split('=');
    const p = Number(v);
    if (!k || !['perceive', 'plan', 'execute', 'compensate', 'store'].includes(k) || !(p >= 0 && p <= 1))
      throw new Error(
        `bad fault spec '${part}': expected kind=probability with kind perceive|plan|execute|compensate|store`,
      );
    spec[k as keyof FaultSpec] = p;
  }
  return spec;
}

/** Throws a transient failure with the spec's probability for this kind, using a stable draw. */
export function maybeFail(spec: FaultSpec | undefined, kind: keyof FaultSpec, draw: number): void {
  const p = spec?.[kind] ?? 0;
  if (p > 0 && draw < p) throw new EffectError(`injected ${kind} fault`, { transient: true, code: 'fault.injected' });
}
