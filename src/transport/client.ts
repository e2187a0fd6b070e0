import type { Ack } from '../contracts/ack.ts';
import { subjects, subjectToken, type Transport } from './transport.ts';

/** Sends reviewer commands to whichever node hosts the case, over any transport. */
export class HandoffClient {
  #transport: Transport;
  #subjects: ReturnType<typeof subjects>;
  #timeoutMs: number;
  constructor(transport: Transport, opts: { namespace?: string; timeoutMs?: number } = {}) {
    this.#transport = transport;
    this.#subjects = subjects(opts.namespace ?? 'default');
    this.#timeoutMs = opts.timeoutMs ?? 10_000;
  }
  /** Resolves with the durable acknowledgement, or rejects with the typed error (its `code` kept). */
  async command(cmd: { caseId: string; [k: string]: unknown }): Promise<Ack> {
    return (await this.#transport.request(this.#subjects.actor(subjectToken(cmd.caseId)), cmd, {
      timeoutMs: this.#timeoutMs,
    })) as Ack;
  }
}
