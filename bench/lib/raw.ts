/**
 * What the libraries allow on this machine, measured in the same run as our figures: events through
 * a bare XState actor, actor create+start+stop, LevelDB batched writes and awaited single puts.
 */
import { Level } from 'level';
import { assign, createActor, setup } from 'xstate';
import { withTempDir } from './common.ts';

const toggle = setup({ types: { context: {} as { n: number }, events: {} as { type: 'E' } } }).createMachine({
  context: { n: 0 },
  initial: 'a',
  states: {
    a: { on: { E: { target: 'b', actions: assign({ n: ({ context }) => context.n + 1 }) } } },
    b: { on: { E: { target: 'a', actions: assign({ n: ({ context }) => context.n + 1 }) } } },
  },
});

/** Events per second through one bare actor (a two-state toggle with an assign). */
export function xstateEventsPerSecond(ms: number): number {
  const actor = createActor(toggle).start();
  const e = { type: 'E' as const };
  for (let i = 0; i < 20_000; i++) actor.send(e);
  let n = 0;
  const t0 = performance.now();
  let t = t0;
  while (t - t0 < ms) {
    for (let i = 0; i < 10_000; i++) actor.send(e);
    n += 10_000;
    t = performance.now();
  }
  actor.stop();
  return n / ((t - t0) / 1000);
}

/**
 * LevelDB writes per second: awaited batches of `batch` puts of small JSON values (about the size of a
 * journal entry), the way group commit writes; and awaited single puts, one at a time.
 */
export async function levelWrites(
  ms: number,
  batch = 1000,
): Promise<{ batchedPerSecond: number; singlePutsPerSecond: number }> {
  return withTempDir('raw-level', async (dir) => {
    const db = new Level<string, unknown>(dir, { valueEncoding: 'json' });
    await db.open();
    try {
      const value = {
        seq: 1,
        at: Date.now(),
        event: { type: 'action.done', effectId: 'ep-000001:execute:0:1', result: { status: 'ok' } },
        state: 'acting',
      };
      let n = 0;
      let t0 = performance.now();
      while (performance.now() - t0 < ms) {
        const ops = [];
        for (let i = 0; i < batch; i++)
          ops.push({ type: 'put' as const, key: `j:${String(n + i).padStart(12, '0')}`, value });
        await db.batch(ops);
        n += batch;
      }
      const batchedPerSecond = n / ((performance.now() - t0) / 1000);
      let m = 0;
      t0 = performance.now();
      while (performance.now() - t0 < ms / 2) {
        await db.put(`p:${String(m).padStart(12, '0')}`, value);
        m++;
      }
      const singlePutsPerSecond = m / ((performance.now() - t0) / 1000);
      return { batchedPerSecond, singlePutsPerSecond };
    } finally {
      await db.close();
    }
  });
}
