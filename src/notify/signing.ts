import { createHmac, timingSafeEqual } from 'node:crypto';
import { CallbackRefusedError } from './errors.ts';

/**
 * Signatures of webhook deliveries and callbacks, as Stripe signs its webhooks:
 *
 *   Handoff-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, `${t}.${body}`)>
 *
 * While a secret is being rotated the header carries one `v1=` per secret; a verifier accepts the
 * request when any of them matches one of its secrets.
 */
export const SIGNATURE_HEADER = 'Handoff-Signature';

/** Shortest secret accepted (bytes of its UTF-8 text). */
export const MIN_SECRET_BYTES = 16;

export function hmacHex(secret: string, timestamp: number, body: string): string {
  return createHmac('sha256', secret).update(`${timestamp}.${body}`, 'utf8').digest('hex');
}

/** The value of {@link SIGNATURE_HEADER} for `body` signed at `timestamp` (unix seconds) with each secret. */
export function signatureHeader(secrets: readonly string[], timestamp: number, body: string): string {
  return [`t=${timestamp}`, ...secrets.map((s) => `v1=${hmacHex(s, timestamp, body)}`)].join(',');
}

/** Splits an environment variable's value into secrets (spaces or commas between them, while rotating). */
export function parseSecrets(value: string | undefined): string[] {
  return (value ?? '').split(/[\s,]+/).filter(Boolean);
}

export interface VerifyOptions {
  /** The raw header value. */
  header: string | undefined;
  /** The raw request body, exactly as received. */
  body: string;
  secrets: readonly string[];
  /** Unix seconds. */
  nowSec: number;
  /** Largest accepted |now − t|, in seconds. */
  toleranceSec: number;
}

/**
 * Checks a signature header; returns its timestamp and the matching signature, or throws
 * {@link CallbackRefusedError} (`callback.signature_missing`, `callback.signature_malformed`,
 * `callback.stale_timestamp`, `callback.bad_signature`). The comparison takes the same time whether
 * or not a signature matches.
 */
export function verifySignature(o: VerifyOptions): { timestamp: number; signature: string } {
  if (!o.header)
    throw new CallbackRefusedError(401, 'callback.signature_missing', `the ${SIGNATURE_HEADER} header is missing`);
  let timestamp: number | undefined;
  const signatures: string[] = [];
  for (const part of o.header.split(',')) {
    const i = part.indexOf('=');
    if (i <= 0) continue;
    const key = part.slice(0, i).trim();
    const value = part.slice(i + 1).trim();
    if (key === 't' && /^\d{1,12}$/.test(value)) timestamp = Number(value);
    else if (key === 'v1' && /^[0-9a-f]{64}$/.test(value)) signatures.push(value);
  }
  if (timestamp === undefined || signatures.length === 0)
    throw new CallbackRefusedError(
      401,
      'callback.signature_malformed',
      `the ${SIGNATURE_HEADER} header must read t=<unix seconds>,v1=<hex HMAC-SHA256>`,
    );
  // Checked before the signature so that the cost of a stale request does not depend on the secret.
  if (Math.abs(o.nowSec - timestamp) > o.toleranceSec)
    throw new CallbackRefusedError(
      401,
      'callback.stale_timestamp',
      `the signed timestamp is ${o.nowSec - timestamp} s away from this server's clock; at most ${o.toleranceSec} s are accepted`,
      { skewSec: o.nowSec - timestamp, toleranceSec: o.toleranceSec },
    );
  let match: string | null = null;
  for (const secret of o.secrets) {
    const expected = Buffer.from(hmacHex(secret, timestamp, o.body), 'hex');
    for (const sig of signatures) if (timingSafeEqual(expected, Buffer.from(sig, 'hex')) && match === null) match = sig;
  }
  if (match === null)
    throw new CallbackRefusedError(
      401,
      'callback.bad_signature',
      'the signature does not match the body and timestamp for any secret of this source',
    );
  return { timestamp, signature: match };
}
