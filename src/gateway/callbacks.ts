import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { z } from 'zod';
import { SCHEMA_VERSION } from '../contracts/envelope.ts';
import { ContractError, HandoffError } from '../contracts/errors.ts';
import { parseContract } from '../contracts/parse.ts';
import { ReviewerCommand } from '../contracts/reviewer-command.ts';
import { LoginThrottle, type Principal } from '../httpkit/auth.ts';
import type { GatewayBackend } from './backend.ts';
import { mayOpen } from './case-view.ts';
import { errorBody, HttpError, readBody, sendError, sendJson } from '../httpkit/http.ts';
import { explainCaseRejection, type CaseContext, type CaseEvent } from '../machines/review-case.ts';
import type { LoadedModel } from '../models/loader.ts';
import type { Ack } from '../runtime/runtime.ts';
import type { CallbackConfig } from '../contracts/notifications.ts';
import { CallbackRefusedError, NotificationConfigError } from '../notify/errors.ts';
import { MIN_SECRET_BYTES, parseSecrets, SIGNATURE_HEADER, verifySignature } from '../notify/signing.ts';

const fields = {
  schemaVersion: z.literal(SCHEMA_VERSION, { error: `unsupported schemaVersion (this node speaks ${SCHEMA_VERSION})` }),
  caseId: z.string().min(1).max(300),
  /** The sender's id for this decision (its ticket event id); a second callback with the same id is refused. */
  commandId: z.string().min(1).max(100),
  /** Optimistic concurrency: the case version the sender saw. */
  expectedVersion: z.number().int().nonnegative().optional(),
  /** Who decided in the sending system (an e-mail, a user name); recorded in the audit log. */
  actor: z.string().min(1).max(200).optional(),
};

/**
 * The body of `POST /api/callbacks/<source>`: a reviewer command without a reviewer (the source's
 * service principal is the reviewer). Decisions on a queued case claim it first, in the principal's name.
 */
export const CallbackPayload = z.discriminatedUnion('type', [
  z.object({ type: z.literal('handoff.case.approve'), ...fields, comment: z.string().max(2000).optional() }).strict(),
  z
    .object({
      type: z.literal('handoff.case.reject'),
      ...fields,
      reason: z.string().min(1, 'a rejection needs a reason').max(2000),
    })
    .strict(),
  z
    .object({
      type: z.literal('handoff.case.escalate'),
      ...fields,
      reason: z.string().min(1, 'an escalation needs a reason').max(2000),
    })
    .strict(),
]);
export type CallbackPayload = z.infer<typeof CallbackPayload>;

type Env = Record<string, string | undefined>;

/** A callback source of a model, with its secrets read from the environment. */
export interface CallbackSource {
  source: string;
  model: string;
  config: CallbackConfig;
  /** Empty while the secret variable is unset: the source is off. */
  secrets: string[];
  principal: Principal;
}

/**
 * The callback sources of the models, secrets read from `env`. Throws {@link NotificationConfigError}
 * (naming the path and variable, never a value) for a source defined twice, a principal role the
 * model does not have, a principal id that is a reviewer's, or a secret shorter than 16 bytes.
 */
export function resolveCallbackSources(models: readonly LoadedModel[], env: Env): Map<string, CallbackSource> {
  const sources = new Map<string, CallbackSource>();
  for (const m of models) {
    (m.config.notifications?.callbacks ?? []).forEach((c, i) => {
      const path = `notifications.callbacks.${i}`;
      const fail = (p: string, message: string, envName?: string) => {
        throw new NotificationConfigError(`model ${m.name}: ${path}.${p}: ${message}`, {
          model: m.name,
          path: `${path}.${p}`,
          ...(envName ? { env: envName } : {}),
        });
      };
      if (sources.has(c.source))
        fail('source', `callback source '${c.source}' is also defined by model ${sources.get(c.source)!.model}`);
      c.principal.roles.forEach((r, j) => {
        if (!m.config.roles[r]) fail(`principal.roles.${j}`, `unknown role '${r}'`);
      });
      if (m.config.reviewers.some((r) => r.id === c.principal.id))
        fail(
          'principal.id',
          `'${c.principal.id}' is a reviewer of the model; a service principal needs an id of its own`,
        );
      const secrets = parseSecrets(env[c.secretEnv]);
      if (secrets.some((s) => Buffer.byteLength(s) < MIN_SECRET_BYTES))
        fail('secretEnv', `a secret in ${c.secretEnv} is shorter than ${MIN_SECRET_BYTES} bytes`, c.secretEnv);
      const principal: Principal = {
        id: c.principal.id,
        name: c.principal.name,
        grants: { [m.name]: { roles: [...c.principal.roles], seeSensitive: false } },
      };
      sources.set(c.source, { source: c.source, model: m.name, config: c, secrets, principal });
    });
  }
  return sources;
}

export interface CallbackEndpointOptions {
  /** Where the secrets are read from. @default process.env */
  env?: Env;
  /** This server's clock for the replay window, unix seconds. @default the wall clock */
  nowSec?: () => number;
  /** @default 64 KiB */
  maxBodyBytes?: number;
  log?: Logger;
}

/** Each source, and whether it accepts callbacks (its secret is set). */
export function callbackStatus(
  sources: ReadonlyMap<string, CallbackSource>,
): { source: string; model: string; principal: string; roles: string[]; on: boolean; off: string | null }[] {
  return [...sources.values()].map((s) => ({
    source: s.source,
    model: s.model,
    principal: s.principal.id,
    roles: s.principal.grants[s.model]!.roles,
    on: s.secrets.length > 0,
    off: s.secrets.length ? null : `${s.config.secretEnv} is not set`,
  }));
}

const CLAIM_FIRST = new Set(['handoff.case.approve', 'handoff.case.reject']);
const EVENT_OF: Record<string, CaseEvent['type']> = {
  'handoff.case.claim': 'claim',
  'handoff.case.approve': 'approve',
  'handoff.case.reject': 'reject',
  'handoff.case.escalate': 'escalate',
};

/**
 * Signed decisions from outside systems (ticketing): `POST /api/callbacks/<source>` with the
 * `Handoff-Signature` header over the raw body. A verified callback acts as the source's service
 * principal and goes through the same authorisation as a reviewer in the console (the case must be
 * visible to the principal's roles; the tier-role, separation-of-duties and four-eyes rules are
 * checked before the case actor sees the command, and again by the actor itself). Every callback,
 * accepted or refused, is appended to the audit log before it is answered.
 */
export class CallbackEndpoint {
  #backend: GatewayBackend;
  #sources: Map<string, CallbackSource>;
  #nowSec: () => number;
  #limit: number;
  #log: Logger | undefined;
  /** Signatures accepted within their window: the same signed request twice is a replay. */
  #seen = new Map<string, number>();
  /** Forged signatures from one address slow that address down. */
  #throttle = new LoginThrottle({ maxFailures: () => 20, windowMs: 15 * 60_000, lockMs: 30_000, now: Date.now });

  constructor(backend: GatewayBackend, opts: CallbackEndpointOptions = {}) {
    this.#backend = backend;
    this.#nowSec = opts.nowSec ?? (() => Math.floor(Date.now() / 1000));
    this.#limit = opts.maxBodyBytes ?? 64 * 1024;
    this.#log = opts.log;
    this.#sources = resolveCallbackSources(backend.models, opts.env ?? process.env);
  }

  /** Each source, and whether it accepts callbacks (its secret is set). */
  status(): ReturnType<typeof callbackStatus> {
    return callbackStatus(this.#sources);
  }

  async handle(req: IncomingMessage, res: ServerResponse, rawSource: string): Promise<void> {
    const at = this.#backend.now();
    const ip = req.socket.remoteAddress ?? 'unknown';
    let source = rawSource;
    try {
      source = decodeURIComponent(rawSource);
    } catch {
      // kept as sent; it matches no source
    }
    source = source.slice(0, 100);
    let by = `callback:${source}`;
    let actor = `callback:${source}`;
    let type = 'unknown';
    let commandId: string | undefined;
    let sender: string | undefined;
    try {
      if (req.method !== 'POST') throw new HttpError(405, 'request.method', 'use POST to send a callback');
      const wait = this.#throttle.retryAfter([`ip:${ip}`]);
      if (wait > 0)
        throw new HttpError(
          429,
          'auth.throttled',
          `too many refused callbacks from this address; retry in ${Math.ceil(wait / 1000)} s`,
          { retryAfterMs: wait },
        );
      const src = this.#sources.get(source);
      if (!src) throw new CallbackRefusedError(404, 'callback.unknown_source', `no callback source named '${source}'`);
      if (src.secrets.length === 0)
        throw new CallbackRefusedError(
          503,
          'callback.disabled',
          `callbacks from '${source}' are off: ${src.config.secretEnv} is not set on this node`,
        );
      const raw = await readBody(req, this.#limit);
      const header = req.headers[SIGNATURE_HEADER.toLowerCase()];
      const nowSec = this.#nowSec();
      let verified: { timestamp: number; signature: string };
      try {
        verified = verifySignature({
          header: Array.isArray(header) ? header[0] : header,
          body: raw,
          secrets: src.secrets,
          nowSec,
          toleranceSec: src.config.toleranceSec,
        });
      } catch (err) {
        this.#throttle.failed([`ip:${ip}`]);
        throw err;
      }
      if ((this.#seen.get(verified.signature) ?? 0) >= nowSec)
        throw new CallbackRefusedError(
          401,
          'callback.replayed',
          'this signed request was already received; sign each callback anew',
        );
      this.#remember(verified.signature, verified.timestamp + src.config.toleranceSec, nowSec);
      const p = src.principal;
      by = p.id;
      let body: unknown;
      try {
        body = JSON.parse(raw);
      } catch (err) {
        throw new HttpError(400, 'request.malformed_json', `the body is not valid JSON: ${(err as Error).message}`);
      }
      if (!body || typeof body !== 'object' || Array.isArray(body))
        throw new HttpError(400, 'request.invalid', 'the body must be a JSON object (a callback decision)');
      const rawBody = body as Record<string, unknown>;
      if (typeof rawBody.type === 'string') type = rawBody.type.slice(0, 64);
      if (typeof rawBody.caseId === 'string') actor = rawBody.caseId.slice(0, 300);
      if ('reviewer' in rawBody)
        throw new HttpError(
          400,
          'request.reviewer_in_payload',
          `do not send a reviewer: callbacks from '${source}' act as ${p.id}`,
          { path: 'reviewer' },
        );
      const payload = parseContract(CallbackPayload, body, 'CallbackPayload');
      sender = payload.actor;
      commandId = `callback:${source}:${payload.commandId}`;
      const { actor: _sender, ...command } = payload;
      const reviewer = { id: p.id, roles: p.grants[src.model]!.roles };
      const decision = parseContract(ReviewerCommand, { ...command, reviewer, commandId }, 'ReviewerCommand');

      const view = await this.#backend.get(payload.caseId);
      if (!view || view.kind !== 'case')
        throw new HandoffError('actor.not_found', `no case with id '${payload.caseId}'`, { caseId: payload.caseId });
      const ctx = view.context as CaseContext;
      if (!mayOpen(p, ctx)) {
        const tier = ctx.tiers[ctx.tier - 1];
        throw new HttpError(
          403,
          'auth.forbidden',
          `case ${payload.caseId} is at tier ${ctx.tier}${tier ? ` (${tier.name}), which needs the role ${tier.roles.join(' or ')}` : ''}; ${p.id} does not have it`,
          { caseId: payload.caseId, rule: 'tier-role' },
        );
      }
      const steps = [
        ...(CLAIM_FIRST.has(decision.type) && view.status === 'active' && view.state === 'queued'
          ? [
              parseContract(
                ReviewerCommand,
                {
                  type: 'handoff.case.claim',
                  schemaVersion: SCHEMA_VERSION,
                  caseId: payload.caseId,
                  commandId: `${commandId}:claim`,
                  reviewer,
                  ...(payload.expectedVersion !== undefined ? { expectedVersion: payload.expectedVersion } : {}),
                },
                'ReviewerCommand',
              ),
            ]
          : []),
        decision,
      ];
      // Authorised before the actor sees it, by the rules the console applies: tier role, separation of duties, four eyes.
      const first = steps[0]!;
      const probe = {
        type: EVENT_OF[first.type]!,
        reviewer,
        at,
        ...('reason' in first && first.reason ? { reason: first.reason } : {}),
      } as CaseEvent;
      const why = view.status === 'active' ? explainCaseRejection(view.state, ctx, probe) : null;
      if (why?.forbidden)
        throw new HttpError(403, 'auth.forbidden', `${payload.caseId}: ${why.reason}`, {
          caseId: payload.caseId,
          rule: why.rule,
        });

      let ack: Ack | undefined;
      for (const [i, step] of steps.entries()) {
        // After our own claim, the version moved on: the decision goes on the claimed case.
        const cmd = i > 0 && 'expectedVersion' in step ? { ...step, expectedVersion: undefined } : step;
        try {
          ack = await this.#backend.command(cmd);
        } catch (err) {
          if (i > 0) await this.#release(payload.caseId, reviewer, `${commandId}:release`);
          throw err;
        }
      }
      await this.#audit([
        {
          at,
          kind: 'callback.accepted',
          actor: payload.caseId,
          by: p.id,
          data: {
            source,
            type: decision.type,
            commandId,
            ...(sender ? { sender } : {}),
            claimed: steps.length > 1,
            version: ack!.seq,
            state: ack!.state,
          },
        },
      ]);
      sendJson(res, 200, {
        ok: true,
        source,
        principal: p.id,
        ack,
        case: { id: payload.caseId, state: ack!.state, version: ack!.seq },
      });
    } catch (err) {
      const { status, body } = errorBody(err);
      const details = err instanceof HandoffError ? err.details : {};
      await this.#audit([
        {
          at,
          kind: 'callback.refused',
          actor,
          by,
          data: {
            source,
            ip,
            type,
            status,
            code: body.error.code,
            message: body.error.message.slice(0, 500),
            ...(commandId ? { commandId } : {}),
            ...(sender ? { sender } : {}),
            ...(typeof details.rule === 'string' ? { rule: details.rule } : {}),
            ...(err instanceof ContractError ? { path: err.path } : {}),
          },
        },
      ]);
      if (status >= 500) this.#log?.error({ err, source }, 'callback failed');
      sendError(res, err);
    }
  }

  async #release(caseId: string, reviewer: { id: string; roles: string[] }, commandId: string): Promise<void> {
    try {
      await this.#backend.command({
        type: 'handoff.case.release',
        schemaVersion: SCHEMA_VERSION,
        caseId,
        commandId,
        reviewer,
        reason: 'the callback decision was refused',
      });
    } catch {
      // The lease runs out by itself.
    }
  }

  #remember(signature: string, untilSec: number, nowSec: number): void {
    if (this.#seen.size > 10_000) for (const [s, until] of this.#seen) if (until < nowSec) this.#seen.delete(s);
    this.#seen.set(signature, untilSec);
  }

  async #audit(drafts: Parameters<GatewayBackend['appendAudit']>[0]): Promise<void> {
    try {
      await this.#backend.appendAudit(drafts);
    } catch (err) {
      this.#log?.error({ err }, 'audit append failed');
    }
  }
}
