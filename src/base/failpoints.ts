/**
 * Failpoints: named places where a test can make the process die on purpose, to prove that a crash
 * at the worst moment loses nothing. Off unless `HANDOFF_FAILPOINTS` is set, e.g.
 * `HANDOFF_FAILPOINTS=after-effect:40` SIGKILLs the process the 40th time an effect has been applied
 * but its result not yet recorded. Several are separated by commas. The points, in the order a step
 * meets them: `before-commit` (a batch of transitions is about to be written), `after-commit` (it is
 * written; its consequences not yet released), `before-effect` (an action's or compensation's request
 * is durable and the ledger holds no result: it is about to run), `after-effect` (it ran; its result is
 * not yet journaled). `handoff testgen --crash mid-step` (src/testing/crash.ts) kills at them by seed.
 */
const spec = new Map<string, number>();
for (const part of (process.env.HANDOFF_FAILPOINTS ?? '').split(',').filter(Boolean)) {
  const [name, n] = part.split(':');
  if (name) spec.set(name.trim(), Number(n ?? 1));
}
const hits = new Map<string, number>();

export type FailpointName =
  'after-effect' | 'after-commit' | 'before-commit' | 'before-effect' | 'before-webhook' | 'before-effect-pause';

/**
 * `before-effect-pause:N` does not kill: the process SIGSTOPs itself the N-th time an effect is about
 * to run (its ledger lookup found nothing), so a test can resume it (SIGCONT) after the others took
 * its work over: the paused-node case of the fault campaign (test/faults).
 */
const PAUSES = new Set<FailpointName>(['before-effect-pause']);

export function failpoint(name: FailpointName): void {
  if (spec.size === 0) return;
  const at = spec.get(name);
  if (at === undefined) return;
  const n = (hits.get(name) ?? 0) + 1;
  hits.set(name, n);
  if (n === at) process.kill(process.pid, PAUSES.has(name) ? 'SIGSTOP' : 'SIGKILL');
}
