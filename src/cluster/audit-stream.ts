import type { ConsumerConfig, JetStreamClient, JetStreamManager } from '@nats-io/jetstream';
import { nuid } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import type { Keyring } from '../security/keyring.ts';
import { openPayload } from './keys-jetstream.ts';
import { AuditChain, type AuditDraft, type AuditEntry } from '../base/audit-log.ts';
import { StoreWriteError } from '../runtime/level-store.ts';
import {
  decode,
  encode,
  isCasConflict,
  NO_AUDIT,
  sleep,
  type AudMsg,
  type JnlMsg,
  type StoreSubjects,
} from './store-format.ts';

const NO_AUDIT_HEADER = Object.keys(NO_AUDIT)[0]!;
import type { StreamIO } from './stream-io.ts';

/**
 * The audit log on JetStream: reads of the hash chain (AUD stream), audit entries that belong to no
 * transition, and the sequencer that links the journal's drafts into the chain.
 */
export class AuditStream {
  #io: StreamIO;
  #sub: StoreSubjects;
  #writer: string;
  #log: Logger | undefined;
  #keyring: Keyring | undefined;
  #sequencer: AuditSequencer | undefined;

  constructor(io: StreamIO, sub: StoreSubjects, writer: string, log: Logger | undefined, keyring: Keyring | undefined) {
    this.#io = io;
    this.#sub = sub;
    this.#writer = writer;
    this.#log = log;
    this.#keyring = keyring;
  }

  async *audit(from = 1): AsyncIterable<AuditEntry> {
    const io = this.#io;
    const aud = io.streams.aud;
    // Readers usually want a few entries from `from` on (a case page, an index catching up): find
    // the message holding `from` by binary search over the stream and read the first messages with
    // single gets; only a reader that goes on pays for a consumer.
    let start = 1;
    if (from > 1) {
      const found = await this.#auditMessageFor(from);
      if (found === null) return;
      start = found;
      for (let k = 0; k < 8; k++, start++) {
        const m = await io
          .retrying('get audit', () => io.jsm.streams.getMessage(aud, { seq: start }))
          .catch(() => null);
        if (!m) return;
        for (const e of decode<AudMsg>(io.open(m.data, m.subject)).entries) if (e.seq >= from) yield e;
      }
    }
    for await (const m of io.scan(aud, this.#sub.aud(), start > 1 ? { startSeq: start } : {})) {
      for (const e of decode<AudMsg>(m.data).entries) if (e.seq >= from) yield e;
    }
  }

  /** The stream sequence of the AUD message that holds audit entry `seq` (null: past the end). */
  async #auditMessageFor(seq: number): Promise<number | null> {
    const io = this.#io;
    const aud = io.streams.aud;
    const info = await io.retrying('audit stream info', () => io.jsm.streams.info(aud));
    let lo = info.state.first_seq;
    let hi = info.state.last_seq;
    if (info.state.messages === 0) return null;
    const firstOf = async (streamSeq: number) => {
      const m = (await io.retrying('get audit', () => io.jsm.streams.getMessage(aud, { seq: streamSeq })))!;
      return decode<AudMsg>(io.open(m.data, m.subject)).entries[0]?.seq ?? 0;
    };
    // The last message whose first entry is <= seq.
    while (lo < hi) {
      const mid = Math.ceil((lo + hi) / 2);
      if ((await firstOf(mid)) <= seq) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  async appendAudit(drafts: AuditDraft[]): Promise<void> {
    if (drafts.length === 0) return;
    const io = this.#io;
    const msg = encode({ audit: drafts } satisfies JnlMsg);
    const ack = await io.retrying('append audit', () =>
      io.js.publish(this.#sub.jnlExtra(), msg, { msgID: `aud-x:${nuid.next()}` }),
    );
    await this.#sequencer?.waitFor(ack.seq);
  }

  async lastAudit(): Promise<AuditEntry | undefined> {
    const m = await this.#io.getLast(this.#io.streams.aud, this.#sub.aud());
    if (!m) return undefined;
    const entries = decode<AudMsg>(m.data).entries;
    return entries[entries.length - 1];
  }

  /** Runs the audit sequencer here: links the journal's audit drafts into the hash chain, once each. */
  async startSequencer(): Promise<void> {
    if (this.#sequencer) return;
    const io = this.#io;
    this.#sequencer = new AuditSequencer(
      io.js,
      io.jsm,
      io.streams,
      this.#sub.aud(),
      this.#writer,
      this.#log,
      this.#keyring,
    );
    await this.#sequencer.start();
  }

  async stopSequencer(): Promise<void> {
    const s = this.#sequencer;
    this.#sequencer = undefined;
    await s?.stop();
  }

  get runsSequencer(): boolean {
    return !!this.#sequencer;
  }

  /** Waits until every journal message written so far has been linked into the audit chain. */
  async settled(timeoutMs = 30_000): Promise<void> {
    const info = await this.#io.jsm.streams.info(this.#io.streams.jnl);
    const target = info.state.last_seq;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = await this.#io.getLast(this.#io.streams.aud, this.#sub.aud());
      const through = m ? decode<AudMsg>(m.data).rawThrough : 0;
      if (through >= target || (this.#sequencer && this.#sequencer.through >= target)) return;
      if (Date.now() > deadline)
        throw new StoreWriteError(`audit chain not caught up: linked through ${through}, journal at ${target}`);
      await sleep(50);
    }
  }
}

/**
 * Links audit drafts into one hash chain per namespace. Drafts are written with the journal (each
 * commit's journal message carries its drafts, so they are durable with the transition's tail and
 * repaired with it); one sequencer reads the journal stream in order and appends chain messages
 * `{ rawThrough, entries }` to the AUD stream with compare-and-set on its last sequence: a second
 * sequencer (a node that lost the audit lease) cannot append. On start it continues after the
 * chain's `rawThrough`, so each draft is linked exactly once.
 */
class AuditSequencer {
  #js: JetStreamClient;
  #jsm: JetStreamManager;
  #streams: { jnl: string; aud: string };
  #audSubject: string;
  #writer: string;
  #log: Logger | undefined;
  #running = false;
  #loop: Promise<void> | undefined;
  #chain = new AuditChain();
  #audSeq = 0;
  through = 0;
  #waiters: { seq: number; resolve: () => void }[] = [];

  #keyring: Keyring | undefined;
  constructor(
    js: JetStreamClient,
    jsm: JetStreamManager,
    streams: { jnl: string; aud: string },
    audSubject: string,
    writer: string,
    log: Logger | undefined,
    keyring?: Keyring,
  ) {
    this.#keyring = keyring;
    this.#js = js;
    this.#jsm = jsm;
    this.#streams = streams;
    this.#audSubject = audSubject;
    this.#writer = writer;
    this.#log = log;
  }

  async #loadHead(): Promise<void> {
    const m = await this.#jsm.streams.getMessage(this.#streams.aud, { last_by_subj: this.#audSubject });
    if (!m) {
      this.#chain = new AuditChain();
      this.#audSeq = 0;
      this.through = 0;
      return;
    }
    const v = decode<AudMsg>(openPayload(this.#keyring, m.data, m.subject));
    this.#chain = new AuditChain(v.entries[v.entries.length - 1]);
    this.#audSeq = m.seq;
    this.through = v.rawThrough;
  }

  async start(): Promise<void> {
    this.#running = true;
    await this.#loadHead();
    this.#loop = this.#run();
  }

  async stop(): Promise<void> {
    this.#running = false;
    this.#current?.stop();
    await this.#loop?.catch(() => undefined);
    for (const w of this.#waiters.splice(0)) w.resolve();
  }

  waitFor(seq: number): Promise<void> {
    if (this.through >= seq || !this.#running) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push({ seq, resolve }));
  }

  #wake(): void {
    const keep: { seq: number; resolve: () => void }[] = [];
    for (const w of this.#waiters) {
      if (w.seq <= this.through) w.resolve();
      else keep.push(w);
    }
    this.#waiters = keep;
  }

  async #run(): Promise<void> {
    while (this.#running) {
      let messages:
        Awaited<ReturnType<Awaited<ReturnType<JetStreamClient['consumers']['get']>>['consume']>> | undefined;
      try {
        // An ordered consumer: recreated by the client at the right place after a server restart.
        const consumer = await this.#js.consumers.get(this.#streams.jnl, {
          deliver_policy: 'by_start_sequence' as ConsumerConfig['deliver_policy'],
          opt_start_seq: this.through + 1,
        });
        messages = await consumer.consume({ max_messages: 1000 });
        this.#current = messages;
        if (!this.#running) break;
        let entries: AuditEntry[] = [];
        let head = this.#chain.head();
        let last = this.through;
        for await (const m of messages) {
          if (m.seq <= last) continue;
          last = m.seq;
          // A journal message without drafts says so in a header (2 of an auto episode's 5): not parsed.
          if (m.headers?.get(NO_AUDIT_HEADER) !== 'none') {
            const j = decode<JnlMsg>(openPayload(this.#keyring, m.data, m.subject));
            for (const d of j.audit ?? []) entries.push(this.#chain.link(d));
          }
          if (m.info.pending > 0 && entries.length < 500) continue;
          if (entries.length > 0) {
            const msg: AudMsg = { rawThrough: last, entries };
            try {
              const ack = await this.#js.publish(this.#audSubject, encode(msg), {
                msgID: `aud:${this.#audSeq}:${last}`,
                expect: { lastSubjectSequence: this.#audSeq },
              });
              this.#audSeq = ack.seq;
            } catch (err) {
              this.#chain.reset(head);
              if (isCasConflict(err)) {
                // Another sequencer appended: continue from the chain as it stands.
                this.#log?.warn(
                  { writer: this.#writer },
                  'audit sequencer: the chain moved under us; reloading its head',
                );
                await this.#loadHead();
              }
              throw err;
            }
          }
          entries = [];
          head = this.#chain.head();
          this.through = last;
          this.#wake();
          if (!this.#running) break;
        }
      } catch (err) {
        if (!this.#running) break;
        this.#log?.debug({ err }, 'audit sequencer: restarting its consumer');
        await sleep(200);
      } finally {
        await messages?.close().catch(() => undefined);
      }
    }
  }
  #current: { stop(): void } | undefined;
}
