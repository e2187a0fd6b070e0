import { HandoffError, fromWireError, toWireError, type WireError } from '../contracts/errors.ts';
import type { Msg, Subscription, Transport } from './transport.ts';

interface Sub {
  pattern: string[];
  handler: (msg: Msg) => void;
  serve?: (msg: Msg) => Promise<unknown> | unknown;
}

export function subjectMatches(pattern: readonly string[], subject: readonly string[]): boolean {
  for (let i = 0; i < pattern.length; i++) {
    const p = pattern[i];
    if (p === '>') return subject.length > i;
    if (i >= subject.length) return false;
    if (p !== '*' && p !== subject[i]) return false;
  }
  return pattern.length === subject.length;
}

/**
 * The embedded transport: one process, no broker. Delivery is asynchronous (a microtask later) like a
 * network's, so code written against it behaves the same on NATS. Payloads are cloned so no sender and
 * receiver ever share an object.
 */
export class MemoryTransport implements Transport {
  #subs = new Set<Sub>();
  #closed = false;

  publish(subject: string, data: unknown, headers?: Record<string, string>): void {
    if (this.#closed || this.#subs.size === 0) return;
    const tokens = subject.split('.');
    for (const sub of this.#subs) {
      if (sub.serve || !subjectMatches(sub.pattern, tokens)) continue;
      const msg: Msg = { subject, data: structuredClone(data), ...(headers ? { headers } : {}) };
      queueMicrotask(() => sub.handler(msg));
    }
  }

  subscribe(subject: string, handler: (msg: Msg) => void): Subscription {
    const sub: Sub = { pattern: subject.split('.'), handler };
    this.#subs.add(sub);
    return { unsubscribe: () => this.#subs.delete(sub) };
  }

  serve(subject: string, handler: (msg: Msg) => Promise<unknown> | unknown): Subscription {
    const sub: Sub = { pattern: subject.split('.'), handler: () => undefined, serve: handler };
    this.#subs.add(sub);
    return { unsubscribe: () => this.#subs.delete(sub) };
  }

  async request(
    subject: string,
    data: unknown,
    opts: { timeoutMs?: number; headers?: Record<string, string> } = {},
  ): Promise<unknown> {
    if (this.#closed) throw new HandoffError('transport.closed', 'the transport is closed');
    const tokens = subject.split('.');
    const responder = [...this.#subs].find((s) => s.serve && subjectMatches(s.pattern, tokens));
    if (!responder?.serve)
      throw new HandoffError('transport.no_responders', `no responder for ${subject}`, { subject });
    const msg: Msg = { subject, data: structuredClone(data), ...(opts.headers ? { headers: opts.headers } : {}) };
    const reply = (async () => {
      await Promise.resolve();
      try {
        return { ok: true as const, data: structuredClone(await responder.serve!(msg)) };
      } catch (err) {
        return { ok: false as const, error: toWireError(err) };
      }
    })();
    const timeoutMs = opts.timeoutMs ?? 30_000;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new HandoffError('transport.timeout', `request to ${subject} timed out after ${timeoutMs} ms`)),
        timeoutMs,
      );
      timer.unref();
    });
    try {
      const r = await Promise.race([reply, timeout]);
      if (!r.ok) throw fromWireError(r.error as WireError);
      return r.data;
    } finally {
      clearTimeout(timer);
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#subs.clear();
  }
}
