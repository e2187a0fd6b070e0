/**
 * `@handoff-hitl/runtime/client`: send reviewer commands to whichever node hosts a case, over any
 * transport (the in-memory one, or `NatsTransport` from `@handoff-hitl/runtime/cluster`).
 */
export { HandoffClient } from './transport/client.ts';
export { subjects, type Transport, type Msg, type Subscription } from './transport/transport.ts';
export type { Ack } from './contracts/ack.ts';
