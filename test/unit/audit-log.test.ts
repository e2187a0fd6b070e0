import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { canonicalJson } from '../../src/base/audit-log.ts';

/** The definition of canonical JSON every stored audit hash was computed with. */
function reference(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map(reference).join(',')}]`;
  const obj = value as Record<string, unknown>;
  return `{${Object.keys(obj)
    .filter((k) => obj[k] !== undefined)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${reference(obj[k])}`)
    .join(',')}}`;
}

describe('canonical JSON of audit entries', () => {
  it('is the same string as the definition for any value (so every stored hash still verifies)', () => {
    const value = fc.letrec((tie) => ({
      any: fc.oneof(
        { depthSize: 'small' },
        fc.jsonValue(),
        fc.constant(undefined),
        fc.array(tie('any')),
        fc.dictionary(fc.string(), tie('any')),
        fc.sparseArray(tie('any')),
      ),
    })).any;
    fc.assert(
      fc.property(value, (v) => {
        expect(canonicalJson(v)).toBe(reference(v));
      }),
      { numRuns: 2000 },
    );
  });

  it('sorts keys at every level and leaves out undefined ones', () => {
    expect(canonicalJson({ b: 1, a: { d: [1, undefined, 'x'], c: undefined, é: null } })).toBe(
      '{"a":{"d":[1,null,"x"],"é":null},"b":1}',
    );
  });
});
