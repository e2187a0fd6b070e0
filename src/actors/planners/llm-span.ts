import { context, SpanKind, SpanStatusCode, trace, TraceFlags, type Context } from '@opentelemetry/api';
import { parseTraceparent } from '../../contracts/envelope.ts';
import type { LlmEndpointConfig } from '../../contracts/planner-config.ts';
import type { ChatResponse } from './llm-wire.ts';

/**
 * One LLM request as an OpenTelemetry GenAI client span (`chat <model>`, semantic conventions
 * gen_ai.*: operation, provider, request and response model, token usage, finish reasons) in the
 * episode's trace. A no-op unless a tracer provider is registered (`handoff` commands register
 * theirs when OTLP is configured).
 */
export async function inChatSpan(
  config: Pick<LlmEndpointConfig, 'model' | 'temperature' | 'maxTokens'>,
  url: string,
  meta: { episodeId: string; round: number; traceparent?: string },
  attempt: number,
  redact: (s: string) => string,
  request: () => Promise<ChatResponse>,
): Promise<ChatResponse> {
  const parent = parentContext(meta.traceparent);
  const span = trace.getTracer('handoff-llm').startSpan(
    `chat ${config.model}`,
    {
      kind: SpanKind.CLIENT,
      attributes: {
        'gen_ai.operation.name': 'chat',
        'gen_ai.provider.name': 'openai',
        'gen_ai.request.model': config.model,
        'gen_ai.request.temperature': config.temperature,
        ...(config.maxTokens ? { 'gen_ai.request.max_tokens': config.maxTokens } : {}),
        'server.address': new URL(url).hostname,
        'handoff.episode.id': meta.episodeId,
        'handoff.planner.round': meta.round,
        'handoff.planner.attempt': attempt + 1,
      },
    },
    parent,
  );
  try {
    const reply = await request();
    span.setAttributes({
      ...(reply.model ? { 'gen_ai.response.model': reply.model } : {}),
      ...(typeof reply.usage?.prompt_tokens === 'number'
        ? { 'gen_ai.usage.input_tokens': reply.usage.prompt_tokens }
        : {}),
      ...(typeof reply.usage?.completion_tokens === 'number'
        ? { 'gen_ai.usage.output_tokens': reply.usage.completion_tokens }
        : {}),
      'gen_ai.response.finish_reasons': (reply.choices ?? []).map((c) => c.finish_reason ?? 'unknown'),
    });
    return reply;
  } catch (err) {
    span.setStatus({ code: SpanStatusCode.ERROR, message: redact((err as Error).message) });
    span.setAttribute('error.type', (err as { code?: string }).code ?? 'error');
    throw err;
  } finally {
    span.end();
  }
}

/** The span context of a W3C traceparent (the episode's), or the active context. */
function parentContext(traceparent: string | undefined): Context {
  const p = parseTraceparent(traceparent);
  if (!p) return context.active();
  return trace.setSpanContext(context.active(), {
    traceId: p.traceId,
    spanId: p.spanId,
    traceFlags: p.sampled ? TraceFlags.SAMPLED : TraceFlags.NONE,
    isRemote: true,
  });
}
