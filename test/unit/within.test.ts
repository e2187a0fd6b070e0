/** A bounded wait that never keeps a process alive: a cluster node asked to stop used to wait 16 s for timers. */
import { describe, expect, it } from 'vitest';
import { within } from '../../src/base/within.ts';

const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;

describe('within', () => {
  it('answers the promise when it settles first, and clears its timer at once', async () => {
    const before = timers();
    expect(await within(Promise.resolve(42), 60_000)).toBe(42);
    expect(timers()).toBe(before);
  });

  it('answers undefined when the bound comes first; a missing promise is no wait at all', async () => {
    expect(await within(new Promise(() => undefined), 20)).toBeUndefined();
    expect(await within(undefined, 60_000)).toBeUndefined();
  });

  it('passes a rejection on and still clears its timer', async () => {
    const before = timers();
    await expect(within(Promise.reject(new Error('lost')), 60_000)).rejects.toThrow('lost');
    expect(timers()).toBe(before);
  });
});
