import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { sensitivePaths } from '../contracts/classification.ts';
import { ContractError, HandoffError } from '../contracts/errors.ts';
import { parseContract } from '../contracts/parse.ts';
import { ReviewerCommand } from '../contracts/reviewer-command.ts';
import { buildLineage, withCompensationTypes } from '../lineage/lineage.ts';
import { maskLineage } from '../lineage/mask.ts';
import type { AgentContext } from '../machines/agent.ts';
import { explainCaseRejection, type CaseContext, type CaseEvent } from '../machines/review-case.ts';
import { HOLDS_KEY, summaryKey, type CompactionSummary, type LegalHold } from '../lineage/retention-records.ts';
import { json } from './app.ts';
import type { Principal } from '../httpkit/auth.ts';
import { MASK, caseView, episodeView, mayOpen, unmaskActions } from './case-view.ts';
import { HttpError, errorBody, readJson } from '../httpkit/http.ts';
import { sessionOf, type GatewayContext as Gateway } from './gateway-context.ts';

const COMMAND_TYPES: Record<string, CaseEvent['type']> = {
  'handoff.case.claim': 'claim',
  'handoff.case.release': 'release',
  'handoff.case.renew': 'renew',
  'handoff.case.approve': 'approve',
  'handoff.case.modify': 'modify',
  'handoff.case.reject': 'reject',
  'handoff.case.escalate': 'escalate',
};

type CaseRequest = FastifyRequest<{ Params: { id: string } }>;

/** `/api/cases/:id` (the case page), its audit trail, its lineage, and reviewer commands. */
export function registerCaseRoutes(scope: FastifyInstance, gw: Gateway): void {
  const cases = new CaseRoutes(gw);
  scope.get('/api/cases/:id', async (request: CaseRequest, reply) =>
    json(reply, 200, await cases.body(request.params.id, sessionOf(request).principal)),
  );
  scope.get('/api/cases/:id/audit', async (request: CaseRequest, reply) =>
    json(reply, 200, await cases.audit(request.params.id, sessionOf(request).principal)),
  );
  scope.get('/api/cases/:id/lineage', async (request: CaseRequest, reply) =>
    json(reply, 200, await cases.lineage(request.params.id, sessionOf(request).principal)),
  );
  scope.post('/api/cases/:id/commands', async (request: CaseRequest, reply) =>
    cases.command(request, reply, request.params.id, sessionOf(request).principal),
  );
}

class CaseRoutes {
  constructor(private readonly gw: Gateway) {}

  /** Reads a case and checks the reviewer may open it: 404 unknown, 403 not theirs. */
  async read(id: string, p: Principal) {
    const view = await this.gw.backend.get(id);
    if (!view || view.kind !== 'case')
      throw new HandoffError('actor.not_found', `no case with id '${id}'`, { caseId: id });
    const ctx = view.context as CaseContext;
    const model = this.gw.models.get(view.model);
    if (!model) throw new HandoffError('actor.not_found', `no case with id '${id}'`, { caseId: id });
    if (!mayOpen(p, ctx)) {
      const tier = ctx.tiers[ctx.tier - 1];
      throw new HttpError(
        403,
        'auth.forbidden',
        `case ${id} is at tier ${ctx.tier}${tier ? ` (${tier.name}), which needs the role ${tier.roles.join(' or ')}` : ''}; your roles do not include it`,
        { caseId: id, rule: 'tier-role' },
      );
    }
    return { view, ctx, model };
  }

  async body(id: string, p: Principal) {
    const { view, model } = await this.read(id, p);
    const agent = await this.gw.backend.get((view.context as CaseContext).episodeId);
    const c = caseView(
      model,
      view,
      p,
      this.gw.names,
      agent?.kind === 'agent' ? (agent.context as AgentContext) : undefined,
    );
    const episode = episodeView(agent, model, p.grants[model.name]?.seeSensitive ?? false);
    return { case: c, episode, serverTime: this.gw.backend.now() };
  }

  async audit(id: string, p: Principal) {
    const { ctx } = await this.read(id, p);
    const entries = await this.gw.audit.entries([id, ctx.episodeId]);
    return {
      entries: entries.map((e) => ({
        seq: e.seq,
        at: e.at,
        kind: e.kind,
        actor: e.actor,
        by: e.by,
        byName: this.gw.names.get(e.by) ?? null,
        data: e.data,
        hash: e.hash,
        prev: e.prev,
      })),
      indexedThrough: this.gw.audit.indexed,
    };
  }

  /** The lineage of the case's episode (`handoff lineage` as JSON), masked like the case page. */
  async lineage(id: string, p: Principal) {
    const { model } = await this.read(id, p);
    const b = this.gw.backend;
    const lineage = await buildLineage(id, {
      get: (actorId) => b.get(actorId),
      auditOf: (actors) => this.gw.audit.entries(actors, Number.MAX_SAFE_INTEGER),
      ...(b.journal ? { journal: (actorId: string) => b.journal!(actorId) } : {}),
      ...(b.effect ? { effect: (key: string) => b.effect!(key) } : {}),
      ...(b.getMeta
        ? {
            summary: (episodeId: string) => b.getMeta!<CompactionSummary>(summaryKey(episodeId)),
            hold: async (episodeId: string) => (await b.getMeta!<Record<string, LegalHold>>(HOLDS_KEY))?.[episodeId],
          }
        : {}),
    });
    const named = withCompensationTypes(lineage, model.config.actions);
    if (p.grants[model.name]?.seeSensitive) return { lineage: named };
    const keys = (type: string) =>
      new Set(sensitivePaths(model.handlers.actions[type]?.args ?? z.object({})).map((path) => path.split('.').pop()!));
    return { lineage: maskLineage(named, keys, MASK) };
  }

  /** A reviewer command: parsed, authorised, sent; every refusal audited before the answer. */
  async command(request: FastifyRequest, reply: FastifyReply, caseId: string, p: Principal): Promise<FastifyReply> {
    const gw = this.gw;
    const now = gw.backend.now();
    let type = 'unknown';
    let commandId: string | undefined;
    try {
      const body = await readJson(request.raw, gw.opts.maxBodyBytes ?? 64 * 1024);
      if (!body || typeof body !== 'object' || Array.isArray(body))
        throw new HttpError(400, 'request.invalid', 'the body must be a JSON object (a reviewer command)');
      const raw = body as Record<string, unknown>;
      if (typeof raw.type === 'string') type = raw.type.slice(0, 64);
      if ('reviewer' in raw)
        throw new HttpError(
          400,
          'request.reviewer_in_payload',
          'do not send a reviewer: the reviewer is the signed-in user of this session',
          { path: 'reviewer' },
        );
      if (raw.caseId !== undefined && raw.caseId !== caseId)
        throw new HttpError(
          400,
          'request.invalid',
          `caseId in the body (${String(raw.caseId)}) differs from the URL (${caseId})`,
          { path: 'caseId' },
        );
      const { view, ctx, model } = await this.read(caseId, p);
      const grant = p.grants[model.name]!;
      commandId =
        typeof raw.commandId === 'string' && raw.commandId.length > 0 && raw.commandId.length <= 100
          ? `web:${p.id}:${raw.commandId}`
          : undefined;
      const cmdInput: Record<string, unknown> = {
        ...raw,
        caseId,
        reviewer: { id: p.id, roles: grant.roles },
        commandId: commandId ?? raw.commandId,
      };
      if (raw.type === 'handoff.case.modify') {
        if ('plan' in raw)
          throw new HttpError(
            400,
            'request.invalid',
            "send the edited arguments as `actions` ([{ type, args }] for every action of the plan); the planner's plan itself cannot be replaced",
            { path: 'plan' },
          );
        const { actions, forbidden } = unmaskActions(model, ctx.plan, raw.actions, grant.seeSensitive);
        if (forbidden.length)
          throw new HttpError(
            403,
            'auth.sensitive_field',
            `your roles may not see or change ${forbidden.join(', ')}; leave those fields as they are`,
            { path: forbidden[0], fields: forbidden },
          );
        cmdInput.actions = actions;
      }
      const cmd = parseContract(ReviewerCommand, cmdInput, 'ReviewerCommand');
      const edited = cmd.type === 'handoff.case.modify' ? model.editActions(ctx.plan, cmd.actions) : null;
      // Authorise before the actor sees it: the rules that forbid (role, separation of duties, four eyes).
      const probe = {
        type: COMMAND_TYPES[cmd.type]!,
        reviewer: cmd.reviewer,
        at: now,
        ...(cmd.type === 'handoff.case.modify' ? { actions: edited, comment: cmd.comment } : {}),
        ...('reason' in cmd && cmd.reason ? { reason: cmd.reason } : {}),
      } as CaseEvent;
      const why = view.status === 'active' ? explainCaseRejection(view.state, ctx, probe) : null;
      if (why?.forbidden)
        throw new HttpError(403, 'auth.forbidden', `${caseId}: ${why.reason}`, { caseId, rule: why.rule });
      const ack = await gw.backend.command(cmd);
      const fresh = await gw.backend.get(caseId);
      if (fresh && fresh.kind === 'case')
        gw.projection.apply(caseId, fresh.seq, fresh.state, fresh.status, fresh.context as CaseContext);
      const agent = fresh ? await gw.backend.get(ctx.episodeId) : undefined;
      const bodyOut = fresh
        ? {
            ack,
            case: caseView(
              model,
              fresh,
              p,
              gw.names,
              agent?.kind === 'agent' ? (agent.context as AgentContext) : undefined,
            ),
            episode: episodeView(agent, model, grant.seeSensitive),
          }
        : { ack };
      return json(reply, 200, bodyOut);
    } catch (err) {
      const { status, body } = errorBody(err);
      const details = err instanceof HandoffError ? err.details : {};
      // Audited before the answer, so an acknowledged refusal is always on record.
      await gw.auditSafe([
        {
          at: now,
          kind: 'command.refused',
          actor: caseId,
          by: p.id,
          data: {
            type,
            status,
            code: body.error.code,
            message: body.error.message.slice(0, 500),
            ...(commandId ? { commandId } : {}),
            ...(typeof details.rule === 'string' ? { rule: details.rule } : {}),
            ...(err instanceof ContractError ? { path: err.path } : {}),
          },
        },
      ]);
      if (status < 500)
        gw.log?.warn(
          {
            refused: {
              caseId,
              type,
              status,
              code: body.error.code,
              reviewer: p.id,
              ...(typeof details.rule === 'string' ? { rule: details.rule } : {}),
            },
          },
          'command refused',
        );
      return gw.fail(reply, err);
    }
  }
}
