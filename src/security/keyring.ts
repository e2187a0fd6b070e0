import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { HandoffError } from '../contracts/errors.ts';

/** AES-256 data keys are 32 bytes. */
export const DATA_KEY_BYTES = 32;
const KEY_ID = /^[A-Za-z0-9._-]{1,64}$/;

/** The environment variables the keyring is read from (see docs/encryption.md). */
export const KEY_ENV = {
  keys: 'HANDOFF_DATA_KEYS',
  activeId: 'HANDOFF_DATA_KEY_ID',
  file: 'HANDOFF_DATA_KEY_FILE',
} as const;

/**
 * The data-key configuration is wrong: a malformed entry, a key that is not 32 bytes, a duplicate id,
 * an active id that names no key. `details.variable` names the variable (or file) at fault.
 */
export class DataKeyConfigError extends HandoffError {
  readonly variable: string;
  constructor(variable: string, message: string, details: Record<string, unknown> = {}, options?: { cause?: unknown }) {
    super('keys.invalid', `${variable}: ${message}`, { variable, ...details }, options);
    this.variable = variable;
  }
}

export interface DataKey {
  id: string;
  key: Buffer;
}

/**
 * The data keys a store may read, and the one it seals new values with. Old keys stay in the ring
 * until `handoff keys rotate` has re-sealed everything under the active one.
 */
export class Keyring {
  readonly active: DataKey;
  readonly #keys: ReadonlyMap<string, DataKey>;

  constructor(keys: DataKey[], activeId?: string, variable = 'keyring') {
    if (keys.length === 0) throw new DataKeyConfigError(variable, 'no data keys given');
    const map = new Map<string, DataKey>();
    for (const k of keys) {
      if (!KEY_ID.test(k.id))
        throw new DataKeyConfigError(variable, `key id '${k.id}' must be 1-64 characters of A-Z a-z 0-9 . _ -`, {
          keyId: k.id,
        });
      if (k.key.length !== DATA_KEY_BYTES)
        throw new DataKeyConfigError(
          variable,
          `key '${k.id}' is ${k.key.length} bytes; AES-256 needs ${DATA_KEY_BYTES}`,
          { keyId: k.id },
        );
      if (map.has(k.id)) throw new DataKeyConfigError(variable, `key id '${k.id}' is given twice`, { keyId: k.id });
      map.set(k.id, k);
    }
    this.#keys = map;
    if (activeId === undefined) {
      if (keys.length > 1)
        throw new DataKeyConfigError(
          KEY_ENV.activeId,
          `${keys.length} data keys are configured (${[...map.keys()].join(', ')}): name the one that seals new values`,
        );
      this.active = keys[0]!;
    } else {
      const active = map.get(activeId);
      if (!active)
        throw new DataKeyConfigError(
          KEY_ENV.activeId,
          `names key '${activeId}', which is not among the configured keys (${[...map.keys()].join(', ')})`,
          { keyId: activeId },
        );
      this.active = active;
    }
  }

  get(id: string): DataKey | undefined {
    return this.#keys.get(id);
  }

  get ids(): string[] {
    return [...this.#keys.keys()];
  }
}

/**
 * Parses `kid:base64key` entries separated by commas, whitespace or new lines (`#` starts a comment
 * in a key file). Each key must decode to exactly 32 bytes (standard or URL-safe base64).
 */
export function parseDataKeys(text: string, variable: string): DataKey[] {
  const keys: DataKey[] = [];
  const entries = text
    .split(/\r?\n/)
    .map((line) => line.replace(/#.*$/, ''))
    .join(',')
    .split(/[\s,]+/)
    .filter(Boolean);
  for (const [i, entry] of entries.entries()) {
    const colon = entry.indexOf(':');
    if (colon <= 0) throw new DataKeyConfigError(variable, `entry ${i + 1} is not 'kid:base64key'`, { entry: i + 1 });
    const id = entry.slice(0, colon);
    const b64 = entry.slice(colon + 1);
    if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(b64))
      throw new DataKeyConfigError(variable, `key '${id}' is not base64`, { keyId: id });
    const key = Buffer.from(b64.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
    if (key.length !== DATA_KEY_BYTES)
      throw new DataKeyConfigError(
        variable,
        `key '${id}' decodes to ${key.length} bytes; AES-256 needs ${DATA_KEY_BYTES} (generate one with \`handoff keys generate\`)`,
        { keyId: id, bytes: key.length },
      );
    keys.push({ id, key });
  }
  return keys;
}

export interface KeyringSources {
  /** `kid:base64key,...` (what `HANDOFF_DATA_KEYS` holds). */
  keys?: string | undefined;
  /** A file of `kid:base64key` lines (what `HANDOFF_DATA_KEY_FILE` names). */
  keyFile?: string | undefined;
  /** The key that seals new values. @default the only key, when exactly one is configured */
  activeId?: string | undefined;
}

/**
 * Builds the keyring from explicit sources, falling back to the environment (`HANDOFF_DATA_KEYS`,
 * `HANDOFF_DATA_KEY_FILE`, `HANDOFF_DATA_KEY_ID`). Returns `undefined` when no key is configured
 * anywhere: the store then stays unencrypted, as the zero-config default.
 */
export function loadKeyring(sources: KeyringSources = {}, env: NodeJS.ProcessEnv = process.env): Keyring | undefined {
  const keys: DataKey[] = [];
  const inline = sources.keys ?? env[KEY_ENV.keys];
  const inlineVar = sources.keys !== undefined ? 'keys' : KEY_ENV.keys;
  if (inline !== undefined && inline.trim() !== '') keys.push(...parseDataKeys(inline, inlineVar));
  const file = sources.keyFile ?? env[KEY_ENV.file];
  const fileVar = sources.keyFile !== undefined ? '--data-key-file' : KEY_ENV.file;
  if (file !== undefined && file !== '') {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new DataKeyConfigError(
        fileVar,
        `cannot read key file ${file}: ${err instanceof Error ? err.message : String(err)}`,
        { file },
        { cause: err },
      );
    }
    keys.push(...parseDataKeys(text, `${fileVar} (${file})`));
  }
  const activeId = sources.activeId ?? (env[KEY_ENV.activeId] || undefined);
  if (keys.length === 0) {
    if (activeId !== undefined)
      throw new DataKeyConfigError(
        KEY_ENV.activeId,
        `names key '${activeId}' but no data keys are configured (set ${KEY_ENV.keys} or ${KEY_ENV.file})`,
        { keyId: activeId },
      );
    return undefined;
  }
  return new Keyring(keys, activeId, keys.length > 1 ? KEY_ENV.activeId : inline ? inlineVar : fileVar);
}

/** A new random data key, as the `kid:base64key` entry the configuration takes. */
export function generateDataKey(
  id = `k${new Date().toISOString().slice(0, 10).replace(/-/g, '')}-${randomBytes(3).toString('hex')}`,
): { id: string; key: string; entry: string } {
  if (!KEY_ID.test(id))
    throw new DataKeyConfigError('--id', `key id '${id}' must be 1-64 characters of A-Z a-z 0-9 . _ -`, { keyId: id });
  const key = randomBytes(DATA_KEY_BYTES).toString('base64');
  return { id, key, entry: `${id}:${key}` };
}
