import { z } from 'zod';
import { DataClass } from './classification.ts';

/** The schema version every message of this release carries. Bumped on a breaking change. */
export const SCHEMA_VERSION = 1 as const;

export const IsoTime = z.iso.datetime({ offset: true });
/** Epoch milliseconds, as read from the runtime's injected clock. */
export const EpochMs = z.number().int().nonnegative();

/** W3C trace context, version 00. */
export const Traceparent = z
  .string()
  .regex(/^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/, 'expected a W3C traceparent (00-<trace-id>-<span-id>-<flags>)')
  .refine(
    (t) => !/^00-0{32}-/.test(t) && !/^00-[0-9a-f]{32}-0{16}-/.test(t),
    'trace id and span id must not be all zeros',
  );

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/** A W3C traceparent (version 00) taken apart, or undefined when it is absent or not one. */
export function parseTraceparent(
  tp: string | undefined,
): { traceId: string; spanId: string; sampled: boolean } | undefined {
  const m = tp ? TRACEPARENT.exec(tp) : null;
  if (!m) return undefined;
  return { traceId: m[1]!, spanId: m[2]!, sampled: (parseInt(m[3]!, 16) & 1) === 1 };
}

/**
 * The trace an episode belongs to, fixed when it starts: a random trace id, or the trace of the
 * `traceparent` its signal came with (then `parentSpanId` is the caller's span, and the episode's
 * root span is its child). Review cases carry their episode's. Stored with the actors, so every node,
 * restart and case of the episode traces into the same trace.
 */
export const TraceContext = z.object({
  traceId: z.string().regex(/^[0-9a-f]{32}$/),
  spanId: z.string().regex(/^[0-9a-f]{16}$/),
  parentSpanId: z
    .string()
    .regex(/^[0-9a-f]{16}$/)
    .optional(),
  sampled: z.boolean().optional(),
});
export type TraceContext = z.infer<typeof TraceContext>;

/** One step that changed the data after it left its source (normalised, enriched, minimised...). */
export const Transform = z.object({
  name: z.string().min(1),
  at: IsoTime,
  by: z.string().min(1),
  note: z.string().optional(),
});
export type Transform = z.infer<typeof Transform>;

/** Where a piece of data came from, when it was observed there, and what happened to it since. */
export const Provenance = z.object({
  source: z.string().min(1),
  observedAt: IsoTime,
  transforms: z.array(Transform).default([]),
});
export type Provenance = z.infer<typeof Provenance>;

/** The envelope around every message on the wire. */
export function envelope<T extends z.ZodType>(data: T) {
  return z.object({
    id: z.string().min(1),
    type: z.string().regex(/^handoff\.[a-z0-9_.-]+$/, 'expected a namespaced type such as handoff.case.claim'),
    schemaVersion: z.literal(SCHEMA_VERSION, {
      error: `unsupported schemaVersion (this node speaks ${SCHEMA_VERSION})`,
    }),
    time: IsoTime,
    traceparent: Traceparent.optional(),
    provenance: Provenance,
    classification: DataClass,
    data,
  });
}
export const Envelope = envelope(z.unknown());
export type Envelope = z.infer<typeof Envelope>;
