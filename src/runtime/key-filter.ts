/**
 * A scalable Bloom filter over string keys: `mightContain` is false only for keys never added. Used
 * by the LevelDB store to answer "is there a record under this key?" for keys that are not there
 * (a new actor's id, a command id not yet applied, an effect key not yet in the world's ledger)
 * without a read. Each layer holds twice as many keys as the one before at about 1% false positives,
 * so the filter grows with the keyspace without being sized in advance (about 1.2 bytes per key).
 */
export class KeyFilter {
  #layers: { bits: Uint32Array; mask: number; capacity: number; count: number }[] = [];
  #size = 0;

  constructor(initialCapacity = 1 << 16) {
    this.#grow(initialCapacity);
  }

  /** Keys added (with repeats). */
  get size(): number {
    return this.#size;
  }

  add(key: string): void {
    let layer = this.#layers[this.#layers.length - 1]!;
    if (layer.count >= layer.capacity) layer = this.#grow(layer.capacity * 2);
    const [h1, h2] = hashes(key);
    for (let i = 0; i < HASHES; i++) {
      const bit = (h1 + Math.imul(i, h2)) & layer.mask;
      layer.bits[bit >>> 5]! |= 1 << (bit & 31);
    }
    layer.count++;
    this.#size++;
  }

  mightContain(key: string): boolean {
    const [h1, h2] = hashes(key);
    for (const layer of this.#layers) {
      let all = true;
      for (let i = 0; i < HASHES && all; i++) {
        const bit = (h1 + Math.imul(i, h2)) & layer.mask;
        all = (layer.bits[bit >>> 5]! & (1 << (bit & 31))) !== 0;
      }
      if (all) return true;
    }
    return false;
  }

  #grow(capacity: number) {
    // ~10 bits per key and 7 hashes: about 1% false positives at capacity; a power of two of bits.
    const bits = 2 ** Math.ceil(Math.log2(capacity * 10));
    const layer = { bits: new Uint32Array(bits / 32), mask: bits - 1, capacity, count: 0 };
    this.#layers.push(layer);
    return layer;
  }
}

const HASHES = 7;
const out: [number, number] = [0, 0];

/** Two independent 32-bit hashes (FNV-1a and a multiplicative one) for double hashing. */
function hashes(key: string): [number, number] {
  let a = 0x811c9dc5;
  let b = 0x9747b28c;
  for (let i = 0; i < key.length; i++) {
    const c = key.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x5bd1e995);
    b ^= b >>> 15;
  }
  out[0] = a >>> 0;
  // Odd, so the probe sequence visits distinct bits.
  out[1] = (b | 1) >>> 0;
  return out;
}
