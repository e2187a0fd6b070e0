import ELKModule from 'elkjs/lib/elk.bundled.js';
import type { ELK as ElkApi, ElkExtendedEdge, ElkNode } from 'elkjs/lib/elk-api.js';
import { edgeLabel, type Chart, type ChartEdge, type ChartNode } from './graph.ts';

/**
 * Lays a {@link Chart} out with elkjs (the Eclipse Layout Kernel's layered algorithm, hierarchy
 * included), so the browser only draws: every box and path comes with absolute coordinates.
 *
 * Transitions between the same two states are drawn as one path with one label line per transition
 * (in the order XState tries them), which keeps charts with many guarded branches readable; each line
 * keeps its transition's id so the inspector can light the one that was taken.
 */
export interface Box {
  id: string;
  /** `state`: a state node; `initial`: the dot pointing at a compound state's initial child; `any`: the source of transitions that apply in every child (transitions of an ancestor). */
  kind: 'state' | 'initial' | 'any';
  type: ChartNode['type'] | null;
  label: string;
  x: number;
  y: number;
  width: number;
  height: number;
  /** Nesting depth (0: a child of the root). */
  depth: number;
}

export interface LabelLine {
  edge: string;
  event: string;
  detail: string | null;
  /** The detail (the guard) wrapped at its operators, as drawn. */
  detailLines: string[];
}

export interface Path {
  id: string;
  source: string;
  target: string;
  /** The transitions drawn by this path. */
  edges: string[];
  points: { x: number; y: number }[];
  label: { x: number; y: number; width: number; height: number; lines: LabelLine[] } | null;
  self: boolean;
}

export interface ChartLayout {
  width: number;
  height: number;
  boxes: Box[];
  paths: Path[];
}

export interface LaidOutChart extends Chart {
  layout: ChartLayout;
}

// elkjs ships CommonJS; under ESM the constructor is the default export (or its `default`).
const ELK = ((ELKModule as unknown as { default?: unknown }).default ?? ELKModule) as new () => ElkApi;
let elk: ElkApi | null = null;

/** Text widths, estimated for the inspector's fonts (11 px names, 10.5 px labels) with some room. */
const EVENT_CHAR = 6.6;
const DETAIL_CHAR = 5.9;
const LINE_H = 14;
const STATE_H = 38;
const HEADER_H = 30;

function stateWidth(label: string): number {
  return Math.max(104, Math.ceil(label.length * 7.4 + 34));
}

/** Wraps a guard before its `&&` / `||` operators so long conditions stack instead of widening the chart. */
export function wrapGuard(detail: string | null, max = 30): string[] {
  if (!detail) return [];
  const parts = detail.split(/ (?=&& |\|\| )/);
  const out: string[] = [];
  for (const p of parts) {
    const last = out.at(-1);
    if (last !== undefined && last.length + 1 + p.length <= max) out[out.length - 1] = `${last} ${p}`;
    else out.push(out.length ? `  ${p}` : p);
  }
  return out;
}

/** A transition's label: the event on one line, its guard (if any) below. */
function lineWidth(l: LabelLine): number {
  return Math.ceil(Math.max(l.event.length * EVENT_CHAR, ...l.detailLines.map((d) => 8 + d.length * DETAIL_CHAR)));
}

function linesHeight(lines: LabelLine[]): number {
  return lines.reduce((h, l) => h + LINE_H + l.detailLines.length * (LINE_H - 2), 0) + 4;
}

/** The lowest common ancestor of two state nodes: the container an edge between them belongs to. */
function container(byId: Map<string, ChartNode>, a: string, b: string, root: string): string {
  const up = (id: string) => {
    const out: string[] = [];
    for (let n = byId.get(id); n; n = n.parent ? byId.get(n.parent) : undefined) out.push(n.id);
    return out;
  };
  const ancestorsA = up(a).slice(1);
  const ancestorsB = new Set(up(b).slice(1));
  return ancestorsA.find((x) => ancestorsB.has(x)) ?? root;
}

function isAncestor(byId: Map<string, ChartNode>, ancestor: string, id: string): boolean {
  for (let n = byId.get(id)?.parent; n; n = byId.get(n)?.parent ?? null) if (n === ancestor) return true;
  return false;
}

/**
 * Lays the chart out top-down and left-to-right and keeps the one that fits a landscape panel
 * (`fit`, default 1100 × 600) at the larger scale; or in the `direction` given.
 */
export async function layoutChart(
  chart: Chart,
  opts: { direction?: 'DOWN' | 'RIGHT'; fit?: { width: number; height: number }; elk?: Record<string, string> } = {},
): Promise<LaidOutChart> {
  if (opts.direction) return layoutIn(chart, opts.direction, opts.elk);
  const fit = opts.fit ?? { width: 1100, height: 600 };
  const [down, right] = await Promise.all([layoutIn(chart, 'DOWN', opts.elk), layoutIn(chart, 'RIGHT', opts.elk)]);
  const scale = (c: LaidOutChart) => Math.min(fit.width / c.layout.width, fit.height / c.layout.height);
  return scale(right) > scale(down) * 1.05 ? right : down;
}

async function layoutIn(
  chart: Chart,
  direction: 'DOWN' | 'RIGHT',
  elkOptions: Record<string, string> = {},
): Promise<LaidOutChart> {
  elk ??= new ELK();
  const byId = new Map(chart.nodes.map((n) => [n.id, n]));
  const elkNodes = new Map<string, ElkNode>();
  const meta = new Map<string, Omit<Box, 'x' | 'y' | 'width' | 'height' | 'depth'>>();

  const build = (n: ChartNode): ElkNode => {
    const compound = n.children.length > 0;
    const label = n.key;
    const node: ElkNode = compound
      ? {
          id: n.id,
          children: [],
          edges: [],
          layoutOptions: { 'elk.padding': `[top=${HEADER_H + 8},left=18,bottom=18,right=18]` },
        }
      : { id: n.id, width: stateWidth(label), height: STATE_H };
    if (compound && n.type !== 'parallel') node.layoutOptions!['elk.direction'] = direction;
    elkNodes.set(n.id, node);
    meta.set(n.id, { id: n.id, kind: 'state', type: n.type, label });
    if (n.initial) {
      const init = `${n.id}.__initial`;
      node.children!.push({ id: init, width: 14, height: 14 });
      meta.set(init, { id: init, kind: 'initial', type: null, label: '' });
      node.edges!.push({ id: `${init}->`, sources: [init], targets: [n.initial] });
    }
    for (const cid of n.children) node.children!.push(build(byId.get(cid)!));
    return node;
  };
  const root = byId.get(chart.root)!;
  const graph: ElkNode = {
    id: chart.root,
    layoutOptions: {
      'elk.algorithm': 'layered',
      'elk.direction': direction,
      'elk.hierarchyHandling': 'INCLUDE_CHILDREN',
      'elk.edgeRouting': 'ORTHOGONAL',
      'elk.layered.spacing.nodeNodeBetweenLayers': '30',
      'elk.spacing.nodeNode': '22',
      'elk.layered.spacing.edgeNodeBetweenLayers': '14',
      'elk.layered.spacing.edgeEdgeBetweenLayers': '8',
      'elk.spacing.edgeEdge': '8',
      'elk.spacing.edgeNode': '18',
      'elk.spacing.edgeLabel': '6',
      'elk.layered.nodePlacement.strategy': 'NETWORK_SIMPLEX',
      'elk.layered.crossingMinimization.semiInteractive': 'false',
      'elk.layered.considerModelOrder.strategy': 'NODES_AND_EDGES',
      // Back edges are found from the definition's order (the initial state first), so the chart
      // reads from the initial state down rather than from wherever a cycle was cut.
      'elk.layered.cycleBreaking.strategy': 'MODEL_ORDER',
      'elk.edgeLabels.inline': 'false',
      'elk.padding': '[top=20,left=20,bottom=20,right=20]',
      ...elkOptions,
    },
    children: [],
    edges: [],
  };
  elkNodes.set(chart.root, graph);
  if (root.initial) {
    const init = `${root.id}.__initial`;
    graph.children!.push({ id: init, width: 14, height: 14 });
    meta.set(init, { id: init, kind: 'initial', type: null, label: '' });
    graph.edges!.push({ id: `${init}->`, sources: [init], targets: [root.initial] });
  }
  for (const cid of root.children) graph.children!.push(build(byId.get(cid)!));

  // Group transitions by drawn (source, target) pair.
  const groups = new Map<string, { source: string; target: string; edges: ChartEdge[] }>();
  const anyNodes = new Set<string>();
  for (const e of chart.edges) {
    for (const t of e.targets.length ? e.targets : [e.source]) {
      let source = e.source;
      // A transition of an ancestor into its own descendants applies in every child: it leaves from
      // an "any state" marker inside the ancestor.
      if (source === chart.root || (t !== source && isAncestor(byId, source, t))) {
        const any = `${source}.__any`;
        if (!anyNodes.has(source)) {
          anyNodes.add(source);
          const parent = elkNodes.get(source)!;
          parent.children!.push({ id: any, width: 96, height: 24 });
          meta.set(any, { id: any, kind: 'any', type: null, label: 'any state' });
        }
        source = any;
      }
      const key = `${source}->${t}`;
      let g = groups.get(key);
      if (!g) groups.set(key, (g = { source, target: t, edges: [] }));
      g.edges.push(e);
    }
  }
  const pathMeta = new Map<string, { source: string; target: string; lines: LabelLine[] }>();
  let n = 0;
  for (const g of groups.values()) {
    const id = `p${n++}`;
    const lines = g.edges.map((e) => {
      const l = edgeLabel(e);
      return { edge: e.id, ...l, detailLines: wrapGuard(l.detail) };
    });
    const width = Math.max(...lines.map(lineWidth));
    const edge: ElkExtendedEdge = {
      id,
      sources: [g.source],
      targets: [g.target],
      labels: [{ id: `${id}.label`, text: lines.map((l) => l.event).join('\n'), width, height: linesHeight(lines) }],
    };
    const realSource = g.source.endsWith('.__any') ? g.source.slice(0, -'.__any'.length) : g.source;
    const owner = g.source.endsWith('.__any') ? realSource : container(byId, realSource, g.target, chart.root);
    elkNodes.get(owner)!.edges!.push(edge);
    pathMeta.set(id, { source: g.source, target: g.target, lines });
  }

  const out = await elk.layout(graph);

  const boxes: Box[] = [];
  const paths: Path[] = [];
  // ELK gives coordinates relative to the parent node; edge coordinates are relative to the node
  // whose `edges` hold them.
  const walk = (node: ElkNode, ox: number, oy: number, depth: number) => {
    for (const c of node.children ?? []) {
      const m = meta.get(c.id);
      const x = ox + (c.x ?? 0);
      const y = oy + (c.y ?? 0);
      if (m) boxes.push({ ...m, x, y, width: c.width ?? 0, height: c.height ?? 0, depth });
      walk(c, x, y, depth + 1);
    }
    for (const e of (node.edges ?? []) as ElkExtendedEdge[]) {
      const pm = pathMeta.get(e.id);
      const sec = e.sections?.[0];
      const points = sec
        ? [sec.startPoint, ...(sec.bendPoints ?? []), sec.endPoint].map((p) => ({ x: ox + p.x, y: oy + p.y }))
        : [];
      if (!pm) {
        // The arrow from an initial dot.
        paths.push({
          id: e.id,
          source: e.sources[0]!,
          target: e.targets[0]!,
          edges: [],
          points,
          label: null,
          self: false,
        });
        continue;
      }
      const l = e.labels?.[0];
      paths.push({
        id: e.id,
        source: pm.source,
        target: pm.target,
        edges: pm.lines.map((x) => x.edge),
        points,
        label: l
          ? { x: ox + (l.x ?? 0), y: oy + (l.y ?? 0), width: l.width ?? 0, height: l.height ?? 0, lines: pm.lines }
          : null,
        self: pm.source === pm.target,
      });
    }
  };
  walk(out, 0, 0, 0);
  return { ...chart, layout: { width: Math.ceil(out.width ?? 0), height: Math.ceil(out.height ?? 0), boxes, paths } };
}
