import pino, { type Logger } from 'pino';
import { sensitivePaths } from '../contracts/classification.ts';
import type { LoadedModel } from '../models/loader.ts';

/**
 * Credentials that must never reach a log, at the top of a record or up to three levels down: NATS
 * passwords, tokens and authenticators (`NatsSecurityOptions`, nats.js connect options), TLS private
 * keys, session cookies and authorization headers.
 */
export const SECRET_LOG_PATHS: readonly string[] = [
  'pass',
  'password',
  'token',
  'authenticator',
  'key',
  'cookie',
  'authorization',
].flatMap((k) =>
  k === 'key'
    ? ['tls.key', '*.tls.key']
    : k === 'cookie' || k === 'authorization'
      ? [`headers.${k}`, `*.headers.${k}`]
      : [k, `*.${k}`, `*.*.${k}`, `*.*.*.${k}`],
);

/**
 * A pino logger that redacts every field the models classify as sensitive, wherever an observation
 * or a signal appears in a log record. Logs go to stderr, so stdout stays clean for `--json`.
 */
export function createLogger(opts: {
  models: LoadedModel[];
  level?: string;
  destination?: pino.DestinationStream;
  mixin?: (merge: object) => object;
}): Logger {
  const paths = new Set<string>(SECRET_LOG_PATHS);
  for (const m of opts.models) {
    for (const f of m.sensitiveFields) {
      const p = f.replace(/\.\*/g, '[*]');
      for (const prefix of ['observation.fields', '*.observation.fields', 'fields', '*.fields', 'signal', '*.signal'])
        paths.add(`${prefix}.${p}`);
    }
    // Action arguments classified sensitive (an IBAN in a refund, an e-mail in a notification).
    for (const action of Object.values(m.handlers.actions)) {
      for (const f of sensitivePaths(action.args)) {
        const p = f.replace(/\.\*/g, '[*]');
        for (const prefix of ['plan.actions[*].args', '*.plan.actions[*].args', 'args', '*.args'])
          paths.add(`${prefix}.${p}`);
      }
    }
  }
  return pino(
    {
      level: opts.level ?? process.env.HANDOFF_LOG_LEVEL ?? 'warn',
      redact: { paths: [...paths], censor: '[REDACTED]' },
      base: { app: 'handoff' },
      ...(opts.mixin ? { mixin: opts.mixin } : {}),
    },
    opts.destination ?? pino.destination(2),
  );
}
