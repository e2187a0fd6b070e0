import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { HandoffError } from '../contracts/errors.ts';
import { KEY_ENV, type Keyring } from './keyring.ts';

/**
 * The sealed-value envelope, version 1:
 *
 * | bytes | field |
 * |---|---|
 * | 1 | version (`0x01`) |
 * | 1 | key id length n |
 * | n | key id (ASCII) |
 * | 12 | random nonce |
 * | … | AES-256-GCM ciphertext |
 * | 16 | GCM tag |
 *
 * The additional authenticated data is the header (version, key id) followed by the value's
 * context: the LevelDB key or the JetStream subject it is stored under. A value copied to another
 * key, or a header edited to name another key, fails authentication.
 *
 * `0x01` never starts a JSON text, so sealed and plaintext JSON values tell themselves apart.
 */
export const ENVELOPE_V1 = 0x01;
const NONCE = 12;
const TAG = 16;

/** A sealed value names a key id the keyring does not hold (removed too early, or the wrong ring). */
export class UnknownDataKeyError extends HandoffError {
  constructor(keyId: string, context: string) {
    super(
      'keys.unknown',
      `value at '${context}' is sealed under data key '${keyId}', which is not configured (add it to ${KEY_ENV.keys} or ${KEY_ENV.file})`,
      { keyId, context },
    );
  }
}

/** A sealed value failed authentication: it was altered, truncated or moved to another key. */
export class SealedValueAuthError extends HandoffError {
  constructor(context: string, reason: string, keyId?: string) {
    super(
      'keys.auth_failed',
      `value at '${context}' failed authentication (${reason}): it was altered, truncated or moved`,
      { context, reason, ...(keyId ? { keyId } : {}) },
    );
  }
}

/** The data holds sealed values but no data keys are configured. */
export class DataKeyRequiredError extends HandoffError {
  constructor(where: string, keyId?: string) {
    super(
      'keys.required',
      `${where} is encrypted${keyId ? ` (values sealed under data key '${keyId}')` : ''}: set ${KEY_ENV.keys} (and ${KEY_ENV.activeId}) or ${KEY_ENV.file}`,
      { where, ...(keyId ? { keyId } : {}) },
    );
  }
}

const ctxBytes = (context: string | Uint8Array) =>
  typeof context === 'string' ? Buffer.from(context, 'utf8') : context;

export function isSealed(value: Uint8Array): boolean {
  return value.length > 0 && value[0] === ENVELOPE_V1;
}

/** The key id a sealed value names, or `undefined` for a value that is not sealed (plaintext). */
export function sealedKeyId(value: Uint8Array): string | undefined {
  if (!isSealed(value) || value.length < 2) return undefined;
  const n = value[1]!;
  if (value.length < 2 + n) return undefined;
  return Buffer.from(value.buffer, value.byteOffset + 2, n).toString('latin1');
}

const headers = new Map<string, Buffer>();
function headerOf(id: string): Buffer {
  let h = headers.get(id);
  if (!h) {
    h = Buffer.allocUnsafe(2 + id.length);
    h[0] = ENVELOPE_V1;
    h[1] = id.length;
    h.write(id, 2, 'latin1');
    headers.set(id, h);
  }
  return h;
}

// Nonces are drawn from the CSPRNG in blocks: one call per 1024 values instead of one per value
// (random 96-bit nonces either way; the block is never reused).
let noncePool = Buffer.alloc(0);
let nonceAt = 0;
function nextNonce(): Buffer {
  if (nonceAt + NONCE > noncePool.length) {
    noncePool = randomBytes(NONCE * 1024);
    nonceAt = 0;
  }
  const n = noncePool.subarray(nonceAt, nonceAt + NONCE);
  nonceAt += NONCE;
  return n;
}

/** Seals `plaintext` under the keyring's active key, bound to `context` (the storage key). */
export function seal(keyring: Keyring, plaintext: Uint8Array, context: string | Uint8Array): Buffer {
  const { id, key } = keyring.active;
  const header = headerOf(id);
  const nonce = nextNonce();
  const cipher = createCipheriv('aes-256-gcm', key, nonce);
  cipher.setAAD(Buffer.concat([header, ctxBytes(context)]));
  const body = cipher.update(plaintext);
  cipher.final();
  return Buffer.concat([header, nonce, body, cipher.getAuthTag()], header.length + NONCE + body.length + TAG);
}

/** Opens a sealed value stored under `context`. Throws `UnknownDataKeyError` or `SealedValueAuthError`. */
export function open(keyring: Keyring | undefined, sealed: Uint8Array, context: string | Uint8Array): Buffer {
  const where = typeof context === 'string' ? context : Buffer.from(context).toString('utf8');
  if (!isSealed(sealed)) throw new SealedValueAuthError(where, 'not a sealed value');
  const n = sealed[1];
  if (n === undefined || sealed.length < 2 + n + NONCE + TAG)
    throw new SealedValueAuthError(where, 'truncated envelope');
  const buf = Buffer.from(sealed.buffer, sealed.byteOffset, sealed.length);
  const id = buf.toString('latin1', 2, 2 + n);
  if (!keyring) throw new DataKeyRequiredError(`value at '${where}'`, id);
  const dk = keyring.get(id);
  if (!dk) throw new UnknownDataKeyError(id, where);
  const headerEnd = 2 + n;
  const nonce = buf.subarray(headerEnd, headerEnd + NONCE);
  const tag = buf.subarray(buf.length - TAG);
  const decipher = createDecipheriv('aes-256-gcm', dk.key, nonce);
  decipher.setAAD(Buffer.concat([buf.subarray(0, headerEnd), ctxBytes(context)]));
  decipher.setAuthTag(tag);
  try {
    const body = decipher.update(buf.subarray(headerEnd + NONCE, buf.length - TAG));
    return Buffer.concat([body, decipher.final()]);
  } catch {
    throw new SealedValueAuthError(where, 'GCM tag mismatch', id);
  }
}

/**
 * Reads a stored value that may be sealed or plaintext (written before encryption was turned on,
 * or by a store without keys). Plaintext is returned as is.
 */
export function openMaybe(keyring: Keyring | undefined, value: Uint8Array, context: string | Uint8Array): Uint8Array {
  return isSealed(value) ? open(keyring, value, context) : value;
}
