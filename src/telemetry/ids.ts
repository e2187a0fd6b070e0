import { createHash } from 'node:crypto';

/**
 * Trace identity of an episode, derived from its id alone: every node, the review case and the
 * reviewer's commands compute the same W3C trace id from the episode id, so one episode is one trace
 * across processes without carrying context in the store or on the wire.
 */
const hex = (s: string, bytes: number): string => {
  const h = createHash('sha256')
    .update(s)
    .digest('hex')
    .slice(0, bytes * 2);
  // An all-zero id is invalid in W3C trace context; a hash practically never gives one, but be exact.
  return /^0+$/.test(h) ? `${h.slice(0, -1)}1` : h;
};

/** The episode's trace id: 16 bytes, hex. */
export const traceIdFor = (episodeId: string): string => hex(`handoff/trace/${episodeId}`, 16);

/** The span id of the episode's root span: 8 bytes, hex. */
export const episodeSpanIdFor = (episodeId: string): string => hex(`handoff/episode/${episodeId}`, 8);

/** The span id of a review case's span (child of the episode's root span). */
export const caseSpanIdFor = (caseId: string): string => hex(`handoff/case/${caseId}`, 8);

/** W3C `traceparent` of an episode: its root span, sampled. */
export const traceparentFor = (episodeId: string): string =>
  `00-${traceIdFor(episodeId)}-${episodeSpanIdFor(episodeId)}-01`;

/**
 * The episode an actor belongs to, from its id: cases are `<episodeId>.case-<n>` and operator cases
 * `<target>.operator-<t>` (docs/architecture.md). Anything else is taken as an episode id.
 */
export function episodeOf(actorId: string): string {
  return actorId.replace(/\.(case-\d+|operator-[a-z0-9]+)$/, '');
}
