import type { z } from 'zod';
import { ContractError, type ContractIssue } from './errors.ts';

export function issuePath(path: readonly PropertyKey[]): string {
  return path.map((p) => String(p)).join('.');
}

export function toIssues(error: z.ZodError, prefix = ''): ContractIssue[] {
  return error.issues.map((i) => ({
    path: [prefix, issuePath(i.path)].filter(Boolean).join('.'),
    message: i.message,
  }));
}

/**
 * Parses `input` with `schema`; on failure throws a {@link ContractError} naming the contract and the
 * path of every bad field. The input is never mutated.
 */
export function parseContract<S extends z.ZodType>(
  schema: S,
  input: unknown,
  contract: string,
  prefix = '',
): z.output<S> {
  const result = schema.safeParse(input);
  if (!result.success) throw new ContractError(contract, toIssues(result.error, prefix));
  return result.data;
}
