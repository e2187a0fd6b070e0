/**
 * Key rotation on a real LevelDB: under load (episodes run while every value is re-sealed from key A
 * to key B), interrupted (an async iteration stopped half-way; the CLI SIGKILLed half-way), and the
 * store read with key A removed afterwards.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Level } from 'level';
import { afterAll, describe, expect, it } from 'vitest';
import type { AgentContext } from '../../src/machines/agent.ts';
import { verifyAudit } from '../../src/base/audit-log.ts';
import { SimulatedClock } from '../../src/base/clock.ts';
import { LevelStore } from '../../src/runtime/level-store.ts';
import { Rng } from '../../src/base/rng.ts';
import { Runtime } from '../../src/runtime/runtime.ts';
import { LevelWorld } from '../../src/runtime/world.ts';
import { Keyring, type DataKey } from '../../src/security/keyring.ts';
import { rotateKeys, rotationSteps, sealingStatus, type RotationProgress } from '../../src/security/keys-rotation.ts';
import type { SealedLevel } from '../../src/security/sealed-level.ts';
import { drive, refunds, silent } from '../integration/helpers.ts';
import { runCli } from '../integration/cli.ts';
import { startConsole } from '../../src/app/embedded-console.ts';

const A: DataKey = { id: 'key-a', key: randomBytes(32) };
const B: DataKey = { id: 'key-b', key: randomBytes(32) };
const ringA = new Keyring([A]);
const ringAB = new Keyring([A, B], 'key-b');
const ringB = new Keyring([B]);
const START = Date.UTC(2026, 0, 5, 9, 0, 0);

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});
async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'handoff-rot-'));
  dirs.push(d);
  return d;
}

async function openRuntime(dir: string, keyring: Keyring, start: number) {
  const model = await refunds();
  const store = await LevelStore.open(dir, { keyring });
  const clock = new SimulatedClock(start);
  const rt = await Runtime.open({
    store,
    world: new LevelWorld(store),
    models: [model],
    clock,
    seed: 'rotation',
    logger: silent,
  });
  return { store, rt, clock };
}

/**
 * Starts `count` episodes (ids from `from`) and drives the clock until nothing is due: cases escalate
 * and expire, so every episode ends. With `finish: false` the clock stays put: episodes wait in review.
 */
async function runEpisodes(
  env: { rt: Runtime; clock: SimulatedClock },
  from: number,
  count: number,
  finish = true,
): Promise<void> {
  const model = await refunds();
  const rng = new Rng(1000 + from);
  for (let i = from; i < from + count; i++)
    await env.rt.startEpisode('refunds', model.handlers.synthesize(rng, i), {
      episodeId: `ep-${String(i).padStart(5, '0')}`,
    });
  if (finish) await drive(env.rt, env.clock, () => false, { maxSteps: 50_000 });
  else await env.rt.whenIdle();
}

async function agents(store: LevelStore) {
  const out: { id: string; status: string; outcome: unknown; seq: number }[] = [];
  for await (const rec of store.actors('agent'))
    out.push({
      id: rec.id,
      status: rec.status,
      outcome: (rec.snapshot as { context: AgentContext }).context.outcome,
      seq: rec.seq,
    });
  return out;
}

async function status(dir: string) {
  const db = new Level<string, unknown>(dir);
  await db.open();
  try {
    return await sealingStatus(db);
  } finally {
    await db.close();
  }
}

/** A store with `episodes` episodes (finished, or waiting in review), every value sealed under key A. */
async function storeUnderA(episodes: number, finish = true): Promise<string> {
  const dir = await tempDir();
  const env = await openRuntime(dir, ringA, START);
  await runEpisodes(env, 0, episodes, finish);
  await env.rt.close();
  await env.store.close();
  return dir;
}

describe('key rotation', () => {
  it('re-seals everything from A to B while episodes run; nothing is lost; the audit chain verifies; A can then be removed', async () => {
    // Episodes left waiting in review: their records (under A) are rewritten while the rotation runs.
    const dir = await storeUnderA(120, false);
    const before = await status(dir);
    expect(Object.keys(before.byKey)).toEqual(['key-a']);

    // The running store now seals with B and reads A; a rotation runs in its background.
    const env = await openRuntime(dir, ringAB, START);
    const progress: RotationProgress[] = [];
    let loadDone = false;
    let stepsDuringLoad = 0;
    const rotation = rotateKeys(env.store, {
      batchSize: 40,
      onProgress: (p) => {
        progress.push(p);
        if (!loadDone) stepsDuringLoad++;
      },
    });
    const commitsBefore = env.store.stats.commits;
    await runEpisodes(env, 120, 120);
    loadDone = true;
    const result = await rotation;
    expect(env.store.stats.commits - commitsBefore).toBeGreaterThan(500);
    // The rotation really ran beside the episodes' writes.
    expect(stepsDuringLoad).toBeGreaterThan(5);
    await env.rt.close();

    expect(result.complete).toBe(true);
    expect(result.resumedFrom).toBeNull();
    expect(progress.length).toBeGreaterThan(10);
    expect(result.resealed).toBeGreaterThan(before.values / 2);

    const all = await agents(env.store);
    expect(all).toHaveLength(240);
    for (const a of all) {
      expect(a.status, a.id).not.toBe('active');
      expect(a.outcome, a.id).not.toBeNull();
    }
    // No re-sealed older value overwrote a newer one: every record matches the end of its journal.
    for (const a of all.slice(0, 60).concat(all.slice(-60))) {
      let last = -1;
      for await (const j of env.store.journal(a.id)) last = j.seq;
      expect(last, a.id).toBe(a.seq);
    }
    expect(await verifyAudit(env.store.audit())).toMatchObject({ ok: true });
    await env.store.close();

    const after = await status(dir);
    expect(after.byKey).toEqual({ 'key-b': after.values });
    expect(after).toMatchObject({ plaintext: 0, markerKeyId: 'key-b', rotationPending: false });

    // Key A is gone: the store opens and reads everything with B alone.
    const onlyB = await LevelStore.open(dir, { keyring: ringB });
    try {
      expect(await agents(onlyB)).toHaveLength(240);
      const audit = await verifyAudit(onlyB.audit());
      expect(audit).toMatchObject({ ok: true });
      expect(audit.entries).toBeGreaterThan(1000);
      let journal = 0;
      for await (const rec of onlyB.actors()) for await (const _ of onlyB.journal(rec.id)) journal++;
      expect(journal).toBeGreaterThan(1000);
    } finally {
      await onlyB.close();
    }
  });

  it('never writes a re-sealed value over one the store wrote meanwhile', async () => {
    const dir = await tempDir();
    const plain = await LevelStore.open(dir, { keyring: ringA });
    await plain.putMeta('hot', { v: 'old' });
    await plain.putMeta('cold', { v: 'cold' });
    await plain.close();
    const store = await LevelStore.open(dir, { keyring: ringAB });
    const db = store.db as SealedLevel;
    let written: string[] = [];
    // A writer changes 'm:hot' after the step has read it: the step must not write its stale copy back.
    await db.resealStep(
      async () => {
        const read = await db
          .iterator({ gte: 'm:', lt: 'm;', keyEncoding: 'utf8', valueEncoding: 'buffer', sealedRaw: true } as never)
          .all();
        await store.putMeta('hot', { v: 'new' });
        return read as unknown as [string, Buffer][];
      },
      (items, touched) => {
        written = items.map(([k]) => k).filter((k) => !touched(k));
        return [];
      },
    );
    expect(written).toEqual(['m:cold']);
    expect(await store.getMeta('hot')).toEqual({ v: 'new' });
    // And through a real pass: the newer value survives, everything ends under B.
    const racing = rotateKeys(store, { batchSize: 1 });
    await store.putMeta('hot', { v: 'newest' });
    await racing;
    expect(await store.getMeta('hot')).toEqual({ v: 'newest' });
    expect(await store.getMeta('cold')).toEqual({ v: 'cold' });
    await store.close();
    expect(await status(dir)).toMatchObject({ byKey: { 'key-b': 2 }, plaintext: 0 });
  });

  it('an interrupted rotation continues from its cursor', async () => {
    const dir = await storeUnderA(40);
    const total = (await status(dir)).values;
    const store = await LevelStore.open(dir, { keyring: ringAB });
    let stoppedAt: RotationProgress | undefined;
    let steps = 0;
    for await (const p of rotationSteps(store, { batchSize: 25 })) {
      stoppedAt = p;
      if (++steps === 3) break;
    }
    await store.close();
    expect(stoppedAt!.scanned).toBeGreaterThan(0);
    const mid = await status(dir);
    expect(mid.rotationPending).toBe(true);
    expect(mid.byKey['key-b']).toBe(stoppedAt!.resealed);
    expect(mid.byKey['key-a']).toBe(total - stoppedAt!.resealed);

    const again = await LevelStore.open(dir, { keyring: ringAB });
    const result = await rotateKeys(again, { batchSize: 25 });
    await again.close();
    expect(result).toMatchObject({ complete: true, resumedFrom: stoppedAt!.after });
    // The cursor carried the counts over: nothing was scanned twice.
    expect(result.scanned).toBe(total);
    expect(result.resealed).toBe(total);
    expect(await status(dir)).toMatchObject({ byKey: { 'key-b': total }, rotationPending: false });
  });

  it('handoff start with a new active key re-seals in the background while it serves; the next start has nothing to do', async () => {
    const dir = await storeUnderA(60);
    const total = (await status(dir)).values;
    const models = [join(import.meta.dirname, '..', '..', 'models', 'refunds')];
    const running = await startConsole({ data: dir, models, port: 0, keyring: ringAB });
    try {
      expect(running.rotation).not.toBeNull();
      // The node serves while the rotation runs.
      const res = await fetch(`${running.url}/login`);
      expect(res.status).toBe(200);
      const r = await running.rotation!.done;
      expect(r).toMatchObject({ target: 'key-b', complete: true });
      expect(r!.resealed).toBeGreaterThanOrEqual(total);
    } finally {
      await running.close();
    }
    const after = await status(dir);
    expect(Object.keys(after.byKey)).toEqual(['key-b']);
    expect(after).toMatchObject({ plaintext: 0, rotationPending: false, markerKeyId: 'key-b' });
    // Key A can go; a start with B alone finds nothing to re-seal and the audit chain verifies.
    const again = await startConsole({ data: dir, models, port: 0, keyring: ringB });
    try {
      expect(await again.rotation!.done).toBeNull();
      expect(await verifyAudit(again.store.audit())).toMatchObject({ ok: true });
    } finally {
      await again.close();
    }
  });

  it('a rotation SIGKILLed half-way resumes from its cursor (CLI)', async () => {
    const dir = await storeUnderA(60);
    const total = (await status(dir)).values;
    const env = {
      HANDOFF_DATA_KEYS: `${A.id}:${A.key.toString('base64')},${B.id}:${B.key.toString('base64')}`,
      HANDOFF_DATA_KEY_ID: B.id,
    };
    const killed = await runCli(
      ['keys', 'rotate', '--data', dir, '--batch-size', '5', '--pause-ms', '20', '--progress', 'lines', '--json'],
      { env: keys(env), killOn: /rotate (\d+)\// },
    );
    expect(killed.signal, killed.stderr.slice(0, 2000) + killed.stdout).toBe('SIGKILL');
    const mid = JSON.parse((await runCli(['keys', 'status', '--data', dir, '--json'], { env: keys(env) })).stdout) as {
      byKey: Record<string, number>;
      rotationPending: boolean;
    };
    expect(mid.rotationPending).toBe(true);
    expect(mid.byKey['key-b']).toBeGreaterThan(0);
    expect(mid.byKey['key-a']).toBeGreaterThan(0);

    const resumed = await runCli(
      ['keys', 'rotate', '--data', dir, '--batch-size', '10', '--progress', 'off', '--json'],
      { env: keys(env) },
    );
    expect(resumed.code).toBe(0);
    const r = JSON.parse(resumed.stdout) as {
      complete: boolean;
      resumedFrom: string | null;
      resealed: number;
      scanned: number;
    };
    expect(r.complete).toBe(true);
    expect(r.resumedFrom).not.toBeNull();
    expect(r.scanned).toBe(total);
    const end = JSON.parse(
      (await runCli(['keys', 'status', '--data', dir, '--json'], { env: keys(env) })).stdout,
    ) as Record<string, unknown>;
    expect(end).toMatchObject({ byKey: { 'key-b': total }, rotationPending: false, allUnderActive: true, missing: [] });

    // `handoff audit verify` with key B only.
    const verify = await runCli(['audit', 'verify', '--data', dir, '--json'], {
      env: keys({ HANDOFF_DATA_KEYS: `${B.id}:${B.key.toString('base64')}` }),
    });
    expect(verify.code).toBe(0);
    expect(JSON.parse(verify.stdout)).toMatchObject({ ok: true });
    // Without keys: a clear, typed error.
    const noKeys = await runCli(['audit', 'verify', '--data', dir, '--json'], { env: keys({}) });
    expect(noKeys.code).toBe(2);
    expect(JSON.parse(noKeys.stdout)).toMatchObject({
      ok: false,
      error: { code: 'keys.required', details: { keyId: 'key-b' } },
    });
  });
});

/** `env` as the command's only data-key variables (the test's own are removed). */
function keys(env: Record<string, string>): Record<string, string | undefined> {
  return { HANDOFF_DATA_KEYS: undefined, HANDOFF_DATA_KEY_ID: undefined, HANDOFF_DATA_KEY_FILE: undefined, ...env };
}
