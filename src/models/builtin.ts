/**
 * The models shipped with Handoff (`models/` in a checkout, `dist/models/` in the installed package:
 * the same path relative to this file in both), found by name so that `handoff demo --model refunds`
 * works from any folder.
 */
import { readdirSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The folder holding the shipped models. */
export const BUILTIN_MODELS_DIR = fileURLToPath(new URL('../../models/', import.meta.url));

const isDir = (p: string) => statSync(p, { throwIfNoEntry: false })?.isDirectory() ?? false;

/** Names of the shipped models (`refunds`, `incidents`, `access`). */
export function builtinModels(): string[] {
  if (!isDir(BUILTIN_MODELS_DIR)) return [];
  return readdirSync(BUILTIN_MODELS_DIR, { withFileTypes: true })
    .filter(
      (e) => e.isDirectory() && statSync(join(BUILTIN_MODELS_DIR, e.name, 'model.json'), { throwIfNoEntry: false }),
    )
    .map((e) => e.name)
    .sort();
}

/**
 * A model argument as a folder: an existing folder as it is; otherwise the name of a shipped model
 * (`refunds`), also written as `models/refunds` (the default of several commands, which names the
 * shipped model when run outside a checkout). Anything else resolves as a path, for the loader to
 * report as missing.
 */
export function resolveModelDir(arg: string): string {
  const asPath = resolve(arg);
  if (isDir(asPath)) return asPath;
  const name = basename(arg);
  if ((arg === name || arg.replace(/\\/g, '/') === `models/${name}`) && isDir(join(BUILTIN_MODELS_DIR, name)))
    return join(BUILTIN_MODELS_DIR, name);
  return asPath;
}
