import { afterEach, describe, expect, it } from 'vitest';
import { runCli } from '../e2e/helpers.ts';
import { cleanup, closeEnv, cmd, drive, LEAD, openEnv, reviewSignals } from '../integration/helpers.ts';

afterEach(cleanup);

describe('handoff inspect', () => {
  it('prints a statechart as Mermaid, dot and JSON', async () => {
    const [mermaid, dot, json] = await Promise.all([
      runCli(['inspect', '--graph', 'refunds', '--format', 'mermaid']),
      runCli(['inspect', '--graph', 'models/refunds', '--kind', 'case', '--format', 'dot']),
      runCli(['inspect', '--graph', 'incidents', '--format', 'json', '--layout']),
    ]);
    expect(mermaid.code, mermaid.stderr).toBe(0);
    expect(mermaid.stdout).toMatch(/^stateDiagram-v2\n {2}\[\*\] --> perceiving\n/);
    expect(mermaid.stdout).toContain(
      'awaitingReview --> acting : case.resolved [caseIsCurrent && caseApproved && !staleAtApproval]',
    );
    expect(dot.code, dot.stderr).toBe(0);
    expect(dot.stdout).toContain('digraph "reviewCase"');
    expect(dot.stdout).toContain('"reviewCase.queued" -> "reviewCase.claimed" [label="claim [reviewerMayClaim]"]');
    expect(json.code, json.stderr).toBe(0);
    const chart = JSON.parse(json.stdout) as {
      id: string;
      nodes: { id: string }[];
      edges: unknown[];
      layout: { boxes: unknown[] };
    };
    expect(chart.id).toBe('agent');
    expect(chart.nodes.map((n) => n.id)).toContain('agent.awaitingReview');
    expect(chart.layout.boxes.length).toBeGreaterThan(chart.nodes.length - 1);
  });

  it("prints an actor's state, context and last events from a data folder, redacted", async () => {
    const env = await openEnv();
    const [c] = await reviewSignals();
    await env.rt.startEpisode('refunds', c!.signal, { episodeId: 'cli-1' });
    await drive(env.rt, env.clock, async () => (await env.rt.get('cli-1.case-1'))?.state === 'queued');
    await env.rt.command(cmd('claim', 'cli-1.case-1', LEAD));
    await closeEnv(env);

    const agent = await runCli([
      'inspect',
      'cli-1',
      '--data',
      env.dir,
      '--model',
      'models/refunds',
      '--events',
      '3',
      '--json',
    ]);
    expect(agent.code, agent.stderr).toBe(0);
    const out = JSON.parse(agent.stdout) as {
      state: string;
      kind: string;
      links: { cases: string[] };
      events: { event: { type: string }; state: string }[];
      context: { observation: unknown };
      replay: { exact: boolean };
    };
    expect(out).toMatchObject({
      state: 'awaitingReview',
      kind: 'agent',
      links: { cases: ['cli-1.case-1'] },
      replay: { exact: true },
    });
    expect(out.events).toHaveLength(3);
    expect(out.events.at(-1)!.event.type).toBe('case.opened');
    const email = (c!.observation.fields as { customer: { email: string } }).customer.email;
    expect(agent.stdout).not.toContain(email);
    expect(agent.stdout).toContain('[REDACTED]');

    const kase = await runCli(['inspect', 'cli-1.case-1', '--data', env.dir, '--model', 'models/refunds']);
    expect(kase.code, kase.stderr).toBe(0);
    expect(kase.stdout).toContain('cli-1.case-1  case of refunds · claimed (active)');
    expect(kase.stdout).toContain('episode cli-1');

    const stately = await runCli([
      'inspect',
      'cli-1.case-1',
      '--data',
      env.dir,
      '--model',
      'models/refunds',
      '--format',
      'stately',
    ]);
    expect(stately.code, stately.stderr).toBe(0);
    expect((JSON.parse(stately.stdout) as { type: string }[]).map((e) => e.type)).toEqual([
      '@xstate.actor',
      '@xstate.snapshot',
      '@xstate.event',
      '@xstate.snapshot',
    ]);

    const missing = await runCli(['inspect', 'nobody', '--data', env.dir, '--json']);
    expect(missing.code).toBe(2);
    expect(JSON.parse(missing.stdout)).toMatchObject({ ok: false, error: { code: 'actor.not_found' } });
  });

  it('on the folder of a running node, says so and points to the live inspector', async () => {
    const env = await openEnv();
    const locked = await runCli(['inspect', 'cli-1', '--data', env.dir, '--json']);
    await closeEnv(env);
    expect(locked.code).toBe(2);
    const out = JSON.parse(locked.stdout) as { ok: boolean; error: { code: string; message: string } };
    expect(out).toMatchObject({ ok: false, error: { code: 'store.locked' } });
    expect(out.error.message).toContain(env.dir);
    expect(out.error.message).toContain('/inspector');
  });
});
