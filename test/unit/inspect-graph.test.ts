import { and, not, or, setup } from 'xstate';
import { describe, expect, it } from 'vitest';
import { chartOf, formatGuard, toDot, toMermaid } from '../../src/inspect/graph.ts';
import { layoutChart, wrapGuard } from '../../src/inspect/layout.ts';
import { agentMachine } from '../../src/machines/agent.ts';
import { reviewCaseMachine } from '../../src/machines/review-case.ts';
import { declaredTransitions, stateIds } from './fixtures.ts';

const nested = setup({ guards: { ok: () => true, ready: () => true, late: () => false } }).createMachine({
  id: 'door',
  initial: 'closed',
  states: {
    closed: {
      initial: 'locked',
      states: {
        locked: { on: { unlock: { target: 'unlocked', guard: or(['ok', and(['ready', not('late')])]) } } },
        unlocked: { after: { 5000: 'locked' }, on: { lock: 'locked' } },
      },
      on: { open: { target: 'open', guard: 'ok' } },
    },
    open: {
      type: 'parallel',
      states: {
        light: { initial: 'on', states: { on: { on: { toggle: 'off' } }, off: { on: { toggle: 'on' } } } },
        alarm: {
          initial: 'armed',
          states: { armed: { always: { target: 'done', guard: 'late' } }, done: { type: 'final' } },
        },
      },
      on: { close: 'closed' },
    },
  },
});

describe('statechart extraction', () => {
  it('reads every state and every declared transition of the agent and case machines', () => {
    for (const machine of [agentMachine, reviewCaseMachine]) {
      const chart = chartOf(machine);
      const top = chart.nodes
        .filter((n) => n.parent === chart.root)
        .map((n) => n.key)
        .sort();
      expect(top).toEqual(stateIds(machine));
      expect(chart.edges).toHaveLength(declaredTransitions(machine).length);
      for (const e of chart.edges)
        for (const t of e.targets)
          expect(
            chart.nodes.some((n) => n.id === t),
            t,
          ).toBe(true);
    }
    const agent = chartOf(agentMachine);
    const gating = agent.edges.filter((e) => e.source === 'agent.gating');
    expect(gating.map((e) => [e.kind, e.guard, e.targets[0]])).toEqual([
      ['always', 'gateDenies', 'agent.denied'],
      ['always', 'gateAllowsAuto', 'agent.acting'],
      ['always', 'reviewAlreadyCovers', 'agent.acting'],
      ['always', 'staleMayReperceive', 'agent.perceiving'],
      ['always', null, 'agent.awaitingReview'],
    ]);
    expect(agent.nodes.find((n) => n.id === 'agent.done')!.type).toBe('final');
    const caseChart = chartOf(reviewCaseMachine);
    // A composite guard (and) reads as its parts; negation is covered by the nested machine below.
    expect(caseChart.edges.find((e) => e.id === 'reviewCase.claimed:approve:1')!.guard).toBe(
      'isClaimant && planWasModified',
    );
    // A transition of the root (applies in every state).
    expect(caseChart.edges.filter((e) => e.source === 'reviewCase').map((e) => e.event)).toEqual([
      'timer.resolve',
      'timer.resolve',
    ]);
  });

  it('reads nested and parallel states, delays and composite guards', () => {
    const chart = chartOf(nested);
    const byId = new Map(chart.nodes.map((n) => [n.id, n]));
    expect(byId.get('door.closed')).toMatchObject({
      type: 'compound',
      initial: 'door.closed.locked',
      children: ['door.closed.locked', 'door.closed.unlocked'],
    });
    expect(byId.get('door.open')!.type).toBe('parallel');
    expect(byId.get('door.open.alarm.done')!.type).toBe('final');
    const unlock = chart.edges.find((e) => e.event === 'unlock')!;
    expect(unlock.guard).toBe('ok || ready && !late');
    const after = chart.edges.find((e) => e.kind === 'after')!;
    expect(after).toMatchObject({ source: 'door.closed.unlocked', delay: '5000', targets: ['door.closed.locked'] });
    expect(chart.edges.find((e) => e.kind === 'always')).toMatchObject({
      source: 'door.open.alarm.armed',
      guard: 'late',
    });
    expect(formatGuard(undefined)).toBeNull();
    expect(wrapGuard('a && b && cccccccccccccccccccccccccccccc', 12)).toEqual([
      'a && b',
      '  && cccccccccccccccccccccccccccccc',
    ]);
  });

  it('prints Mermaid and Graphviz for docs', () => {
    const m = toMermaid(chartOf(nested));
    expect(m).toMatch(/^stateDiagram-v2\n/);
    expect(m).toContain('state closed {');
    expect(m).toContain('[*] --> closed_locked');
    expect(m).toContain('  --\n');
    expect(m).toContain('closed_unlocked --> closed_locked : after 5000 ms');
    expect(m).toContain('closed --> open : open [ok]');
    const caseMermaid = toMermaid(chartOf(reviewCaseMachine));
    expect(caseMermaid).toContain('queued --> claimed : claim [reviewerMayClaim]');
    const dot = toDot(chartOf(nested));
    expect(dot).toMatch(/^digraph "door" \{/);
    expect(dot).toContain('subgraph "cluster_door.open"');
    expect(dot).toContain('style="rounded,dashed"');
    expect(dot.trim().endsWith('}')).toBe(true);
  });
});

describe('layout with elkjs', () => {
  it('gives every state a box inside its parent and every transition a path', async () => {
    // Per machine: whether it has transitions of an ancestor (drawn from an "any state" marker), and
    // how many states sit inside a parent other than the root (their boxes are checked for nesting).
    const cases = [
      { name: 'agent', machine: agentMachine, any: false },
      { name: 'reviewCase', machine: reviewCaseMachine, any: true },
      { name: 'nested', machine: nested, any: null },
    ];
    let nestedBoxes = 0;
    let labelled = 0;
    for (const { name, machine, any } of cases) {
      const chart = await layoutChart(chartOf(machine));
      const { layout } = chart;
      expect(layout.width).toBeGreaterThan(100);
      const boxes = new Map(layout.boxes.map((b) => [b.id, b]));
      for (const n of chart.nodes) {
        if (n.id === chart.root) continue;
        const b = boxes.get(n.id)!;
        expect(b, n.id).toBeDefined();
        expect(Number.isFinite(b.x) && Number.isFinite(b.y) && b.width > 0 && b.height > 0).toBe(true);
        const parent = n.parent && n.parent !== chart.root ? boxes.get(n.parent) : null;
        expect(parent === undefined, `${name}: the parent of ${n.id} has a box`).toBe(false);
        if (parent) {
          nestedBoxes++;
          expect(b.x).toBeGreaterThanOrEqual(parent.x);
          expect(b.y).toBeGreaterThanOrEqual(parent.y);
          expect(b.x + b.width).toBeLessThanOrEqual(parent.x + parent.width + 0.5);
          expect(b.y + b.height).toBeLessThanOrEqual(parent.y + parent.height + 0.5);
        }
      }
      const drawn = layout.paths.flatMap((p) => p.edges);
      expect(new Set(drawn)).toEqual(new Set(chart.edges.map((e) => e.id)));
      for (const p of layout.paths) {
        expect(p.points.length).toBeGreaterThanOrEqual(2);
        // A path carries a label exactly when it draws transitions.
        expect(p.label === undefined || p.label === null, `${name}: label of a path with ${p.edges.length} edges`).toBe(
          p.edges.length === 0,
        );
        if (p.edges.length) {
          labelled++;
          expect(p.label!.lines.map((l) => l.edge)).toEqual(p.edges);
        }
      }
      // Initial dots, and an "any state" marker exactly for machines with transitions of an ancestor.
      expect(layout.boxes.some((b) => b.kind === 'initial')).toBe(true);
      if (any !== null)
        expect(
          layout.boxes.some((b) => b.kind === 'any'),
          `${name}: "any state" marker`,
        ).toBe(any);
    }
    // The nesting and label checks above ran (the nested machine has child states).
    expect(nestedBoxes).toBeGreaterThan(0);
    expect(labelled).toBeGreaterThan(0);
  });
});
