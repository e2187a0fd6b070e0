// Runs under plain `node` in a scratch project where the packed tarball is installed: the package's
// entry points load as compiled ESM, and a shipped model runs a few episodes on LevelDB.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  Runtime,
  LevelStore,
  LevelWorld,
  SimulatedClock,
  Rng,
  loadModel,
  verifyAudit,
  builtinModels,
  defineHandlers,
  simulatedAction,
} from '@handoff-hitl/runtime';
import { ModelConfig, exportJsonSchemas } from '@handoff-hitl/runtime/contracts';
import { defineSuite } from '@handoff-hitl/runtime/testing';
import { HandoffClient } from '@handoff-hitl/runtime/client';

assert.deepEqual(builtinModels(), ['access', 'incidents', 'refunds']);
assert.equal(typeof defineHandlers, 'function');
assert.equal(typeof simulatedAction, 'function');
assert.equal(typeof defineSuite, 'function');
assert.equal(typeof HandoffClient, 'function');
assert.ok(ModelConfig.safeParse({}).success === false);
assert.ok(Object.keys(exportJsonSchemas()).length > 5);

// Optional features fail naming their package when it is not installed.
for (const [entry, pkg] of [
  ['@handoff-hitl/runtime/cluster', '@nats-io/'],
  ['@handoff-hitl/runtime/console', '(ws|uplot|elkjs|@statelyai/inspect|openid-client)'],
]) {
  await import(entry).then(
    () => undefined, // installed after all: fine
    (err) =>
      assert.match(String(err.message), new RegExp(`Cannot find (package|module) '${pkg}`), `${entry}: ${err.message}`),
  );
}

const dir = await mkdtemp(join(tmpdir(), 'handoff-smoke-'));
try {
  const store = await LevelStore.open(dir);
  const model = await loadModel('refunds');
  const rt = await Runtime.open({ store, world: new LevelWorld(store), models: [model], clock: new SimulatedClock() });
  const rng = new Rng(7);
  const ids = Array.from({ length: 20 }, (_, i) => `smoke-${i}`);
  for (const [i, id] of ids.entries())
    await rt.startEpisode('refunds', model.handlers.synthesize(rng, i), { episodeId: id });
  await rt.whenIdle();
  const states = new Map();
  for (const id of ids) {
    const view = await rt.get(id);
    assert.ok(view, `episode ${id} exists`);
    states.set(view.state, (states.get(view.state) ?? 0) + 1);
  }
  await rt.close();
  const audit = await verifyAudit(store.audit());
  assert.ok(audit.ok && audit.entries > 0, `audit chain: ${JSON.stringify(audit)}`);
  await store.close();
  console.log(
    `smoke: ${ids.length} episodes of refunds on LevelDB (${JSON.stringify(Object.fromEntries(states))}), ${audit.entries} audit entries, chain intact`,
  );
} finally {
  await rm(dir, { recursive: true, force: true });
}
