import type { AnyStateMachine } from 'xstate';

/**
 * A statechart as data, read from a machine's definition (its state node tree and transition
 * definitions), never from a hand-written picture: what the inspector draws, what `handoff inspect
 * --graph` prints, and what the layout lays out.
 */
export interface ChartNode {
  /** XState's state node id, e.g. `agent.awaitingReview`. The root is the machine id. */
  id: string;
  /** The key within its parent (`awaitingReview`); the root's is the machine id. */
  key: string;
  /** Dot path below the root (`awaitingReview`, `a.b`); '' for the root. */
  path: string;
  type: 'atomic' | 'compound' | 'parallel' | 'final' | 'history';
  parent: string | null;
  children: string[];
  /** The initial child of a compound state. */
  initial: string | null;
  entry: string[];
  exit: string[];
  description: string | null;
  tags: string[];
}

export interface ChartEdge {
  /** Unique within the chart: `<source>:<event>:<n>`. */
  id: string;
  source: string;
  /** State node ids; empty for a targetless (internal) transition. */
  targets: string[];
  /** The event type; '' for an eventless (`always`) transition. */
  event: string;
  kind: 'event' | 'always' | 'after';
  /** The guard, formatted: `effectIsCurrent`, `effectIsCurrent && moreActionsToRun`, `!needsSecondApproval`. */
  guard: string | null;
  /** For `after` transitions: the delay (ms, or the name of a configured delay). */
  delay: string | null;
  actions: string[];
  reenter: boolean;
  /** Position among the transitions of the same source and event (the order XState tries them). */
  order: number;
}

export interface Chart {
  /** The machine id (`agent`, `reviewCase`). */
  id: string;
  root: string;
  nodes: ChartNode[];
  edges: ChartEdge[];
}

/** Formats a guard as written: named guards by name, `and`/`or`/`not` as expressions. */
export function formatGuard(guard: unknown): string | null {
  if (guard === undefined || guard === null) return null;
  if (typeof guard === 'string') return guard;
  if (typeof guard === 'function') {
    const g = guard as { name?: string; guards?: unknown[]; guard?: unknown };
    const parts = (g.guards ?? []).map((x) => formatGuard(x) ?? 'true');
    if (g.name === 'and' && g.guards) return parts.map((p) => (/\|\|/.test(p) ? `(${p})` : p)).join(' && ');
    if (g.name === 'or' && g.guards) return parts.join(' || ');
    if (g.name === 'not' && g.guards) return `!${/\s/.test(parts[0] ?? '') ? `(${parts[0]})` : (parts[0] ?? '')}`;
    if (g.name === 'stateIn') return 'stateIn';
    return g.name || 'inline guard';
  }
  if (typeof guard === 'object') {
    const o = guard as { type?: unknown; params?: unknown };
    if (typeof o.type === 'string') return o.type;
  }
  return 'guard';
}

function actionName(a: unknown): string {
  if (typeof a === 'string') return a;
  if (typeof a === 'function')
    return (a as { type?: string; name?: string }).type ?? ((a as { name?: string }).name || 'inline action');
  if (a && typeof a === 'object' && typeof (a as { type?: unknown }).type === 'string')
    return (a as { type: string }).type;
  return 'action';
}

interface StateNodeLike {
  id: string;
  key: string;
  path: string[];
  type: ChartNode['type'];
  parent?: StateNodeLike;
  states: Record<string, StateNodeLike>;
  initial?: { target: StateNodeLike[] };
  entry: unknown[];
  exit: unknown[];
  description?: string;
  tags: string[];
  transitions: Map<string, TransitionLike[]>;
  always?: TransitionLike[];
  after: (TransitionLike & { delay: number | string; eventType: string })[];
}

interface TransitionLike {
  eventType: string;
  source: StateNodeLike;
  target?: StateNodeLike[];
  guard?: unknown;
  actions: unknown[];
  reenter: boolean;
}

/** Reads the statechart of a machine. Works for any XState v5 machine, nested and parallel states included. */
export function chartOf(machine: AnyStateMachine): Chart {
  const nodes: ChartNode[] = [];
  const edges: ChartEdge[] = [];
  const visit = (sn: StateNodeLike): void => {
    const children = Object.values(sn.states ?? {});
    nodes.push({
      id: sn.id,
      key: sn.key,
      path: sn.path.join('.'),
      type: sn.type,
      parent: sn.parent?.id ?? null,
      children: children.map((c) => c.id),
      initial: sn.type === 'compound' ? (sn.initial?.target[0]?.id ?? null) : null,
      entry: sn.entry.map(actionName),
      exit: sn.exit.map(actionName),
      description: sn.description ?? null,
      tags: [...(sn.tags ?? [])],
    });
    const delays = new Map(sn.after.map((t) => [t.eventType, String(t.delay)]));
    const add = (t: TransitionLike, order: number, kind: ChartEdge['kind']) => {
      const event = kind === 'always' ? '' : t.eventType;
      edges.push({
        id: `${sn.id}:${event || 'always'}:${order}`,
        source: sn.id,
        targets: (t.target ?? []).map((x) => x.id),
        event,
        kind,
        guard: formatGuard(t.guard),
        delay: kind === 'after' ? (delays.get(t.eventType) ?? null) : null,
        actions: t.actions.map(actionName),
        reenter: t.reenter,
        order,
      });
    };
    for (const [event, ts] of sn.transitions)
      ts.forEach((t, i) => add(t, i, event.startsWith('xstate.after.') ? 'after' : 'event'));
    (sn.always ?? []).forEach((t, i) => add(t, i, 'always'));
    for (const c of children) visit(c);
  };
  visit(machine.root as unknown as StateNodeLike);
  return { id: machine.id, root: machine.root.id, nodes, edges };
}

/** The label of a transition as the inspector shows it: event, then guard and delay. */
export function edgeLabel(e: Pick<ChartEdge, 'event' | 'kind' | 'guard' | 'delay'>): {
  event: string;
  detail: string | null;
} {
  const event =
    e.kind === 'always'
      ? 'always'
      : e.kind === 'after'
        ? `after ${e.delay ?? '?'}${/^\d+$/.test(e.delay ?? '') ? ' ms' : ''}`
        : e.event;
  return { event, detail: e.guard ? `[${e.guard}]` : null };
}

// ------------------------------------------------------------------------------------------------
// Text formats for docs
// ------------------------------------------------------------------------------------------------

function mermaidId(chart: Chart, id: string): string {
  const n = chart.nodes.find((x) => x.id === id);
  return (n?.path || chart.id).replace(/[^A-Za-z0-9_]/g, '_');
}

function textLabel(e: ChartEdge): string {
  const l = edgeLabel(e);
  return l.detail ? `${l.event} ${l.detail}` : l.event;
}

/** Mermaid `stateDiagram-v2`: compound states as nested `state X { }`, parallel regions split by `--`. */
export function toMermaid(chart: Chart): string {
  const byId = new Map(chart.nodes.map((n) => [n.id, n]));
  const lines = ['stateDiagram-v2'];
  const esc = (s: string) => s.replace(/[:;#]/g, ' ').replace(/\s+/g, ' ').trim();
  const children = (n: ChartNode) => n.children.map((c) => byId.get(c)!);
  const walk = (n: ChartNode, indent: string): void => {
    if (n.type === 'parallel') {
      // Concurrent regions are separated by `--` inside the parallel state.
      children(n).forEach((k, i) => {
        if (i > 0) lines.push(`${indent}--`);
        lines.push(`${indent}state ${mermaidId(chart, k.id)} {`);
        walk(k, `${indent}  `);
        lines.push(`${indent}}`);
      });
      return;
    }
    for (const k of children(n)) {
      if (k.children.length === 0) {
        // Top-level ids are the keys already; nested ones get their key as a readable name.
        if (n.id !== chart.root) lines.push(`${indent}state "${k.key}" as ${mermaidId(chart, k.id)}`);
        continue;
      }
      lines.push(`${indent}state ${mermaidId(chart, k.id)} {`);
      walk(k, `${indent}  `);
      lines.push(`${indent}}`);
    }
    if (n.initial) lines.push(`${indent}[*] --> ${mermaidId(chart, n.initial)}`);
    for (const k of children(n)) if (k.type === 'final') lines.push(`${indent}${mermaidId(chart, k.id)} --> [*]`);
  };
  const root = byId.get(chart.root)!;
  walk(root, '  ');
  for (const e of chart.edges) {
    // A transition of the root applies in every state; mermaid has no such arrow, so it is drawn
    // from each top-level state that is not final.
    const sources =
      e.source === chart.root
        ? children(root)
            .filter((c) => c.type !== 'final')
            .map((c) => mermaidId(chart, c.id))
        : [mermaidId(chart, e.source)];
    for (const t of e.targets.length ? e.targets : [e.source]) {
      for (const s of sources) lines.push(`  ${s} --> ${mermaidId(chart, t)} : ${esc(textLabel(e))}`);
    }
  }
  return `${lines.join('\n')}\n`;
}

/** Graphviz `digraph`: compound and parallel states as clusters (parallel ones dashed). */
export function toDot(chart: Chart): string {
  const byId = new Map(chart.nodes.map((n) => [n.id, n]));
  const q = (s: string) => `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
  const out = [
    `digraph ${q(chart.id)} {`,
    '  compound=true;',
    '  rankdir=TB;',
    '  node [shape=box, style="rounded", fontname="Helvetica", fontsize=11];',
    '  edge [fontname="Helvetica", fontsize=9];',
  ];
  // A cluster has no node of its own to attach edges to: use an invisible anchor inside it.
  const anchor = (id: string) => (byId.get(id)!.children.length ? `${id}.__anchor` : id);
  const walk = (n: ChartNode, indent: string) => {
    for (const cid of n.children) {
      const c = byId.get(cid)!;
      if (c.children.length) {
        out.push(`${indent}subgraph ${q(`cluster_${c.id}`)} {`);
        out.push(
          `${indent}  label=${q(c.key + (c.type === 'parallel' ? ' (parallel)' : ''))}; style=${c.type === 'parallel' ? '"rounded,dashed"' : 'rounded'};`,
        );
        out.push(`${indent}  ${q(anchor(c.id))} [shape=point, style=invis];`);
        walk(c, `${indent}  `);
        out.push(`${indent}}`);
      } else {
        out.push(`${indent}${q(c.id)} [label=${q(c.key)}${c.type === 'final' ? ', peripheries=2' : ''}];`);
      }
    }
    if (n.initial) {
      out.push(
        `${indent}${q(`${n.id}.__initial`)} [shape=circle, style=filled, fillcolor=black, label="", width=0.15];`,
      );
      out.push(`${indent}${q(`${n.id}.__initial`)} -> ${q(anchor(n.initial))};`);
    }
  };
  walk(byId.get(chart.root)!, '  ');
  const root = byId.get(chart.root)!;
  for (const e of chart.edges) {
    // A transition of the root applies in every state: drawn from each top-level state that is not final.
    const sources = e.source === chart.root ? root.children.filter((c) => byId.get(c)!.type !== 'final') : [e.source];
    for (const t of e.targets.length ? e.targets : [e.source]) {
      for (const src of sources) {
        const attrs = [`label=${q(textLabel(e))}`];
        const s = byId.get(src)!;
        if (s.children.length) attrs.push(`ltail=${q(`cluster_${s.id}`)}`);
        if (byId.get(t)!.children.length && t !== src) attrs.push(`lhead=${q(`cluster_${t}`)}`);
        if (e.kind === 'always') attrs.push('style=dashed');
        out.push(`  ${q(anchor(src))} -> ${q(anchor(t))} [${attrs.join(', ')}];`);
      }
    }
  }
  out.push('}');
  return `${out.join('\n')}\n`;
}
