/**
 * Waiting for the runtime under a scenario (harness.ts): until nothing runs but the effects held at
 * the gates, or until a condition holds, with the simulated clock's due timers let fire on the way.
 * A runtime idle for {@link STUCK_MS} without the condition holding has stopped making progress.
 */
import type { AgentContext } from '../machines/agent.ts';
import type { SimulatedClock } from '../base/clock.ts';
import type { Runtime } from '../runtime/runtime.ts';
import { HarnessError } from './checks.ts';

const tick = () => new Promise<void>((r) => setImmediate(r));
/** A runtime idle this long (wall ms) with the step not done has stopped making progress. */
export const STUCK_MS = 250;

/** What the waits look at: the runtime's work in progress and the effects held at the gates. */
export interface Idle {
  busy(): number;
  held(): number;
  readonly clock: SimulatedClock;
  readonly timeoutMs: number;
  /** The actors and held effects, for the message of a wait that gave up. */
  describe(): Promise<string>;
}

const calm = (x: Idle) => x.busy() <= x.held();

/** Waits until nothing runs in the runtime except effects held at the gates. */
export async function settle(x: Idle): Promise<void> {
  let n = 0;
  const deadline = performance.now() + x.timeoutMs;
  while (n < 3) {
    if (performance.now() > deadline)
      throw new HarnessError(`the runtime did not settle (busy ${x.busy()}, held effects ${x.held()})`);
    n = calm(x) ? n + 1 : 0;
    await tick();
  }
}

/**
 * Polls `done` until it holds. Fails when the runtime has been idle (only held effects) for
 * {@link STUCK_MS} without it holding, or after `timeoutMs`.
 */
export async function until(x: Idle, what: string, done: () => Promise<boolean>): Promise<void> {
  const start = performance.now();
  let calmSince: number | undefined;
  for (;;) {
    if (await done()) return;
    const now = performance.now();
    const due = x.clock.nextDue();
    if (due !== undefined && due <= x.clock.now()) x.clock.advanceTo(x.clock.now());
    if (calm(x)) calmSince ??= now;
    else calmSince = undefined;
    if ((calmSince !== undefined && now - calmSince > STUCK_MS) || now - start > x.timeoutMs) {
      const how = calmSince !== undefined ? 'is idle' : 'did not get there';
      throw new HarnessError(`waited for ${what}, but the runtime ${how}: ${await x.describe()}`);
    }
    await tick();
  }
}

/** The scenario's actors (version, state, the effect an agent waits on) and the effects held at the gates. */
export async function describeRuntime(
  rt: Runtime,
  ids: string[],
  held: readonly { kind: string; step?: number | undefined }[],
): Promise<string> {
  const parts: string[] = [];
  for (const id of ids) {
    const v = await rt.get(id);
    if (!v) continue;
    const effect = v.kind === 'agent' ? (v.context as AgentContext).effect : null;
    parts.push(`${id} v${v.seq} ${v.state}${effect ? ` (effect ${effect.kind})` : ''}`);
  }
  const effects = held.map((a) => `${a.kind}${a.step !== undefined ? `#${a.step}` : ''}`);
  return `${parts.join(', ')}; held effects: ${effects.join(', ') || 'none'}`;
}
