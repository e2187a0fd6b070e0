/** The pooled random ids (src/base/random-hex.ts): the requested length in hex, no repeats across pool refills. */
import { describe, expect, it } from 'vitest';
import { randomHex } from '../../src/base/random-hex.ts';

describe('randomHex', () => {
  it('gives hex of the asked length, never all zeros, no id twice over many refills of the pool', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 5_000; i++) {
      const id = randomHex(i % 2 === 0 ? 8 : 16);
      expect(id).toMatch(i % 2 === 0 ? /^[0-9a-f]{16}$/ : /^[0-9a-f]{32}$/);
      expect(id).not.toMatch(/^0+$/);
      seen.add(id);
    }
    // 5,000 ids of 8 and 16 bytes draw 60,000 bytes: about 15 refills of the 4 KB pool.
    expect(seen.size).toBe(5_000);
  });
});
