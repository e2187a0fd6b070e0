import { afterEach, describe, expect, it } from 'vitest';
import { Redactor, REDACTED } from '../../src/inspect/redact.ts';
import { replayJournal } from '../../src/inspect/replay.ts';
import { InspectionStream, inspectAll, focusSubject, type InspectionRecord } from '../../src/inspect/stream.ts';
import { chartOf } from '../../src/inspect/graph.ts';
import { agentMachine } from '../../src/machines/agent.ts';
import { reviewCaseMachine } from '../../src/machines/review-case.ts';
import { MemoryTransport } from '../../src/transport/memory-transport.ts';
import {
  caseCtx,
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

async function withStream(opts: Partial<ConstructorParameters<typeof InspectionStream>[0]> = {}) {
  const model = await refunds();
  const transport = new MemoryTransport();
  const stream = new InspectionStream({ models: [model], flushMs: 1, ...opts }).attach(transport);
  const records: InspectionRecord[] = [];
  transport.subscribe(inspectAll('default'), (m) => records.push(m.data as InspectionRecord));
  const env = await openEnv({ runtime: { transport, inspect: stream.inspect } });
  return { env, stream, records, transport, model };
}

describe('redaction by classification', () => {
  it('masks sensitive fields of signals, observations and action arguments, copying only what it changes', async () => {
    const model = await refunds();
    const paths = Redactor.paths(model);
    expect(paths).toContain('observation.fields.customer.email');
    expect(paths.some((p) => /^plan\.actions\.\*\.args\./.test(p))).toBe(true);
    const r = new Redactor([model]);
    const [c] = await reviewSignals();
    const ctx = {
      episodeId: 'e',
      model: 'refunds',
      signal: c!.signal,
      observation: c!.observation,
      plan: c!.plan,
      results: [1],
    };
    const out = r.redact('refunds', ctx) as typeof ctx;
    expect(out).not.toBe(ctx);
    expect(out.results).toBe(ctx.results);
    expect((out.observation.fields as { customer: { email: string } }).customer.email).toBe(REDACTED);
    expect((ctx.observation.fields as { customer: { email: string } }).customer.email).not.toBe(REDACTED);
    const json = JSON.stringify(out);
    const email = (ctx.observation.fields as { customer: { email: string } }).customer.email;
    expect(json).not.toContain(email);
    // Nothing sensitive: the same object comes back.
    const plain = { a: 1, nested: { b: 2 } };
    expect(r.redact('refunds', plain)).toBe(plain);
  });
});

describe('inspection stream', () => {
  it('publishes actor, event and snapshot records on handoff.<ns>.inspect.<id>, with the transitions taken', async () => {
    const { env, stream, records } = await withStream({ focusAll: true });
    const [c] = await reviewSignals();
    await env.rt.startEpisode('refunds', c!.signal, { episodeId: 'ep-1' });
    await drive(env.rt, env.clock, async () => (await env.rt.get('ep-1.case-1'))?.state === 'queued');
    stream.flush();
    await settle(env.rt);
    const mine = records.filter((r) => r.id === 'ep-1');
    expect(mine[0]).toMatchObject({ type: 'actor', kind: 'agent', model: 'refunds', full: true });
    const types = new Set(mine.map((r) => r.type));
    expect(types).toEqual(new Set(['actor', 'event', 'snapshot']));
    const last = mine.filter((r) => r.type === 'snapshot').at(-1)!;
    expect(last.state).toBe('awaitingReview');
    const chart = chartOf(agentMachine);
    const edges = new Set(chart.edges.map((e) => e.id));
    const taken = mine.flatMap((r) => r.transitions ?? []);
    expect(taken.length).toBeGreaterThan(2);
    for (const t of taken) expect(edges.has(t.edge), t.edge).toBe(true);
    expect(taken.map((t) => t.edge)).toContain('agent.gating:always:4');
    // Sensitive fields never leave the node.
    const email = (c!.observation.fields as { customer: { email: string } }).customer.email;
    expect(JSON.stringify(records)).not.toContain(email);
    expect(JSON.stringify(records)).toContain(REDACTED);
    // The case is inspected too.
    const caseRecs = records.filter((r) => r.id === 'ep-1.case-1');
    expect(caseRecs.some((r) => r.kind === 'case' && r.state === 'queued')).toBe(true);
    const caseEdges = new Set(chartOf(reviewCaseMachine).edges.map((e) => e.id));
    await env.rt.command(cmd('claim', 'ep-1.case-1', LEAD));
    stream.flush();
    await settle(env.rt);
    const claimed = records.filter((r) => r.id === 'ep-1.case-1' && r.type === 'snapshot').at(-1)!;
    expect(claimed.state).toBe('claimed');
    expect(claimed.transitions!.map((t) => t.edge)).toEqual(['reviewCase.queued:claim:0']);
    expect(caseEdges.has('reviewCase.queued:claim:0')).toBe(true);
    stream.close();
  });

  it('sends light records unless an inspector focuses an actor, and stays within its budget under load', async () => {
    const { env, stream, records, transport } = await withStream({ maxPerSecond: 50 });
    const signals = await reviewSignals();
    transport.publish(focusSubject('default'), { ids: ['ep-f'] });
    await new Promise((r) => setTimeout(r, 5));
    await env.rt.startEpisode('refunds', signals[0]!.signal, { episodeId: 'ep-f' });
    for (let i = 1; i < 20; i++)
      await env.rt.startEpisode('refunds', signals[i % signals.length]!.signal, { episodeId: `ep-${i}` });
    await drive(env.rt, env.clock, async () => (await env.rt.get('ep-f'))?.state === 'awaitingReview');
    stream.flush();
    await settle(env.rt);
    const focused = records.filter((r) => r.id === 'ep-f');
    expect(focused.length).toBeGreaterThan(0);
    expect(focused.every((r) => r.full)).toBe(true);
    expect(focused.some((r) => r.type === 'snapshot' && r.context)).toBe(true);
    const others = records.filter((r) => r.id !== 'ep-f' && !r.id.startsWith('ep-f.'));
    expect(others.every((r) => !r.full && r.context === undefined)).toBe(true);
    // 50 records per second: the rest was dropped and counted, not queued.
    expect(stream.stats.dropped).toBeGreaterThan(0);
    expect(stream.stats.published).toBeLessThan(stream.stats.recorded);
    stream.close();
  });
});

describe('time travel', () => {
  it('replays the journal of a finished episode and of its case, step by step, with context diffs', async () => {
    const { env, stream } = await withStream();
    const model = await refunds();
    const [c] = await reviewSignals();
    await env.rt.startEpisode('refunds', c!.signal, { episodeId: 'tt-1' });
    await drive(env.rt, env.clock, async () => (await env.rt.get('tt-1.case-1'))?.state === 'queued');
    await env.rt.command(cmd('claim', 'tt-1.case-1', LEAD));
    await env.rt.command(cmd('approve', 'tt-1.case-1', LEAD, { comment: 'ok' }));
    await drive(env.rt, env.clock, async () => (await env.rt.get('tt-1'))?.status === 'done');
    const redactor = new Redactor([model]);

    const caseRec = await env.store.load('tt-1.case-1');
    const caseReplay = replayJournal({
      id: 'tt-1.case-1',
      kind: 'case',
      model,
      entries: await journalOf(env.rt, 'tt-1.case-1'),
      record: caseRec,
      redactor,
    });
    expect(caseReplay.exact).toBe(true);
    expect(caseReplay.steps.map((s) => s.state)).toEqual(['queued', 'claimed', 'approved']);
    expect(caseReplay.steps[1]!.transitions.map((t) => t.edge)).toEqual(['reviewCase.queued:claim:0']);
    expect(caseReplay.steps[1]!.diff.some((d) => d.path === 'claim' && d.op === 'change')).toBe(true);
    expect((caseReplay.steps[2]!.context as { resolution: { outcome: string } }).resolution.outcome).toBe('approved');
    expect(caseCtx(await env.rt.get('tt-1.case-1')).resolution?.outcome).toBe('approved');

    const agentRec = await env.store.load('tt-1');
    const agent = replayJournal({
      id: 'tt-1',
      kind: 'agent',
      model,
      entries: await journalOf(env.rt, 'tt-1'),
      record: agentRec,
      redactor,
    });
    expect(agent.exact).toBe(true);
    const states = agent.steps.map((s) => s.state);
    expect(states[0]).toBe('perceiving');
    expect(states).toContain('awaitingReview');
    expect(states.at(-1)).toBe('done');
    // Every step's context is redacted.
    const email = (c!.observation.fields as { customer: { email: string } }).customer.email;
    expect(JSON.stringify(agent.steps)).not.toContain(email);
    stream.close();
  });
});
