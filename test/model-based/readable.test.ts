/**
 * Issue 22 item 7, readable suites: what generated-suites.test.ts does not cover. Test ids are a hash
 * of the path's own steps, so a model change renumbers only the paths it changes; and the printed run
 * hint works from a folder that is neither the output folder nor this repository.
 */
import { exec } from 'node:child_process';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { businessTitle, generateSuite, runHint, writeSuite, type GeneratedPath } from '../../src/testing/index.ts';
import { REPO, tempDir } from './support.ts';

const ORIGINAL = join(REPO, 'models', 'refunds');
const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

interface ModelJson {
  version: string;
  retry: { maxAttempts: number };
  review: { tiers: { ackMs: number }[] };
}

/** A copy of the refunds model with `change` applied to its model.json (handlers re-exported). */
async function variant(change: (m: ModelJson) => void): Promise<string> {
  const dir = await tempDir('readable-model');
  dirs.push(dir);
  const m = JSON.parse(await readFile(join(ORIGINAL, 'model.json'), 'utf8')) as ModelJson;
  change(m);
  await writeFile(join(dir, 'model.json'), JSON.stringify(m, null, 2));
  await writeFile(join(dir, 'reviewers.json'), await readFile(join(ORIGINAL, 'reviewers.json')));
  await writeFile(
    join(dir, 'handlers.mts'),
    `export { default } from ${JSON.stringify(join(ORIGINAL, 'handlers.ts'))};\n`,
  );
  return dir;
}

const all = (s: Awaited<ReturnType<typeof generateSuite>>) => [...s.paths.agent.paths, ...s.paths.case.paths];
const steps = (p: GeneratedPath) => `${p.machine}:${p.start ?? ''}:${JSON.stringify(p.steps.map((x) => x.action))}`;

describe('readable suites', () => {
  it('stable ids: a model change keeps the id and title of every path it does not change', async () => {
    const before = await generateSuite(ORIGINAL);
    // A deadline moved: the same paths, the same ids and titles; only the expected due times differ.
    const sla = await generateSuite(
      await variant((m) => {
        m.review.tiers[0]!.ackMs = 300_000;
      }),
    );
    expect(all(sla).map((p) => p.id)).toEqual(all(before).map((p) => p.id));
    expect(all(sla).map(businessTitle)).toEqual(all(before).map(businessTitle));
    expect(JSON.stringify(all(sla).map((p) => p.steps.map((x) => x.expect.due)))).not.toBe(
      JSON.stringify(all(before).map((p) => p.steps.map((x) => x.expect.due))),
    );
    // A retry budget cut: paths that spend it change; every path walked by both keeps its id.
    const retry = await generateSuite(
      await variant((m) => {
        m.retry.maxAttempts = 3;
      }),
    );
    const old = new Map(all(before).map((p) => [steps(p), p.id]));
    const kept = all(retry).filter((p) => old.has(steps(p)));
    expect(kept.length).toBeGreaterThan(all(retry).length / 2);
    for (const p of kept) expect(p.id, steps(p)).toBe(old.get(steps(p)));
    expect(all(retry).length - kept.length, 'paths that spend the retry budget change').toBeGreaterThan(0);
  }, 120_000);

  it('the run hint works from any folder (not only the repository or the output folder)', async () => {
    const out = await tempDir('readable-out');
    const elsewhere = await tempDir('readable-cwd');
    dirs.push(out, elsewhere);
    await writeSuite(ORIGINAL, out);
    const hint = runHint(out);
    expect(hint).not.toContain('npx');
    expect(hint).toContain(`--root ${JSON.stringify(out)}`);
    const { stdout } = await promisify(exec)(`${hint} refunds.case.test.ts`, {
      cwd: elsewhere,
      env: { ...process.env, NO_COLOR: '1' },
    });
    expect(stdout).toMatch(/Tests\s+\d+ passed/);
    expect(stdout).not.toMatch(/failed/);
  }, 120_000);
});
