import { createHash } from 'node:crypto';
import { z } from 'zod';

/**
 * Signals in (docs/api.md): what the HTTP API, the NATS ingestion and the typed client share. The
 * episode id is derived from the idempotency key, so every path (HTTP on any node, NATS, a retry
 * after a restart) names the same episode for the same key, and the runtime's "actor exists" check
 * makes the start happen at most once.
 */

/**
 * The episode id of an idempotency key on a model: `sig-` + the first 128 bits of
 * SHA-256(`<model>\n<key>`). The key space is per model, not per account.
 */
export function episodeIdFor(model: string, key: string): string {
  return `sig-${createHash('sha256').update(`${model}\n${key}`).digest('hex').slice(0, 32)}`;
}

/**
 * The subject a producer publishes a model's signals to (JetStream stream {@link signalsStreamName}).
 * The message body is the model's signal (JSON); the `Nats-Msg-Id` header is its idempotency key; a
 * `traceparent` header becomes the episode's parent trace.
 */
export function signalSubject(namespace: string, model: string): string {
  return `handoff.${namespace}.signals.${model}`;
}

/** Where a node publishes a refused signal (core NATS, not stored): {@link SignalRefusal}. */
export function signalRefusedSubject(namespace: string, model: string): string {
  return `handoff.${namespace}.ingest.refused.${model}`;
}

/** Stream names allow letters, digits, `-` and `_`; anything else becomes `_`. */
function streamPart(s: string): string {
  return s.replace(/[^A-Za-z0-9_-]/g, '_');
}

/**
 * The JetStream stream of a model's signals, one per model: JetStream's `Nats-Msg-Id` duplicate
 * window is per stream, and keys are per model.
 */
export function signalsStreamName(namespace: string, model: string): string {
  return `HO_${streamPart(namespace)}_SIG_${streamPart(model)}`;
}

/** A signal a node refused for good (it is also kept as a dead letter); `error.details.path` names the field. */
export const SignalRefusal = z.object({
  model: z.string(),
  /** The message's `Nats-Msg-Id` (null when it had none). */
  idempotencyKey: z.string().nullable(),
  /** The episode the key names (null without a key): it was not started. */
  episodeId: z.string().nullable(),
  /** The stream sequence of the refused message. */
  seq: z.number().int(),
  error: z.object({
    code: z.string(),
    message: z.string(),
    details: z.record(z.string(), z.unknown()).optional(),
  }),
});
export type SignalRefusal = z.infer<typeof SignalRefusal>;
