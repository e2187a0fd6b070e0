/**
 * Honest authoring (issue 22, item 6): model.json rejects unknown keys with a did-you-mean, one run
 * reports every problem, and a model whose code fails on its own signals (a perceiver that always
 * throws, a planner whose arguments break their schema) is reported with the zod issues by
 * `models check`, `testgen` and `simulate` (non-zero exit).
 */
import { execFile } from 'node:child_process';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ModelError } from '../../src/contracts/errors.ts';
import { probeModel } from '../../src/actors/probe.ts';
import { loadModel } from '../../src/models/loader.ts';
import { FIELD_DOCS, modelFields, modelReferenceMarkdown } from '../../src/models/model-reference.ts';
import { didYouMean } from '../../src/models/schema-keys.ts';
import { generateSuite } from '../../src/testing/index.ts';
import { REPO, tempDir } from './support.ts';

type Json = Record<string, any>;
let root: string;

async function folder(name: string, edit: (c: Json) => void, handlers?: string): Promise<string> {
  const c = JSON.parse(await readFile(join(REPO, 'models/refunds/model.json'), 'utf8')) as Json;
  edit(c);
  const dir = join(root, name);
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'model.json'), JSON.stringify(c, null, 2));
  const base = JSON.stringify(join(REPO, 'models/refunds/handlers.ts'));
  await writeFile(
    join(dir, 'handlers.ts'),
    handlers ? `import base from ${base};\n${handlers}\n` : `export { default } from ${base};\n`,
  );
  return dir;
}

async function problems(dir: string): Promise<{ path: string; message: string }[]> {
  try {
    await loadModel(dir);
  } catch (err) {
    if (err instanceof ModelError) return err.problems;
    throw err;
  }
  return [];
}

beforeAll(async () => {
  root = await tempDir('authoring');
  await writeFile(join(root, 'package.json'), '{ "type": "module" }\n');
});
afterAll(async () => {
  if (root) await rm(root, { recursive: true, force: true });
});

describe('model.json: unknown keys and every problem in one run', () => {
  it('did-you-mean by edit distance, and no suggestion for an unrelated key', () => {
    expect(didYouMean('fourEye', ['name', 'fourEyes', 'steps'])).toBe('fourEyes');
    expect(didYouMean('minAutoConfidance', ['maxAutoRisk', 'minAutoConfidence'])).toBe('minAutoConfidence');
    expect(didYouMean('colour', ['name', 'fourEyes', 'steps'])).toBeNull();
  });

  it("'fourEye' is refused (it would silently turn four eyes off), with every other problem of the file", async () => {
    const dir = await folder('typos', (c) => {
      delete c.review.tiers[2].fourEyes;
      c.review.tiers[2].fourEye = true;
      c.policy.limits[0].reviewAbvoe = 10;
      c.retry.maxAttempt = 2;
      c.policy.tierRiskBounds = [0.48, 0.6];
      c.reviewers[0].roles.push('no-such-role');
      c.review.leaseMs = -1;
    });
    const p = await problems(dir);
    const at = (path: string) => p.find((x) => x.path === path)?.message ?? '';
    expect(at('review.tiers.2.fourEye')).toContain("did you mean 'fourEyes'?");
    expect(at('policy.limits.0.reviewAbvoe')).toContain("did you mean 'reviewAbove'?");
    expect(at('retry.maxAttempt')).toContain("did you mean 'maxAttempts'?");
    expect(at('review.leaseMs')).not.toBe('');
    expect(at('policy.tierRiskBounds')).toContain('2 bounds for 3 review tiers');
    expect(at('reviewers.0.roles.2') || at('reviewers.0.roles.1')).toContain("unknown role 'no-such-role'");
    expect(p.length).toBe(6);
  });
});

describe("the model's code on its own signals", () => {
  let badPlan: string;
  let badPerceive: string;
  beforeAll(async () => {
    badPlan = await folder(
      'bad-plan',
      () => undefined,
      'export default { ...base, plan: async (o, c) => { const p = await base.plan(o, c); return { ...p, actions: p.actions.map((a) => ({ ...a, args: { ...a.args, amount: "lots" } })) }; } };',
    );
    badPerceive = await folder(
      'bad-perceive',
      () => undefined,
      "export default { ...base, perceive: async () => { throw new Error('order service unreachable'); } };",
    );
  });

  it('a planner whose arguments fail their schema: the zod issue, from probeModel and generateSuite', async () => {
    const p = await probeModel(await loadModel(badPlan));
    expect(p.map((x) => x.message).join('\n')).toMatch(/actions\.0\.args\.amount: .*expected number/);
    await expect(generateSuite(badPlan)).rejects.toThrow(/actions\.0\.args\.amount/);
  });

  it('a perceiver that always throws: named with its error; simulate exits non-zero; models check fails', async () => {
    const p = await probeModel(await loadModel(badPerceive));
    expect(p).toEqual([
      expect.objectContaining({ path: 'perceive', message: expect.stringContaining('order service unreachable') }),
    ]);
    const run = (args: string[]) =>
      promisify(execFile)(process.execPath, [join(REPO, 'bin/handoff.js'), ...args], { cwd: REPO }).then(
        () => ({ code: 0, stderr: '' }),
        (e: { code: number; stderr: string; stdout: string }) => ({ code: e.code, stderr: `${e.stderr}${e.stdout}` }),
      );
    const sim = await run(['simulate', badPerceive, '--cases', '3', '--progress', 'off']);
    expect(sim.code).toBe(1);
    expect(sim.stderr).toContain('order service unreachable');
    const check = await run(['models', 'check', badPlan]);
    expect(check.code).toBe(1);
    expect(check.stderr).toMatch(/actions\.0\.args\.amount/);
  }, 60_000);

  it('the shipped models pass the probe', async () => {
    for (const m of ['refunds', 'incidents'])
      expect(await probeModel(await loadModel(join(REPO, 'models', m)))).toEqual([]);
  });
});

describe('docs/authoring.md', () => {
  it('carries the reference of every model.json field, generated from the schema, each field described', async () => {
    const doc = await readFile(join(REPO, 'docs/authoring.md'), 'utf8');
    const block = /<!-- reference:begin -->\n([\s\S]*?)\n<!-- reference:end -->/.exec(doc)?.[1];
    expect(block, 'the reference block of docs/authoring.md (regenerate it from modelReferenceMarkdown())').toBe(
      modelReferenceMarkdown(),
    );
    const paths = modelFields().map((f) => f.path);
    expect(
      paths.filter((p) => !FIELD_DOCS[p]),
      'fields without a description',
    ).toEqual([]);
    expect(
      Object.keys(FIELD_DOCS).filter((k) => !paths.includes(k)),
      'descriptions of fields the schema no longer has',
    ).toEqual([]);
    for (const f of [
      'review.tiers[].steps',
      'review.tiers[].fourEyes',
      'policy.limits[].reviewAbove',
      'retry.maxAttempts',
    ])
      expect(paths).toContain(f);
  });

  it('the model written from it (models/access) passes models check and the probe', async () => {
    const m = await loadModel(join(REPO, 'models/access'));
    expect(await probeModel(m)).toEqual([]);
    expect(m.config.review.tiers[0]!.steps?.map((s) => s.roles)).toEqual([['manager'], ['security']]);
  });
});
