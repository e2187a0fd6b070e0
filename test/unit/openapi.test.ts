import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { API_VERSION, openApiDocument } from '../../src/contracts/api-v1.ts';

const FILE = join(import.meta.dirname, '..', '..', 'docs', 'openapi', 'v1.json');
const UPDATE = process.env.HANDOFF_UPDATE_DOCS === '1';

type Json = Record<string, any>;

/**
 * What in `next` breaks a client written against `published`: an operation removed, a named schema
 * removed, a property removed from a schema, a request property newly required.
 */
function breakingChanges(published: Json, next: Json): string[] {
  const out: string[] = [];
  for (const [path, ops] of Object.entries<Json>(published.paths ?? {}))
    for (const method of Object.keys(ops))
      if (!next.paths?.[path]?.[method]) out.push(`operation removed: ${method.toUpperCase()} ${path}`);
  const before = (published.components?.schemas ?? {}) as Json;
  const after = (next.components?.schemas ?? {}) as Json;
  for (const [name, schema] of Object.entries<Json>(before)) {
    const now = after[name];
    if (!now) {
      out.push(`schema removed: ${name}`);
      continue;
    }
    for (const prop of Object.keys(schema.properties ?? {}))
      if (!now.properties?.[prop]) out.push(`property removed: ${name}.${prop}`);
    const wasRequired = new Set<string>(schema.required ?? []);
    for (const prop of now.required ?? [])
      if (!wasRequired.has(prop)) out.push(`property newly required: ${name}.${prop}`);
  }
  return out;
}

describe('the OpenAPI document of /api/v1', () => {
  const generated = openApiDocument();
  const text = `${JSON.stringify(generated, null, 2)}\n`;

  it('is OpenAPI 3.1 with every route and its named schemas resolvable', () => {
    expect(generated.openapi).toBe('3.1.0');
    const schemas = (generated.components as Json).schemas as Json;
    const refs = [...text.matchAll(/"\$ref": "#\/components\/schemas\/([^"]+)"/g)].map((m) => m[1]!);
    expect(refs.length).toBeGreaterThan(5);
    for (const r of refs) expect(schemas[r], r).toBeDefined();
    expect(Object.keys(generated.paths as Json)).toEqual(
      expect.arrayContaining(['/api/v1/models/{model}/signals', '/api/v1/episodes/{id}', '/api/v1/openapi.json']),
    );
  });

  it('matches the committed docs/openapi/v1.json (HANDOFF_UPDATE_DOCS=1 regenerates it; a breaking change needs a new API_VERSION)', () => {
    const committed = existsSync(FILE) ? readFileSync(FILE, 'utf8') : null;
    if (committed === text) return;
    const published = committed ? (JSON.parse(committed) as Json) : null;
    const breaking = published ? breakingChanges(published, generated as Json) : [];
    const sameVersion = published?.info?.version === API_VERSION;
    if (breaking.length && sameVersion)
      throw new Error(
        `the API changed in a way that breaks clients of the published ${API_VERSION} (${breaking.join('; ')}): change API_VERSION in src/contracts/api-v1.ts (and the path prefix for a new major), then regenerate`,
      );
    if (UPDATE) {
      mkdirSync(dirname(FILE), { recursive: true });
      writeFileSync(FILE, text);
      return;
    }
    expect.fail(
      `docs/openapi/v1.json is not the document the contracts generate: run HANDOFF_UPDATE_DOCS=1 npx vitest run test/unit/openapi.test.ts and commit it${breaking.length ? ` (breaking: ${breaking.join('; ')})` : ''}`,
    );
  });

  it('finds what breaks a client', () => {
    const doc = openApiDocument() as Json;
    const next = JSON.parse(JSON.stringify(doc)) as Json;
    delete next.paths['/api/v1/episodes/{id}'];
    delete next.components.schemas.ApiEpisode.properties.outcome;
    next.components.schemas.SignalSubmission.required.push('idempotencyKey');
    expect(breakingChanges(doc, next)).toEqual([
      'operation removed: GET /api/v1/episodes/{id}',
      'property removed: ApiEpisode.outcome',
      'property newly required: SignalSubmission.idempotencyKey',
    ]);
    // Additions are not breaking.
    next.paths['/api/v1/episodes/{id}'] = doc.paths['/api/v1/episodes/{id}'];
    next.components.schemas.ApiEpisode.properties.outcome = {};
    next.components.schemas.ApiEpisode.properties.extra = {};
    next.components.schemas.SignalSubmission.required.pop();
    expect(breakingChanges(doc, next)).toEqual([]);
  });
});
