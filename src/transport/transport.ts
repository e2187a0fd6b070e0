/**
 * How nodes, clients and pages exchange messages. Subjects follow NATS conventions (dot-separated
 * tokens, `*` matches one token, `>` the rest), so the embedded memory transport and the NATS
 * transport are interchangeable. Payloads are plain JSON values; contracts are applied at the edges.
 */
export interface Msg {
  subject: string;
  data: unknown;
  headers?: Record<string, string>;
}

export interface Subscription {
  unsubscribe(): void;
}

export interface Transport {
  publish(subject: string, data: unknown, headers?: Record<string, string>): void;
  subscribe(subject: string, handler: (msg: Msg) => void): Subscription;
  /** Request/reply: exactly one responder answers; rejects with a timeout or no-responders error. */
  request(
    subject: string,
    data: unknown,
    opts?: { timeoutMs?: number; headers?: Record<string, string> },
  ): Promise<unknown>;
  /** Serves requests on a subject; the handler's return value (or thrown error) is the reply. */
  serve(subject: string, handler: (msg: Msg) => Promise<unknown> | unknown): Subscription;
  /**
   * Runs `fn` (which publishes) once the reply being prepared now has been sent, so what it publishes
   * follows the reply on the wire, in the same write where the transport can. Without it, the runtime
   * defers such work to the next check phase of the event loop (`setImmediate`).
   */
  afterReply?(fn: () => void): void;
  close(): Promise<void>;
}

/** Subjects of one namespace, as laid out in docs/architecture.md. */
export function subjects(ns: string) {
  return {
    actor: (id: string) => `handoff.${ns}.actor.${id}`,
    actorAll: `handoff.${ns}.actor.*`,
    events: (kind: string, id: string) => `handoff.${ns}.events.${kind}.${id}`,
    eventsAll: `handoff.${ns}.events.>`,
    queue: (queue: string) => `handoff.${ns}.queue.${queue}`,
    queueAll: `handoff.${ns}.queue.*`,
    inspect: (id: string) => `handoff.${ns}.inspect.${id}`,
  };
}

/** Actor ids become one subject token; dots inside them are escaped. */
export function subjectToken(id: string): string {
  return id.replace(/[.*> ]/g, '_');
}
