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

const agentModule = fileURLToPath(new URL('../../src/machines/agent.ts', import.meta.url));

/**
 * A process that calls `tuneGc()`, starts an agent episode's actor (XState builds its context with
 * `Object.assign`) and reports whether the context has fast properties (a V8 hidden class) rather
 * than being a hash table ("dictionary mode"), and how many properties it has.
 */
async function agentContextShape(env: NodeJS.ProcessEnv): Promise<{ fast: boolean; keys: number }> {
  const script = `
    const { tuneGc } = await import(${JSON.stringify(module)});
    tuneGc();
    const { createActor } = await import('xstate');
    const { agentMachine } = await import(${JSON.stringify(agentModule)});
    const retry = { maxAttempts: 3, backoffMs: 100, maxBackoffMs: 1000 };
    const actor = createActor(agentMachine, { input: { episodeId: 'e1', model: 'm', signal: { a: 1 }, retry } }).start();
    const context = actor.getSnapshot().context;
    const hasFast = new Function('o', 'return %HasFastProperties(o)');
    process.stdout.write(JSON.stringify({ fast: hasFast(context), keys: Object.keys(context).length }));
  `;
  const { stdout } = await run(
    process.execPath,
    ['--allow-natives-syntax', '--import', 'tsx', '--input-type=module', '-e', script],
    { env: { ...process.env, ...env } },
  );
  return JSON.parse(stdout) as { fast: boolean; keys: number };
}

describe('tuneGc: the V8 settings of Handoff processes', () => {
  it('turns allocation-site pretenuring off in a running process; HANDOFF_V8_PRETENURING=1 keeps the default', async () => {
    // The workload does make V8 pretenure when the setting is left alone...
    expect(await tenureDecisions({ HANDOFF_V8_PRETENURING: '1' })).toBeGreaterThan(0);
    // ...and setting the flag at run time (not on the command line) is enough to stop it.
    expect(await tenureDecisions({ HANDOFF_V8_PRETENURING: '' })).toBe(0);
  }, 30_000);

  it("keeps the agent machine's context out of dictionary mode; HANDOFF_V8_FAST_PROPERTIES=0 keeps the default", async () => {
    // With V8's default the context XState builds (21 properties) is a hash table...
    const before = await agentContextShape({ HANDOFF_V8_FAST_PROPERTIES: '0' });
    expect(before.keys).toBeGreaterThanOrEqual(20);
    expect(before.fast).toBe(false);
    // ...and with the limit raised at run time it keeps a hidden class.
    expect(await agentContextShape({ HANDOFF_V8_FAST_PROPERTIES: '' })).toEqual({ fast: true, keys: before.keys });
  }, 30_000);

  it('reports the flags it set', () => {
    expect(tuneGc({ HANDOFF_V8_PRETENURING: '1', HANDOFF_V8_FAST_PROPERTIES: '0' })).toEqual([]);
    expect(tuneGc({ HANDOFF_V8_FAST_PROPERTIES: '0' })).toEqual(['--no-allocation-site-pretenuring']);
    expect(tuneGc({})).toEqual(['--no-allocation-site-pretenuring', '--fast-properties-soft-limit=32']);
  });
});
