import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { tuneGc } from '../../src/runtime/gc-tuning.ts';

const run = promisify(execFile);
const module = fileURLToPath(new URL('../../src/runtime/gc-tuning.ts', import.meta.url));

/**
 * A process that calls `tuneGc()` and then keeps many objects of one allocation site alive across
 * scavenges: with V8's default, V8 decides to pretenure that site ("maybe tenure", then "tenure"
 * once confirmed at a later scavenge). Returns how many such decisions V8 traced.
 */
async function tenureDecisions(env: NodeJS.ProcessEnv): Promise<number> {
  const script = `
    const { tuneGc } = await import(${JSON.stringify(module)});
    tuneGc();
    const keep = [];
    const make = (i) => ({ i, a: [i], b: { c: i } });
    for (let r = 0; r < 40; r++) for (let i = 0; i < 20000; i++) keep.push(make(i));
  `;
  const { stdout } = await run(
    process.execPath,
    ['--import', 'tsx', '--trace-pretenuring-statistics', '--input-type=module', '-e', script],
    { env: { ...process.env, ...env } },
  );
  return stdout.split('\n').filter((l) => /=> (maybe )?tenure/.test(l)).length;
}

describe('tuneGc: the V8 setting of Handoff processes', () => {
  it('turns allocation-site pretenuring off in a running process; HANDOFF_V8_PRETENURING=1 keeps the default', async () => {
    // The workload does make V8 pretenure when the setting is left alone...
    expect(await tenureDecisions({ HANDOFF_V8_PRETENURING: '1' })).toBeGreaterThan(0);
    // ...and setting the flag at run time (not on the command line) is enough to stop it.
    expect(await tenureDecisions({ HANDOFF_V8_PRETENURING: '' })).toBe(0);
  }, 30_000);

  it('reports the flags it set', () => {
    expect(tuneGc({ HANDOFF_V8_PRETENURING: '1' })).toEqual([]);
    expect(tuneGc({})).toEqual(['--no-allocation-site-pretenuring']);
  });
});
