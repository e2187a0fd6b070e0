/**
 * Issue 22 item 5, replay across versions: a recorded run of the refunds model (the demo, on a data
 * folder) is replayed against the same model (nothing differs) and against copies with one change,
 * a review threshold and a tier-1 acknowledge deadline. The episodes reported must be exactly those
 * the change affects, computed here from the recorded plans and times with the two models' own gates
 * and deadlines, not from the replay; the CLI exits 1 and says the same in --json.
 */
import { execFile } from 'node:child_process';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CaseInput } from '../../src/contracts/review-case.ts';
import type { Observation } from '../../src/contracts/observation.ts';
import type { Plan } from '../../src/contracts/plan.ts';
import { loadModel, type LoadedModel } from '../../src/models/loader.ts';
import { runDemo } from '../../src/app/demo.ts';
import { readRecording, replayRecording, type RecordedEpisode, type ReplayReport } from '../../src/testing/index.ts';
import { REPO, tempDir } from './support.ts';

const CLI = join(REPO, 'bin', 'handoff.js');
const ORIGINAL = join(REPO, 'models', 'refunds');
const dirs: string[] = [];
let data: string;
let original: LoadedModel;
let episodes: RecordedEpisode[];

interface ModelJson {
  version: string;
  policy: { limits: { reviewAbove: number }[] };
  review: { tiers: { ackMs: number }[] };
}

/** A copy of the refunds model with `change` applied to its model.json (handlers re-exported). */
async function variant(change: (m: ModelJson) => void): Promise<string> {
  const dir = await tempDir('replay-model');
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

async function cli(args: string[]): Promise<{ code: number; stdout: string }> {
  try {
    const { stdout } = await promisify(execFile)(process.execPath, [CLI, ...args], {
      cwd: REPO,
      env: { ...process.env, NO_COLOR: '1' },
    });
    return { code: 0, stdout };
  } catch (err) {
    const e = err as { code: number; stdout: string };
    return { code: e.code, stdout: e.stdout };
  }
}

const ids = (r: ReplayReport) => r.results.map((x) => x.episodeId).sort();

beforeAll(async () => {
  data = await tempDir('replay-data');
  dirs.push(data);
  await runDemo({ model: ORIGINAL, cases: 80, data, reviewers: 12, seed: 3, resume: false });
  original = await loadModel(ORIGINAL);
  episodes = await readRecording(data, { model: 'refunds' });
}, 60_000);

afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

describe('replay across versions: testgen --replay', () => {
  it('the same model: all 80 recorded episodes replay with no difference', () => {
    expect(episodes).toHaveLength(80);
    const r = replayRecording(original, episodes, data);
    expect(r).toMatchObject({ ok: true, episodes: 80, unchanged: 80, differing: 0, skipped: [] });
  });

  it('a review threshold lowered: exactly the episodes whose plans the two gates decide differently', async () => {
    const dir = await variant((m) => {
      m.version = '1.1.0';
      m.policy.limits[0]!.reviewAbove = 300;
    });
    const changed = await loadModel(dir);
    // Expected from the recorded plans, with each model's own gate: any gating (the planner's plan,
    // or a reviewer's edit) whose branch or tier moves. A reviewer's edit is gated again, and a review
    // it needs at no higher tier than the one that approved it is already covered: it acts, as on
    // auto (the agent machine's reviewAlreadyCovers).
    const branch = (d: { outcome: string; tier: number }, approvedTier: number) =>
      d.outcome === 'review' && approvedTier >= Math.max(1, d.tier)
        ? 'auto:0'
        : `${d.outcome}:${d.outcome === 'review' ? d.tier : 0}`;
    const expected = episodes
      .filter((ep) => {
        const obs = ep.agent.find((e) => e.event.type === 'perceive.done')?.event.observation as Observation;
        const plans = ep.agent.flatMap((e) => {
          if (e.event.type === 'plan.done') return [{ plan: e.event.plan as Plan, approvedTier: 0 }];
          const res = e.event.resolution as { outcome: string; plan: Plan; tier: number } | undefined;
          return e.event.type === 'case.resolved' && res?.outcome === 'modified'
            ? [{ plan: res.plan, approvedTier: res.tier }]
            : [];
        });
        return plans.some(
          ({ plan, approvedTier }) =>
            branch(original.gate(plan, obs), approvedTier) !== branch(changed.gate(plan, obs), approvedTier),
        );
      })
      .map((ep) => ep.episodeId)
      .sort();
    expect(expected.length).toBeGreaterThan(0);
    expect(expected.length).toBeLessThan(80);

    const r = replayRecording(changed, episodes, data);
    expect(ids(r)).toEqual(expected);
    expect(r).toMatchObject({
      ok: false,
      version: '1.1.0',
      differing: expected.length,
      unchanged: 80 - expected.length,
    });
    for (const x of r.results)
      expect(x.differences.map((d) => d.what)).toEqual(expect.arrayContaining([expect.stringMatching(/gate|tier/)]));

    // The CLI: exit 1, the same episodes in --json; --record writes a JSONL that replays the same.
    const jsonl = join(dir, 'recorded.jsonl');
    const run = await cli(['testgen', dir, '--replay', data, '--record', jsonl, '--json']);
    expect(run.code).toBe(1);
    const out = JSON.parse(run.stdout) as ReplayReport & { recorded: string };
    expect(ids(out)).toEqual(expected);
    expect(out.recorded).toBe(jsonl);
    const again = replayRecording(changed, await readRecording(jsonl), jsonl);
    expect(ids(again)).toEqual(expected);
    const same = await cli(['testgen', ORIGINAL, '--replay', jsonl]);
    expect(same.code).toBe(0);
    expect(same.stdout).toContain('0 of 80 episodes would now decide differently');
  }, 60_000);

  it('a shorter tier-1 acknowledge deadline: exactly the cases first touched after the new deadline', async () => {
    const ackMs = 5 * 60_000;
    const dir = await variant((m) => {
      m.review.tiers[0]!.ackMs = ackMs;
    });
    const changed = await loadModel(dir);
    const expected = episodes
      .filter((ep) =>
        ep.cases.some((c) => {
          const input = (c.journal[0]?.event as { input?: CaseInput }).input;
          const first = c.journal[1];
          if (!input || input.tier !== 1 || input.plan.planner === 'handoff/supervisor' || !first) return false;
          return !first.event.type.startsWith('timer.') && first.at > input.openedAt + ackMs;
        }),
      )
      .map((ep) => ep.episodeId)
      .sort();
    expect(expected.length).toBeGreaterThan(0);
    const r = replayRecording(changed, episodes, data);
    expect(ids(r)).toEqual(expected);
    for (const x of r.results)
      expect(x.differences[0]).toMatchObject({ what: 'deadline', actor: `${x.episodeId}.case-1` });
  });

  it('a source that is neither a data folder nor a recording: a typed error naming it', async () => {
    const run = await cli(['testgen', ORIGINAL, '--replay', join(data, 'nope.jsonl'), '--json']);
    expect(run.code).toBe(1);
    expect(JSON.parse(run.stdout)).toMatchObject({ ok: false, error: { code: 'replay.source_invalid' } });
    const bad = join(dirs[0]!, 'bad.jsonl');
    await writeFile(bad, '{"episodeId": "x", "agent": [], "cases": []}\nnot json\n');
    await expect(readRecording(bad)).rejects.toThrow(/line 2: not JSON/);
  });
});
