import { trace } from '@opentelemetry/api';
import { episodeOf, episodeSpanIdFor, traceIdFor } from './ids.ts';

/**
 * A pino `mixin` that puts trace and span ids on log records, so logs line up with traces:
 *
 * - inside an active OpenTelemetry span: that span's `trace_id` and `span_id`;
 * - otherwise, for a record about an actor (`actor`, `episode`, `episodeId`, `caseId` or `id` field):
 *   the episode's trace id and root span id, which are derived from the episode id (see `ids.ts`), so
 *   the runtime's logs join the episode's trace without carrying context around.
 *
 * `pino({ mixin: traceMixin() })`, or `createLogger({ ..., mixin: traceMixin() })`.
 */
export function traceMixin(
  lookup?: (actorId: string) => { traceId: string; spanId: string } | undefined,
): (merge: object) => Record<string, string> {
  return (merge): Record<string, string> => {
    const active = trace.getActiveSpan()?.spanContext();
    if (active && trace.isSpanContextValid(active))
      return { trace_id: active.traceId, span_id: active.spanId, trace_flags: `0${active.traceFlags.toString(16)}` };
    const m = merge as Record<string, unknown>;
    const id = [m.episodeId, m.episode, m.actor, m.caseId].find(
      (v): v is string => typeof v === 'string' && v.length > 0,
    );
    if (!id) return {};
    // The episode's stored trace, as tracing knows it; else the one derived from its id (older actors).
    const episode = episodeOf(id);
    const known = lookup?.(id) ?? lookup?.(episode);
    if (known) return { trace_id: known.traceId, span_id: known.spanId };
    return { trace_id: traceIdFor(episode), span_id: episodeSpanIdFor(episode) };
  };
}
