import { z } from 'zod';
import { EpisodeOutcome } from './episode-outcome.ts';
import { GateOutcome } from './gate-decision.ts';

/**
 * The public HTTP API for programs (`/api/v1`, docs/api.md): its routes, request and response bodies
 * and errors, in one place. The gateway's handlers parse with these schemas and the OpenAPI document
 * (`/api/v1/openapi.json`, checked in as docs/openapi/v1.json) is generated from them, so the two
 * cannot drift apart.
 *
 * `API_VERSION` is the published document's `info.version`. The path carries the major version; a
 * change that breaks a client of the committed document (an operation or a response field removed, a
 * request field made required) must change this version (test/unit/openapi.test.ts enforces it).
 */
export const API_VERSION = '1.1.0';
export const API_PREFIX = '/api/v1';

/** Largest batch of `POST /api/v1/models/{model}/signals`. */
export const MAX_SIGNAL_BATCH = 100;

/** What a service account may do, per model. */
export const ApiOperation = z.enum(['signals:submit', 'episodes:read']);
export type ApiOperation = z.infer<typeof ApiOperation>;

export const ModelName = z.string().regex(/^[a-z][a-z0-9-]*$/, 'lower-case letters, digits and dashes');

/** An idempotency key: the same key on the same model never starts two episodes. */
export const IdempotencyKey = z
  .string()
  .min(1)
  .max(200)
  .regex(/^[\x21-\x7e]+$/, 'printable ASCII without spaces')
  .meta({ description: 'The same key on the same model never starts two episodes (also across restarts).' });

/** One signal: the model's signal (checked against the model's own signal schema), with its key. */
export const SignalSubmission = z
  .object({
    /** Overrides the `Idempotency-Key` header for this signal. */
    idempotencyKey: IdempotencyKey.optional(),
    signal: z.record(z.string(), z.unknown()).meta({
      description: "The model's signal; validated against the model's signal schema (GET /api/v1/models/{model}).",
    }),
  })
  .strict();
export type SignalSubmission = z.infer<typeof SignalSubmission>;

export const SignalBatch = z
  .object({
    signals: z.array(SignalSubmission).min(1).max(MAX_SIGNAL_BATCH),
  })
  .strict()
  .meta({
    description: `Up to ${MAX_SIGNAL_BATCH} signals. A signal without its own idempotencyKey gets the Idempotency-Key header's value suffixed with /<index>.`,
  });
export type SignalBatch = z.infer<typeof SignalBatch>;

export const SignalsRequest = z.union([SignalSubmission, SignalBatch]);

export const SignalAccepted = z.object({
  episodeId: z.string(),
  idempotencyKey: z.string(),
  /** false: this key had already started the episode (nothing new was started). */
  created: z.boolean(),
  statusUrl: z.string(),
});
export type SignalAccepted = z.infer<typeof SignalAccepted>;

export const SignalsAccepted = z.object({
  model: z.string(),
  accepted: z.array(SignalAccepted),
});
export type SignalsAccepted = z.infer<typeof SignalsAccepted>;

export const ApiCase = z.object({
  id: z.string(),
  state: z.string().nullable(),
  status: z.string().nullable(),
  tier: z.number().int().nullable(),
  outcome: z.string().nullable(),
});

export const ApiAction = z.object({
  index: z.number().int(),
  type: z.string(),
  status: z.enum(['pending', 'running', 'done', 'compensated', 'failed']),
  /** The action's result; fields classified sensitive are masked. */
  result: z.unknown(),
});

export const ApiDecision = z.object({
  outcome: GateOutcome,
  ruleId: z.string(),
  tier: z.number().int(),
  riskScore: z.number(),
  reasons: z.array(z.string()),
  policyVersion: z.string(),
});

/** Where to go from an episode (URLs relative to the node that answered, like `statusUrl`). */
export const ApiEpisodeLinks = z.object({
  self: z.string().meta({ description: 'This episode: GET /api/v1/episodes/{id}.' }),
  events: z.string().meta({ description: "The episode's outcome stream: GET /api/v1/episodes/{id}/events (SSE)." }),
  lineage: z
    .string()
    .nullable()
    .meta({
      description:
        "The console page whose Lineage card shows the episode's lineage (signals, plans, gate, reviews, effects): " +
        'the page of its first review case, `/#/case/{caseId}`, for a signed-in reviewer who may see that case. ' +
        'Null while the episode has no review case (`handoff lineage <id>` prints the lineage of any episode).',
    }),
});
export type ApiEpisodeLinks = z.infer<typeof ApiEpisodeLinks>;

export const ApiEpisode = z.object({
  id: z.string(),
  model: z.string(),
  state: z.string(),
  status: z.string(),
  outcome: EpisodeOutcome.nullable(),
  resolution: z.string().nullable(),
  decision: ApiDecision.nullable(),
  actions: z.array(ApiAction),
  cases: z.array(ApiCase),
  error: z.string().nullable(),
  traceId: z.string().nullable(),
  startedAt: z.number().nullable(),
  endedAt: z.number().nullable(),
  links: ApiEpisodeLinks,
  serverTime: z.number(),
});
export type ApiEpisode = z.infer<typeof ApiEpisode>;

/** One row of `GET /api/v1/episodes`. */
export const ApiEpisodeSummary = z.object({
  id: z.string(),
  model: z.string(),
  state: z.string(),
  status: z.string(),
  outcome: EpisodeOutcome.nullable(),
  resolution: z.string().nullable(),
  traceId: z.string().nullable(),
  startedAt: z.number().nullable(),
  endedAt: z.number().nullable(),
});
export type ApiEpisodeSummary = z.infer<typeof ApiEpisodeSummary>;

/** Largest page of `GET /api/v1/episodes`. */
export const MAX_EPISODE_PAGE = 200;

/** The query of `GET /api/v1/episodes` (all optional). */
export const EpisodeListQuery = z
  .object({
    model: ModelName.optional().meta({ description: 'Only this model (the account needs episodes:read on it).' }),
    outcome: EpisodeOutcome.optional().meta({ description: 'Only episodes that ended with this outcome.' }),
    since: z.coerce
      .number()
      .int()
      .min(0)
      .optional()
      .meta({ description: 'Only episodes started at or after this time (ms since the epoch).' }),
    cursor: z.string().max(600).optional().meta({ description: 'The `next` of the previous page.' }),
    limit: z.coerce.number().int().min(1).max(MAX_EPISODE_PAGE).default(50),
  })
  .strict();
export type EpisodeListQuery = z.infer<typeof EpisodeListQuery>;

export const ApiEpisodePage = z.object({
  episodes: z.array(ApiEpisodeSummary),
  next: z.string().nullable().meta({
    description: 'The cursor of the next page; null at the end. A cursor stays valid: pages never repeat an episode.',
  }),
  serverTime: z.number(),
});
export type ApiEpisodePage = z.infer<typeof ApiEpisodePage>;

/**
 * One event of `GET /api/v1/episodes/{id}/events` (Server-Sent Events): `event: state` on each durable
 * transition (the first is the episode as it is when the stream opens), then `event: outcome` once it
 * has finished, after which the stream ends. The data is this object as JSON.
 */
export const ApiEpisodeEvent = z.object({
  id: z.string(),
  seq: z.number().int(),
  state: z.string(),
  status: z.string(),
  event: z.string().nullable().meta({ description: 'The event that made the transition (null for the first).' }),
  outcome: EpisodeOutcome.nullable(),
  at: z.number(),
});
export type ApiEpisodeEvent = z.infer<typeof ApiEpisodeEvent>;

export const ApiModel = z.object({
  name: z.string(),
  description: z.string(),
  operations: z.array(ApiOperation).meta({ description: 'What the calling account may do on this model.' }),
  signalSchema: z.unknown().meta({ description: "JSON Schema (draft 2020-12) of the model's signal." }),
});

export const ApiModels = z.object({ models: z.array(ApiModel) });

export const ApiError = z.object({
  error: z.object({
    status: z.number().int(),
    code: z.string().meta({
      description:
        'Stable, e.g. auth.required, auth.invalid_key, auth.forbidden, contract.invalid, model.not_found, episode.not_found, request.too_large, api.rate_limited, node.overloaded.',
    }),
    message: z.string(),
    details: z
      .record(z.string(), z.unknown())
      .optional()
      .meta({ description: 'For contract.invalid: path (the first bad field) and issues.' }),
  }),
});
export type ApiError = z.infer<typeof ApiError>;

/** A service account as listed (never its key or the key's hash). */
export const ServiceAccountView = z.object({
  id: z.string(),
  name: z.string(),
  scopes: z.record(z.string(), z.array(ApiOperation)),
  createdAt: z.number(),
  revokedAt: z.number().nullable(),
});
export type ServiceAccountView = z.infer<typeof ServiceAccountView>;

// ------------------------------------------------------------------------------------------------
// Routes
// ------------------------------------------------------------------------------------------------

export interface ApiRoute {
  operationId: string;
  method: 'get' | 'post';
  /** OpenAPI path template under the prefix, e.g. `/episodes/{id}`. */
  path: string;
  summary: string;
  /** The operation the account needs on the model (none: any valid key). */
  operation: ApiOperation | null;
  params?: Record<string, string>;
  /** Query parameters: an object schema whose properties are the parameters. */
  query?: z.ZodObject;
  headers?: Record<string, { description: string; required?: boolean }>;
  body?: z.ZodType;
  /** Status → schema of the success answer (`contentType` @default application/json). */
  ok: Record<number, { description: string; schema: z.ZodType; contentType?: string }>;
  /** Error statuses this route answers (each an {@link ApiError}). */
  errors: number[];
  /** Served without a key. */
  public?: boolean;
}

export const API_ROUTES: readonly ApiRoute[] = [
  {
    operationId: 'openapi',
    method: 'get',
    path: '/openapi.json',
    summary: 'This OpenAPI 3.1 document.',
    operation: null,
    public: true,
    ok: { 200: { description: 'The document.', schema: z.record(z.string(), z.unknown()) } },
    errors: [],
  },
  {
    operationId: 'listModels',
    method: 'get',
    path: '/models',
    summary: 'The models this account has any operation on, with their signal schemas.',
    operation: null,
    ok: { 200: { description: 'Models.', schema: ApiModels } },
    errors: [401, 429],
  },
  {
    operationId: 'submitSignals',
    method: 'post',
    path: '/models/{model}/signals',
    summary: 'Submit one signal, or a batch; each starts one episode, at most once per idempotency key.',
    operation: 'signals:submit',
    params: { model: 'The model name.' },
    headers: {
      'Idempotency-Key': {
        description: 'The idempotency key (or `idempotencyKey` in the body). Required one way or the other.',
      },
      traceparent: { description: "W3C trace context: the episode's trace continues it." },
    },
    body: SignalsRequest,
    ok: {
      202: {
        description: 'Accepted: the episodes are durable (started, or started before by the same key).',
        schema: SignalsAccepted,
      },
    },
    errors: [400, 401, 403, 404, 413, 415, 429, 503],
  },
  {
    operationId: 'getEpisode',
    method: 'get',
    path: '/episodes/{id}',
    summary: 'An episode: state, outcome, gate decision, review cases, actions, timestamps, links (its lineage).',
    operation: 'episodes:read',
    params: { id: 'The episode id (from the 202 of a submission).' },
    ok: { 200: { description: 'The episode.', schema: ApiEpisode } },
    errors: [401, 403, 404, 429],
  },
  {
    operationId: 'listEpisodes',
    method: 'get',
    path: '/episodes',
    summary: 'Episodes of the models this account may read, in a stable order, a page at a time (follow `next`).',
    operation: 'episodes:read',
    query: EpisodeListQuery,
    ok: { 200: { description: 'A page of episodes.', schema: ApiEpisodePage } },
    errors: [400, 401, 403, 429],
  },
  {
    operationId: 'episodeEvents',
    method: 'get',
    path: '/episodes/{id}/events',
    summary:
      "A stream (Server-Sent Events) of the episode's transitions, ending with its outcome: for a producer waiting on its episode.",
    operation: 'episodes:read',
    params: { id: 'The episode id.' },
    ok: {
      200: {
        description:
          'text/event-stream: `event: state` per transition, then `event: outcome`; each data line an ApiEpisodeEvent.',
        schema: ApiEpisodeEvent,
        contentType: 'text/event-stream',
      },
    },
    errors: [401, 403, 404, 429],
  },
];

const ERROR_TEXT: Record<number, string> = {
  400: 'Bad request: details.path names the field.',
  401: 'No key, an unknown key, or a revoked key.',
  403: 'The account lacks the operation on this model.',
  404: 'No such model or episode.',
  413: 'The body is over the size limit.',
  415: 'The body is not application/json.',
  429: 'Too many requests from this account (api.rate_limited) or in flight on this node (node.overloaded): retry after Retry-After seconds.',
  503: 'The runtime is stopping or restarting an actor; retry with the same idempotency key.',
};

/** The named schemas of the API: each is one entry of the document's `components.schemas`. */
const NAMED: Record<string, z.ZodType> = {
  SignalSubmission,
  SignalBatch,
  SignalsRequest,
  SignalAccepted,
  SignalsAccepted,
  ApiCase,
  ApiAction,
  ApiDecision,
  ApiEpisodeLinks,
  ApiEpisode,
  ApiEpisodeSummary,
  ApiEpisodePage,
  ApiEpisodeEvent,
  ApiModel,
  ApiModels,
  ApiError,
};

/** The OpenAPI 3.1 document of `/api/v1`, generated from the schemas above. */
export function openApiDocument(): Record<string, unknown> {
  const registry = z.registry<{ id: string }>();
  const names = new Map<z.ZodType, string>();
  for (const [id, schema] of Object.entries(NAMED)) {
    registry.add(schema, { id });
    names.set(schema, id);
  }
  const { schemas } = z.toJSONSchema(registry, {
    target: 'draft-2020-12',
    io: 'output',
    unrepresentable: 'any',
    uri: (id) => `#/components/schemas/${id}`,
  }) as { schemas: Record<string, Record<string, unknown>> };
  for (const s of Object.values(schemas)) {
    delete s.$schema;
    delete s.$id;
  }
  const ref = (schema: z.ZodType): unknown => {
    const id = names.get(schema);
    if (id) return { $ref: `#/components/schemas/${id}` };
    const json = z.toJSONSchema(schema, { target: 'draft-2020-12', io: 'output', unrepresentable: 'any' }) as Record<
      string,
      unknown
    >;
    delete json.$schema;
    return json;
  };
  const errorRef = ref(ApiError);
  const paths: Record<string, Record<string, unknown>> = {};
  for (const r of API_ROUTES) {
    const parameters: unknown[] = [];
    for (const [name, description] of Object.entries(r.params ?? {}))
      parameters.push({ name, in: 'path', required: true, description, schema: { type: 'string' } });
    for (const [name, schema] of Object.entries(r.query?.shape ?? {})) {
      const json = ref(schema as z.ZodType) as Record<string, unknown>;
      const { description, ...rest } = json;
      parameters.push({ name, in: 'query', required: false, ...(description ? { description } : {}), schema: rest });
    }
    for (const [name, h] of Object.entries(r.headers ?? {}))
      parameters.push({
        name,
        in: 'header',
        required: h.required ?? false,
        description: h.description,
        schema: { type: 'string' },
      });
    const responses: Record<string, unknown> = {};
    for (const [status, ok] of Object.entries(r.ok))
      responses[status] = {
        description: ok.description,
        content: { [ok.contentType ?? 'application/json']: { schema: ref(ok.schema) } },
      };
    for (const status of r.errors)
      responses[String(status)] = {
        description: ERROR_TEXT[status] ?? 'Error.',
        content: { 'application/json': { schema: errorRef } },
      };
    const op: Record<string, unknown> = {
      operationId: r.operationId,
      summary: r.summary,
      ...(r.public ? { security: [] } : {}),
      ...(r.operation ? { 'x-handoff-operation': r.operation } : {}),
      ...(parameters.length ? { parameters } : {}),
      ...(r.body ? { requestBody: { required: true, content: { 'application/json': { schema: ref(r.body) } } } } : {}),
      responses,
    };
    (paths[`${API_PREFIX}${r.path}`] ??= {})[r.method] = op;
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'Handoff API',
      version: API_VERSION,
      description: 'Signals in, episodes out, for programs with a service account key (docs/api.md).',
    },
    security: [{ apiKey: [] }],
    paths,
    components: {
      securitySchemes: {
        apiKey: {
          type: 'http',
          scheme: 'bearer',
          description: 'A service account key (`handoff accounts create`), as `Authorization: Bearer <key>`.',
        },
      },
      schemas: Object.fromEntries(Object.entries(schemas).sort(([a], [b]) => a.localeCompare(b))),
    },
  };
}
