/** The `status` of an actor's durable record (`ActorRecord` in runtime/store.ts). */
export type ActorStatus = 'active' | 'done' | 'error' | 'stopped';

/** What a caller gets back once an event is durable: the reply to a command, in process or over a transport. */
export interface Ack {
  actorId: string;
  /** The actor's version after the event. */
  seq: number;
  state: string;
  status: ActorStatus;
}
