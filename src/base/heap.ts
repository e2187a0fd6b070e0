/** Binary min-heap ordered by a numeric key; ties keep insertion order. */
export class MinHeap<T> {
  #items: { key: number; n: number; value: T }[] = [];
  #n = 0;
  get size(): number {
    return this.#items.length;
  }
  push(key: number, value: T): void {
    const items = this.#items;
    items.push({ key, n: this.#n++, value });
    let i = items.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.#less(i, p)) break;
      [items[i], items[p]] = [items[p]!, items[i]!];
      i = p;
    }
  }
  peek(): { key: number; value: T } | undefined {
    const top = this.#items[0];
    return top ? { key: top.key, value: top.value } : undefined;
  }
  peekKey(): number | undefined {
    return this.#items[0]?.key;
  }
  pop(): { key: number; value: T } | undefined {
    const items = this.#items;
    const top = items[0];
    if (!top) return undefined;
    const last = items.pop()!;
    if (items.length > 0) {
      items[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < items.length && this.#less(l, m)) m = l;
        if (r < items.length && this.#less(r, m)) m = r;
        if (m === i) break;
        [items[i], items[m]] = [items[m]!, items[i]!];
        i = m;
      }
    }
    return { key: top.key, value: top.value };
  }
  #less(a: number, b: number): boolean {
    const x = this.#items[a]!;
    const y = this.#items[b]!;
    return x.key < y.key || (x.key === y.key && x.n < y.n);
  }
}
