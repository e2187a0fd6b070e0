import type { DeadLetter } from '../runtime/store.ts';
import { decode, encode, isCasConflict, type StoreSubjects } from './store-format.ts';
import type { StreamIO } from './stream-io.ts';

/** A value of an auxiliary space and the stream sequence that holds it (0 and undefined: never written). */
export interface AuxVersion<T> {
  value: T | undefined;
  seq: number;
}

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
    return (await this.casAux(space, key, update)).value as T;
  }

  /**
   * {@link updateAux} with the stream sequence of the result, and two shortcuts: `known` is a guess
   * of the current value and its sequence (`seq: 0`: the key was never written) that the first
   * attempt writes against without reading it (a wrong guess fails the compare-and-set, then the
   * key is read and `update` runs again on what it holds), and `update` may return null: nothing to
   * write, the current version is the result. The compare-and-set decides in every case, so a guess
   * saves a round trip and never changes the outcome.
   */
  async casAux<T>(
    space: string,
    key: string,
    update: (current: T | undefined) => { value: T; msgId: string } | null,
    known?: AuxVersion<T>,
  ): Promise<AuxVersion<T>> {
    const subject = this.#sub.aux(space, key);
    for (let attempt = 1; ; attempt++) {
      let current: AuxVersion<T>;
      if (attempt === 1 && known) current = known;
      else {
        const last = await this.#io.getLast(this.#io.streams.idx, subject);
        current = last ? { value: decode<T>(last.data), seq: last.seq } : { value: undefined, seq: 0 };
      }
      const next = update(current.value);
      if (next === null) return current;
      try {
        const opts = {
          msgID: next.msgId,
          expect: { lastSubjectSequence: current.seq },
          timeout: this.#io.opts.publishTimeoutMs,
        };
        const ack = await this.#io.retrying(`aux ${space}/${key}`, () =>
          this.#io.publish(subject, encode(next.value), opts),
        );
        return { value: next.value, seq: ack.seq };
      } catch (err) {
        if (!isCasConflict(err) || attempt > 50) throw err;
      }
    }
  }

  /** A value of an auxiliary space with the stream sequence that holds it (`seq: 0`: never written). */
  async readAux<T>(space: string, key: string): Promise<AuxVersion<T>> {
    const m = await this.#io.getLast(this.#io.streams.idx, this.#sub.aux(space, key));
    return m ? { value: decode<T>(m.data), seq: m.seq } : { value: undefined, seq: 0 };
  }

  async getAux<T>(space: string, key: string): Promise<T | undefined> {
    const m = await this.#io.getLast(this.#io.streams.idx, this.#sub.aux(space, key));
    return m ? decode<T>(m.data) : undefined;
  }

  async *auxValues<T>(space: string): AsyncIterable<T> {
    for await (const m of this.#io.scan(this.#io.streams.idx, this.#sub.auxAll(space))) yield decode<T>(m.data);
  }
}
