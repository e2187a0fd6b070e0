import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ModelError } from '../../src/contracts/errors.ts';
import { Directory, LoginThrottle, Sessions, hashPassword, verifyPassword } from '../../src/httpkit/auth.ts';
import { loadModel } from '../../src/models/loader.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

describe('gateway auth', () => {
  it('hashes with scrypt and a salt per call; verifies in constant time', async () => {
    const a = await hashPassword('correct horse');
    const b = await hashPassword('correct horse');
    expect(a.salt).not.toBe(b.salt);
    expect(a.hash).not.toBe(b.hash);
    expect(await verifyPassword('correct horse', a)).toBe(true);
    expect(await verifyPassword('correct horsE', a)).toBe(false);
    expect(await verifyPassword('', a)).toBe(false);
  });

  it('loads the shipped demo credentials; roles come from model.json', async () => {
    const dir = await Directory.load([
      await loadModel(join(ROOT, 'models/refunds')),
      await loadModel(join(ROOT, 'models/incidents')),
    ]);
    expect(dir.size).toBe(19);
    // The engineer of both models (the inspector), one account with a grant in each.
    const kai = await dir.authenticate('r-kai', 'demo-kai');
    expect(kai?.grants).toEqual({
      refunds: { roles: ['engineer'], seeSensitive: false },
      incidents: { roles: ['engineer'], seeSensitive: false },
    });
    const malik = await dir.authenticate('r-malik', 'demo-malik');
    expect(malik?.grants).toEqual({ refunds: { roles: ['refunds-manager', 'support-lead'], seeSensitive: true } });
    const amelie = await dir.authenticate('r-amelie', 'demo-amelie');
    expect(amelie?.grants.refunds?.seeSensitive).toBe(false);
    expect(await dir.authenticate('r-amelie', 'demo-malik')).toBeNull();
    expect(await dir.authenticate('r-ghost', 'demo-ghost')).toBeNull();
  });

  it('refuses a reviewers.json that names an unknown reviewer or role, with file and path', async () => {
    const folder = await mkdtemp(join(tmpdir(), 'handoff-creds-'));
    dirs.push(folder);
    const secret = await hashPassword('x');
    await writeFile(
      join(folder, 'reviewers.json'),
      JSON.stringify({ schemaVersion: 1, sensitiveRoles: ['auditor'], reviewers: [{ id: 'r-nobody', secret }] }),
    );
    // The real model, read from a folder whose reviewers.json is broken.
    const model = { ...(await loadModel(join(ROOT, 'models/refunds'))), dir: folder };
    const err = await Directory.load([model]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ModelError);
    expect((err as ModelError).problems.map((p) => p.path)).toEqual(['sensitiveRoles.0', 'reviewers.0.id']);
    await writeFile(
      join(folder, 'reviewers.json'),
      JSON.stringify({ schemaVersion: 1, reviewers: [{ id: 'r-amelie', secret: { ...secret, salt: 'c2hvcnQ=' } }] }),
    );
    const short = await Directory.load([model]).catch((e: unknown) => e);
    expect((short as ModelError).problems[0]).toMatchObject({
      path: 'reviewers.0.secret.salt',
      message: 'salt must be at least 16 bytes',
    });
  });

  it('sessions slide with use, up to an absolute cap, and say "expired"', async () => {
    let now = 1_000_000;
    const s = new Sessions({ idleMs: 1000, absoluteMs: 2500, now: () => now, sweepMs: 0 });
    const { token } = await s.create({ id: 'r-a', name: 'A', grants: {} });
    now += 900;
    expect((await s.lookup(token)).ok).toBe(true);
    now += 900;
    expect((await s.lookup(token)).ok).toBe(true);
    now += 600; // 2400 after login: still inside the absolute cap
    expect((await s.lookup(token)).ok).toBe(true);
    now += 200; // 2600: past the cap although used 200 ms ago
    expect(await s.lookup(token)).toEqual({ ok: false, reason: 'expired' });
    expect(await s.lookup('made-up')).toEqual({ ok: false, reason: 'missing' });
    s.close();
  });

  it('locks an id out after five failures, for longer each time', () => {
    let now = 0;
    const t = new LoginThrottle({ maxFailures: () => 5, windowMs: 60_000, lockMs: 1000, now: () => now });
    for (let i = 0; i < 4; i++) expect(t.failed(['id:x'])).toEqual([]);
    expect(t.failed(['id:x'])).toEqual(['id:x']);
    expect(t.retryAfter(['id:x'])).toBe(1000);
    now += 1000;
    expect(t.retryAfter(['id:x'])).toBe(0);
    for (let i = 0; i < 5; i++) t.failed(['id:x']);
    expect(t.retryAfter(['id:x'])).toBe(2000);
    t.succeeded(['id:x']);
    expect(t.retryAfter(['id:x'])).toBe(0);
  });
});
