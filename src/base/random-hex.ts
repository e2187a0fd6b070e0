import { randomFillSync } from 'node:crypto';

/**
 * Random bytes drawn 4 KB at a time, for trace and span ids: one call into the CSPRNG per 4 KB
 * instead of one per id (a `randomBytes` call per id was 1.5 % of a durable episode's CPU).
 */
const pool = Buffer.alloc(4096);
let at = pool.length;

/** `bytes` random bytes as lowercase hex, never all zeros (W3C trace context forbids zero ids). */
export function randomHex(bytes: number): string {
  for (;;) {
    if (at + bytes > pool.length) {
      randomFillSync(pool);
      at = 0;
    }
    const h = pool.toString('hex', at, at + bytes);
    at += bytes;
    if (!/^0+$/.test(h)) return h;
  }
}
