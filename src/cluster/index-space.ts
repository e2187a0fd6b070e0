import type { DeadLetter } from '../runtime/store.ts';
import { decode, encode, isCasConflict, type StoreSubjects } from './store-format.ts';
import type { StreamIO } from './stream-io.ts';

/**
 * The JetStream store's index stream (last message per subject): meta values, dead letters, and
 * auxiliary spaces written with compare-and-set (the simulated world's ledger, the cluster clock).
 */
export class IndexSpace {
  #io: StreamIO;
  #sub: StoreSubjects;

  constructor(io: StreamIO, sub: StoreSubjects) {
    this.#io = io;
    this.#sub = sub;
  }

  async getMeta<T>(key: string): Promise<T | undefined> {
    const m = await this.#io.getLast(this.#io.streams.idx, this.#sub.meta(key));
    if (!m) return undefined;
    const v = decode<{ del?: boolean; value?: T }>(m.data);
    return v.del ? undefined : v.value;
  }

  async putMeta(key: string, value: unknown): Promise<void> {
    await this.#io.put(this.#sub.meta(key), { value }, `meta:${key}`);
  }

  async deleteMeta(key: string): Promise<void> {
    await this.#io.put(this.#sub.meta(key), { del: true }, `meta:${key}`);
  }

  async putDeadLetter(letter: DeadLetter): Promise<void> {
    await this.#io.put(this.#sub.dl(letter.id), letter, `dl:${letter.id}`);
  }

  async *deadLetters(): AsyncIterable<DeadLetter> {
    for await (const m of this.#io.scan(this.#io.streams.idx, this.#sub.dlAll())) {
      const v = decode<DeadLetter & { del?: boolean }>(m.data);
      if (!v.del) yield v;
    }
  }

  async deleteDeadLetter(id: string): Promise<void> {
    await this.#io.put(this.#sub.dl(id), { del: true }, `dl-del:${id}`);
  }

  /**
   * Compare-and-set of a value in an auxiliary space (e.g. the simulated world's ledger): `update`
   * maps the current value (undefined if none) to the new one; it is retried on a conflicting write.
   * `msgId` makes a retried publish of the same change land once.
   */
  async updateAux<T>(
    space: string,
    key: string,
    update: (current: T | undefined) => { value: T; msgId: string },
  ): Promise<T> {
    const subject = this.#sub.aux(space, key);
    for (let attempt = 1; ; attempt++) {
      const last = await this.#io.getLast(this.#io.streams.idx, subject);
      const current = last ? decode<T>(last.data) : undefined;
      const next = update(current);
      try {
        const opts = {
          msgID: next.msgId,
          expect: { lastSubjectSequence: last?.seq ?? 0 },
          timeout: this.#io.opts.publishTimeoutMs,
        };
        await this.#io.retrying(`aux ${space}/${key}`, () => this.#io.js.publish(subject, encode(next.value), opts));
        return next.value;
      } catch (err) {
        if (!isCasConflict(err) || attempt > 50) throw err;
      }
    }
  }

  async getAux<T>(space: string, key: string): Promise<T | undefined> {
    const m = await this.#io.getLast(this.#io.streams.idx, this.#sub.aux(space, key));
    return m ? decode<T>(m.data) : undefined;
  }

  async *auxValues<T>(space: string): AsyncIterable<T> {
    for await (const m of this.#io.scan(this.#io.streams.idx, this.#sub.auxAll(space))) yield decode<T>(m.data);
  }
}
