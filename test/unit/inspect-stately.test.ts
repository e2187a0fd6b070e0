import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import { embeddedInspectorBackend } from '../../src/inspect/backend.ts';
import { Redactor } from '../../src/inspect/redact.ts';
import { replayJournal } from '../../src/inspect/replay.ts';
import { StatelyBridge, statelyEvents, type StatelyInspectionEvent } from '../../src/inspect/stately.ts';
import { InspectionStream } from '../../src/inspect/stream.ts';
import { MemoryTransport } from '../../src/transport/memory-transport.ts';
import {
  cleanup,
  cmd,
  drive,
  journalOf,
  LEAD,
  openEnv,
  refunds,
  reviewSignals,
  settle,
} from '../integration/helpers.ts';

afterEach(cleanup);

/** The shape of @statelyai/inspect's events (its `StatelyInspectionEvent` types). */
function expectStatelyShape(e: StatelyInspectionEvent): void {
  expect(typeof e._version).toBe('string');
  expect(typeof e.sessionId).toBe('string');
  expect(typeof e.createdAt).toBe('string');
  expect(['@xstate.actor', '@xstate.event', '@xstate.snapshot']).toContain(e.type);
  if (e.type === '@xstate.actor') {
    expect(typeof e.name).toBe('string');
    expect(typeof e.definition).toBe('string');
    expect(e.snapshot).toBeTypeOf('object');
  }
  if (e.type === '@xstate.event') expect(typeof e.event.type).toBe('string');
  if (e.type === '@xstate.snapshot') {
    expect(e.snapshot).toHaveProperty('value');
    expect(typeof e.event.type).toBe('string');
  }
}

describe('Stately compatibility', () => {
  it("bridges a node's live inspection stream into @statelyai/inspect events, redacted, cases under their episode", async () => {
    const model = await refunds();
    const transport = new MemoryTransport();
    const stream = new InspectionStream({ models: [model], flushMs: 1 }).attach(transport);
    const env = await openEnv({ runtime: { transport, inspect: stream.inspect } });
    const sent: StatelyInspectionEvent[] = [];
    const bridge = new StatelyBridge({ models: [model], adapter: { send: (e) => sent.push(e) } });
    const sub = bridge.connect(embeddedInspectorBackend(env.rt));
    await new Promise((r) => setTimeout(r, 5));
    const [c] = await reviewSignals();
    await env.rt.startEpisode('refunds', c!.signal, { episodeId: 'st-1' });
    await drive(env.rt, env.clock, async () => (await env.rt.get('st-1.case-1'))?.state === 'queued');
    await env.rt.command(cmd('claim', 'st-1.case-1', LEAD));
    stream.flush();
    await settle(env.rt);
    await new Promise((r) => setTimeout(r, 5));
    sub.unsubscribe();
    stream.close();

    expect(sent.length).toBeGreaterThan(5);
    for (const e of sent) expectStatelyShape(e);
    const agentActor = sent.find((e) => e.type === '@xstate.actor' && e.sessionId === 'st-1') as Extract<
      StatelyInspectionEvent,
      { type: '@xstate.actor' }
    >;
    expect(agentActor).toBeDefined();
    expect(agentActor.name).toBe('agent');
    expect(JSON.parse(agentActor.definition!)).toMatchObject({ id: 'agent', initial: 'perceiving' });
    const caseActor = sent.find((e) => e.type === '@xstate.actor' && e.sessionId === 'st-1.case-1') as Extract<
      StatelyInspectionEvent,
      { type: '@xstate.actor' }
    >;
    expect(caseActor.parentId).toBe('st-1');
    expect(JSON.parse(caseActor.definition!).id).toBe('reviewCase');
    const claimed = sent
      .filter((e) => e.type === '@xstate.snapshot' && e.sessionId === 'st-1.case-1')
      .at(-1) as Extract<StatelyInspectionEvent, { type: '@xstate.snapshot' }>;
    expect((claimed.snapshot as { value?: unknown }).value).toBe('claimed');
    expect(claimed.event.type).toBe('claim');
    expect(
      sent.some((e) => e.type === '@xstate.event' && e.sessionId === 'st-1' && e.event.type === 'perceive.done'),
    ).toBe(true);
    const email = (c!.observation.fields as { customer: { email: string } }).customer.email;
    expect(JSON.stringify(sent)).not.toContain(email);
  });

  it('sends a replayed journal to a Stately WebSocket inspector', async () => {
    const model = await refunds();
    const env = await openEnv();
    const [c] = await reviewSignals();
    await env.rt.startEpisode('refunds', c!.signal, { episodeId: 'ws-1' });
    await drive(env.rt, env.clock, async () => (await env.rt.get('ws-1.case-1'))?.state === 'queued');
    await env.rt.command(cmd('claim', 'ws-1.case-1', LEAD));
    await env.rt.command(cmd('reject', 'ws-1.case-1', LEAD, { reason: 'not eligible' }));
    await drive(env.rt, env.clock, async () => (await env.rt.get('ws-1'))?.status === 'done');
    const replay = replayJournal({
      id: 'ws-1.case-1',
      kind: 'case',
      model,
      entries: await journalOf(env.rt, 'ws-1.case-1'),
      record: await env.store.load('ws-1.case-1'),
      redactor: new Redactor([model]),
    });

    // As JSON (handoff inspect <id> --format stately).
    const events = statelyEvents([model], replay);
    expect(events.map((e) => e.type)).toEqual([
      '@xstate.actor',
      '@xstate.snapshot',
      '@xstate.event',
      '@xstate.snapshot',
      '@xstate.event',
      '@xstate.snapshot',
    ]);
    const last = events.at(-1) as Extract<StatelyInspectionEvent, { type: '@xstate.snapshot' }>;
    expect(last.snapshot).toMatchObject({ status: 'done', value: 'rejected' });

    // Over Stately's own WebSocket adapter, to a server standing in for Stately's inspector.
    const http = createServer();
    const wss = new WebSocketServer({ server: http });
    const received: StatelyInspectionEvent[] = [];
    wss.on('connection', (ws) =>
      ws.on('message', (d) => received.push(JSON.parse(d.toString()) as StatelyInspectionEvent)),
    );
    await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
    const bridge = StatelyBridge.webSocket([model], `ws://127.0.0.1:${(http.address() as AddressInfo).port}`);
    bridge.pushReplay(replay);
    await expect.poll(() => received.length, { timeout: 5000 }).toBe(events.length);
    bridge.stop();
    for (const e of received) expectStatelyShape(e);
    expect(received.map((e) => e.type)).toEqual(events.map((e) => e.type));
    wss.close();
    http.close();
  });
});
