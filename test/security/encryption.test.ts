/**
 * Encryption at rest of the embedded store: real demo episodes (runtime, simulated reviewers, cases,
 * outbox, audit) with data keys, then the LevelDB folder is read raw — its files' bytes and every
 * value through a plain `Level` — looking for the customers' sensitive fields.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Level } from 'level';
import { afterAll, describe, expect, it } from 'vitest';
import type { AgentContext } from '../../src/machines/agent.ts';
import { verifyAudit } from '../../src/base/audit-log.ts';
import { LevelStore } from '../../src/runtime/level-store.ts';
import { Keyring } from '../../src/security/keyring.ts';
import { sealingStatus } from '../../src/security/keys-rotation.ts';
import { sealedKeyId } from '../../src/security/seal.ts';
import { SEALED_MARKER_KEY } from '../../src/security/sealed-level.ts';
import { runDemo } from '../../src/app/demo.ts';

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});
async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'handoff-enc-'));
  dirs.push(d);
  return d;
}

const keyring = new Keyring([{ id: 'k1', key: randomBytes(32) }]);

async function demo(data: string, ring: Keyring | undefined, cases = 60) {
  return runDemo({ model: 'models/refunds', cases, data, reviewers: 6, seed: 3, resume: false, keyring: ring });
}

/** The customers' e-mails, IBANs and names, order ids and free-text reasons, read back through the store. */
async function sensitiveValues(store: LevelStore): Promise<string[]> {
  const out = new Set<string>();
  for await (const rec of store.actors('agent')) {
    const ctx = (rec.snapshot as { context: AgentContext }).context;
    const signal = ctx.signal as { orderId: string; reason: string };
    out.add(signal.orderId);
    out.add(signal.reason);
    const customer = (
      ctx.observation?.fields as { customer?: { email: string; iban: string; name: string } } | undefined
    )?.customer;
    if (customer) for (const v of [customer.email, customer.iban, customer.name]) out.add(v);
  }
  return [...out];
}

async function rawValues(dir: string): Promise<[string, Buffer][]> {
  const raw = new Level<string, Buffer>(dir, { valueEncoding: 'buffer' });
  await raw.open();
  try {
    return await raw.iterator().all();
  } finally {
    await raw.close();
  }
}

async function rawFiles(dir: string): Promise<Buffer> {
  const names = (await readdir(dir)).filter(
    (n) => n.endsWith('.ldb') || n.endsWith('.log') || n.startsWith('MANIFEST'),
  );
  expect(names.some((n) => n.endsWith('.ldb') || n.endsWith('.log'))).toBe(true);
  return Buffer.concat(await Promise.all(names.map((n) => readFile(join(dir, n)))));
}

const found = (haystack: Buffer, needles: string[]) => needles.filter((n) => haystack.includes(Buffer.from(n, 'utf8')));

describe('encryption at rest (LevelDB)', () => {
  it('without keys the sensitive fields are in the files (the check below can see them)', async () => {
    const data = await tempDir();
    const s = await demo(data, undefined, 20);
    expect(s.unfinished).toBe(0);
    const store = await LevelStore.open(data);
    const needles = await sensitiveValues(store);
    await store.close();
    const values = Buffer.concat((await rawValues(data)).map(([, v]) => v));
    expect(found(values, needles).length).toBe(needles.length);
    expect(found(await rawFiles(data), needles).length).toBeGreaterThan(needles.length / 2);
  });

  it('with keys no sensitive field appears in the LevelDB files or any stored value', async () => {
    const data = await tempDir();
    const s = await demo(data, keyring);
    expect(s.unfinished).toBe(0);
    expect(s.episodes).toBe(60);
    expect(s.cases).toBeGreaterThan(0);

    const store = await LevelStore.open(data, { keyring });
    const needles = await sensitiveValues(store);
    const audit = await verifyAudit(store.audit());
    // Flush the write-ahead log into sorted tables too, so both kinds of file are checked.
    await (store.db as unknown as { compactRange(start: string, end: string): Promise<void> }).compactRange('!', '~');
    await store.close();
    expect((await readdir(data)).some((n) => n.endsWith('.ldb'))).toBe(true);
    expect(needles.length).toBeGreaterThan(100);
    expect(needles.some((n) => n.includes('@'))).toBe(true);
    expect(audit).toMatchObject({ ok: true });

    // Every stored value but the marker is a sealed envelope under k1.
    const entries = await rawValues(data);
    expect(entries.length).toBeGreaterThan(500);
    const kinds = new Set(entries.map(([k]) => k.split(':')[0]));
    for (const space of ['a', 'j', 'x', 'm', 'c', 'w']) expect(kinds.has(space), `keyspace ${space}`).toBe(true);
    for (const [k, v] of entries) {
      if (k === SEALED_MARKER_KEY) continue;
      expect(sealedKeyId(v), k).toBe('k1');
    }
    expect(found(Buffer.concat(entries.map(([, v]) => v)), needles)).toEqual([]);
    // The files as they are on disk (write-ahead log, tables, manifest).
    expect(found(await rawFiles(data), needles)).toEqual([]);
    expect(await sealingStatus(new Level(data))).toMatchObject({
      byKey: { k1: entries.length - 1 },
      plaintext: 0,
      markerKeyId: 'k1',
    });
  });

  it('a sealed store refuses to open without keys, and with the wrong key names the missing key id', async () => {
    const data = await tempDir();
    const store = await LevelStore.open(data, { keyring });
    await store.putMeta('x', { email: 'jane@example.com' });
    await store.close();
    await expect(LevelStore.open(data)).rejects.toMatchObject({ code: 'keys.required', details: { keyId: 'k1' } });
    const other = await LevelStore.open(data, { keyring: new Keyring([{ id: 'k2', key: randomBytes(32) }]) });
    try {
      await expect(other.getMeta('x')).rejects.toMatchObject({
        code: 'keys.unknown',
        details: { keyId: 'k1', context: 'm:x' },
      });
    } finally {
      await other.close();
    }
  });

  it('a value moved to another key, or altered, fails authentication on read', async () => {
    const data = await tempDir();
    const store = await LevelStore.open(data, { keyring });
    await store.putMeta('a', { v: 1 });
    await store.putMeta('b', { v: 2 });
    await store.close();
    const raw = new Level<string, Buffer>(data, { valueEncoding: 'buffer' });
    const a = (await raw.get('m:a'))!;
    const altered = Buffer.from(a);
    altered[altered.length - 20] = altered[altered.length - 20]! ^ 1;
    await raw.batch([
      { type: 'put', key: 'm:b', value: a },
      { type: 'put', key: 'm:c', value: altered },
    ]);
    await raw.close();
    const again = await LevelStore.open(data, { keyring });
    try {
      expect(await again.getMeta('a')).toEqual({ v: 1 });
      await expect(again.getMeta('b')).rejects.toMatchObject({ code: 'keys.auth_failed' });
      await expect(again.getMeta('c')).rejects.toMatchObject({ code: 'keys.auth_failed' });
    } finally {
      await again.close();
    }
  });

  it('a plaintext store opened with keys reads its old values and seals new ones', async () => {
    const data = await tempDir();
    const plain = await LevelStore.open(data);
    await plain.putMeta('old', { email: 'old@example.com' });
    await plain.close();
    const sealed = await LevelStore.open(data, { keyring });
    await sealed.putMeta('new', { email: 'new@example.com' });
    expect(await sealed.getMeta('old')).toEqual({ email: 'old@example.com' });
    expect(await sealed.getMeta('new')).toEqual({ email: 'new@example.com' });
    await sealed.close();
    expect(await sealingStatus(new Level(data))).toMatchObject({ byKey: { k1: 1 }, plaintext: 1 });
  });
});
