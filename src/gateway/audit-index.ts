import type { AuditEntry } from '../runtime/audit-log.ts';
import type { GatewayBackend } from './backend.ts';

/**
 * Which audit entries concern which actor: sequence numbers by actor id, built from the log and
 * caught up on demand (the log only grows). Entries themselves are read back from the store.
 */
export class AuditIndex {
  #byActor = new Map<string, number[]>();
  #last = 0;
  #catchingUp: Promise<void> | null = null;
  #backend: GatewayBackend;

  constructor(backend: GatewayBackend) {
    this.#backend = backend;
  }

  get indexed(): number {
    return this.#last;
  }

  /** Reads entries appended since the last call. Concurrent callers share one pass. */
  catchUp(): Promise<void> {
    if (!this.#catchingUp) {
      this.#catchingUp = (async () => {
        for await (const e of this.#backend.audit(this.#last + 1)) {
          let list = this.#byActor.get(e.actor);
          if (!list) this.#byActor.set(e.actor, (list = []));
          list.push(e.seq);
          this.#last = e.seq;
        }
      })().finally(() => {
        this.#catchingUp = null;
      });
    }
    return this.#catchingUp;
  }

  /** Entries of these actors, oldest first. */
  async entries(actors: readonly string[], limit = 500): Promise<AuditEntry[]> {
    await this.catchUp();
    const seqs = [...new Set(actors.flatMap((a) => this.#byActor.get(a) ?? []))].sort((a, b) => a - b).slice(-limit);
    const out: AuditEntry[] = [];
    for (const seq of seqs) {
      for await (const e of this.#backend.audit(seq)) {
        if (e.seq === seq) out.push(e);
        break;
      }
    }
    return out;
  }
}
