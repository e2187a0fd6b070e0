import type { Runtime } from './runtime.ts';
import { subjects, type Subscription } from '../transport/transport.ts';

/**
 * Serves reviewer commands for the actors of a runtime on `handoff.<ns>.actor.*`. The reply is sent
 * only once the command is durable; a refusal travels back as a typed error with its code.
 */
export function serveCommands(rt: Runtime): Subscription {
  return rt.transport.serve(subjects(rt.namespace).actorAll, (msg) => rt.command(msg.data));
}
