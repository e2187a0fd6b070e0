import type { Lineage } from './lineage.ts';

/**
 * Masks what a viewer without access to personal data may not see in a lineage: in each effect's
 * recorded result, the fields named like a sensitive argument of its action (as the case page masks
 * step results). `sensitiveKeys(type)` gives those names per action type.
 */
export function maskLineage(
  lineage: Lineage,
  sensitiveKeys: (actionType: string) => ReadonlySet<string>,
  mask: string,
): Lineage {
  const maskResult = (type: string, result: unknown): unknown => {
    if (!result || typeof result !== 'object' || Array.isArray(result)) return result;
    const keys = sensitiveKeys(type);
    if (keys.size === 0) return result;
    return Object.fromEntries(
      Object.entries(result as Record<string, unknown>).map(([k, v]) => [k, keys.has(k) ? mask : v]),
    );
  };
  return {
    ...lineage,
    actions: lineage.actions.map((a) => ({
      ...a,
      effect: a.effect ? { ...a.effect, result: maskResult(a.type, a.effect.result) } : null,
      compensation: {
        ...a.compensation,
        effect: a.compensation.effect
          ? {
              ...a.compensation.effect,
              result: maskResult(a.compensation.type ?? a.type, a.compensation.effect.result),
            }
          : null,
      },
    })),
  };
}
