import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { HandoffError } from '../../src/contracts/errors.ts';
import {
  DataKeyConfigError,
  generateDataKey,
  Keyring,
  loadKeyring,
  parseDataKeys,
} from '../../src/security/keyring.ts';
import {
  DataKeyRequiredError,
  ENVELOPE_V1,
  isSealed,
  open,
  openMaybe,
  seal,
  SealedValueAuthError,
  sealedKeyId,
  UnknownDataKeyError,
} from '../../src/security/seal.ts';

const keyA = { id: 'key-a', key: randomBytes(32) };
const keyB = { id: 'key-b', key: randomBytes(32) };
const ringA = new Keyring([keyA]);
const ringAB = new Keyring([keyA, keyB], 'key-b');
const text = (b: Uint8Array) => Buffer.from(b).toString('utf8');
const plaintext = Buffer.from(JSON.stringify({ email: 'jane@example.com', orderId: 'ORD-1' }));

describe('seal / open', () => {
  it('round-trips, with the envelope header naming the key', () => {
    const sealed = seal(ringA, plaintext, 'a:ep-1');
    expect(sealed[0]).toBe(ENVELOPE_V1);
    expect(sealedKeyId(sealed)).toBe('key-a');
    expect(isSealed(sealed)).toBe(true);
    expect(sealed.length).toBe(plaintext.length + 2 + 5 + 12 + 16);
    expect(sealed.includes(Buffer.from('jane@example.com'))).toBe(false);
    expect(text(open(ringA, sealed, 'a:ep-1'))).toBe(plaintext.toString());
  });

  it('uses a fresh nonce each time', () => {
    expect(seal(ringA, plaintext, 'k').equals(seal(ringA, plaintext, 'k'))).toBe(false);
  });

  it('opens values of any key in the ring and seals under the active one', () => {
    const old = seal(ringA, plaintext, 'k');
    expect(text(open(ringAB, old, 'k'))).toBe(plaintext.toString());
    expect(sealedKeyId(seal(ringAB, plaintext, 'k'))).toBe('key-b');
  });

  it('names the key id when the key is not configured', () => {
    const sealed = seal(ringAB, plaintext, 'a:ep-1');
    const err = (() => {
      try {
        open(ringA, sealed, 'a:ep-1');
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(UnknownDataKeyError);
    expect(err).toMatchObject({ code: 'keys.unknown', details: { keyId: 'key-b', context: 'a:ep-1' } });
    expect((err as Error).message).toContain("'key-b'");
  });

  it('refuses a wrong key under the same id', () => {
    const impostor = new Keyring([{ id: 'key-a', key: randomBytes(32) }]);
    expect(() => open(impostor, seal(ringA, plaintext, 'k'), 'k')).toThrow(SealedValueAuthError);
  });

  it('detects tampering with any byte: header, nonce, ciphertext, tag', () => {
    const sealed = seal(ringA, plaintext, 'k');
    for (const i of [1, 2, 8, 20, sealed.length - 20, sealed.length - 1]) {
      const t = Buffer.from(sealed);
      t[i] = t[i]! ^ 0x01;
      expect(() => open(ringA, t, 'k'), `byte ${i}`).toThrow(HandoffError);
    }
    const flipped = Buffer.from(sealed);
    flipped[30] = flipped[30]! ^ 0x80;
    expect(() => open(ringA, flipped, 'k')).toThrow(expect.objectContaining({ code: 'keys.auth_failed' }));
  });

  it('detects truncation', () => {
    const sealed = seal(ringA, plaintext, 'k');
    expect(() => open(ringA, sealed.subarray(0, sealed.length - 1), 'k')).toThrow(SealedValueAuthError);
    expect(() => open(ringA, sealed.subarray(0, 10), 'k')).toThrow(
      expect.objectContaining({
        code: 'keys.auth_failed',
        details: expect.objectContaining({ reason: 'truncated envelope' }),
      }),
    );
  });

  it('binds a value to its key: moved to another key, it fails authentication', () => {
    const sealed = seal(ringA, plaintext, 'a:ep-1');
    expect(() => open(ringA, sealed, 'a:ep-2')).toThrow(SealedValueAuthError);
  });

  it('passes plaintext JSON through openMaybe, and asks for keys when there are none', () => {
    expect(openMaybe(ringA, plaintext, 'k')).toBe(plaintext);
    expect(() => openMaybe(undefined, seal(ringA, plaintext, 'k'), 'k')).toThrow(DataKeyRequiredError);
  });
});

describe('key configuration', () => {
  const b64 = (n: number) => randomBytes(n).toString('base64');
  const dirs: string[] = [];
  afterAll(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  it('parses kid:base64 lists (standard and URL-safe base64)', () => {
    const k = randomBytes(32);
    const keys = parseDataKeys(`a:${k.toString('base64')}, b:${k.toString('base64url')}`, 'HANDOFF_DATA_KEYS');
    expect(keys.map((x) => x.id)).toEqual(['a', 'b']);
    expect(keys[1]!.key.equals(k)).toBe(true);
  });

  it('names the variable and the key when a key is not 32 bytes', () => {
    expect(() => loadKeyring({}, { HANDOFF_DATA_KEYS: `short:${b64(16)}` })).toThrow(
      expect.objectContaining({
        code: 'keys.invalid',
        details: expect.objectContaining({ variable: 'HANDOFF_DATA_KEYS', keyId: 'short', bytes: 16 }),
      }),
    );
    try {
      loadKeyring({}, { HANDOFF_DATA_KEYS: `short:${b64(16)}` });
    } catch (e) {
      expect(e).toBeInstanceOf(DataKeyConfigError);
      expect((e as Error).message).toMatch(/^HANDOFF_DATA_KEYS: key 'short' decodes to 16 bytes/);
    }
  });

  it('refuses malformed entries, bad base64, bad and duplicate ids', () => {
    expect(() => loadKeyring({}, { HANDOFF_DATA_KEYS: 'nocolon' })).toThrow(
      /HANDOFF_DATA_KEYS: entry 1 is not 'kid:base64key'/,
    );
    expect(() => loadKeyring({}, { HANDOFF_DATA_KEYS: 'a:not*base64' })).toThrow(/key 'a' is not base64/);
    expect(() => loadKeyring({}, { HANDOFF_DATA_KEYS: `bad/id:${b64(32)}` })).toThrow(/key id 'bad\/id'/);
    expect(() => loadKeyring({}, { HANDOFF_DATA_KEYS: `a:${b64(32)},a:${b64(32)}` })).toThrow(/given twice/);
  });

  it('needs the active id when several keys are configured, and it must name one of them', () => {
    const env = { HANDOFF_DATA_KEYS: `a:${b64(32)},b:${b64(32)}` };
    expect(() => loadKeyring({}, env)).toThrow(
      expect.objectContaining({
        code: 'keys.invalid',
        details: expect.objectContaining({ variable: 'HANDOFF_DATA_KEY_ID' }),
      }),
    );
    expect(() => loadKeyring({}, { ...env, HANDOFF_DATA_KEY_ID: 'c' })).toThrow(
      /HANDOFF_DATA_KEY_ID: names key 'c', which is not among the configured keys \(a, b\)/,
    );
    expect(loadKeyring({}, { ...env, HANDOFF_DATA_KEY_ID: 'b' })!.active.id).toBe('b');
    expect(() => loadKeyring({}, { HANDOFF_DATA_KEY_ID: 'b' })).toThrow(/no data keys are configured/);
  });

  it('returns no keyring when nothing is configured (the zero-config default)', () => {
    expect(loadKeyring({}, {})).toBeUndefined();
  });

  it('reads a key file, with comments, and names the file when it cannot', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'handoff-keys-'));
    dirs.push(dir);
    const file = join(dir, 'keys');
    const a = generateDataKey('old');
    const b = generateDataKey('new');
    await writeFile(file, `# data keys\n${a.entry}\n${b.entry} # current\n`);
    const ring = loadKeyring({ keyFile: file, activeId: 'new' }, {})!;
    expect(ring.ids).toEqual(['old', 'new']);
    expect(ring.active.id).toBe('new');
    expect(() => loadKeyring({}, { HANDOFF_DATA_KEY_FILE: join(dir, 'missing') })).toThrow(
      expect.objectContaining({
        code: 'keys.invalid',
        details: expect.objectContaining({ variable: 'HANDOFF_DATA_KEY_FILE' }),
      }),
    );
    await writeFile(file, `x:${b64(31)}\n`);
    expect(() => loadKeyring({ keyFile: file }, {})).toThrow(/--data-key-file .*: key 'x' decodes to 31 bytes/);
  });

  it('generates 32-byte keys the parser accepts', () => {
    const g = generateDataKey();
    expect(g.id).toMatch(/^k\d{8}-[0-9a-f]{6}$/);
    expect(parseDataKeys(g.entry, 'x')[0]!.key.length).toBe(32);
    expect(() => generateDataKey('no spaces')).toThrow(DataKeyConfigError);
  });
});
