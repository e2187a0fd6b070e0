/** Final states that end in refusal or failure (as the inspector's state chips colour them). */
const FINAL_BAD = new Set(['denied', 'rejected', 'expired', 'compensated', 'failed', 'stopped']);
// Draws a laid-out statechart (from /api/inspect/charts/...) as SVG: compound and parallel states as
// boxes holding their children, transitions as orthogonal paths with their event and guard. The
// layout is elkjs's, computed on the server; this module only draws, lights the active states and
// animates the transitions taken. No innerHTML: every label is a text node.

const NS = 'http://www.w3.org/2000/svg';

function el(name, attrs = {}, ...children) {
  const e = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.setAttribute('class', v);
    else e.setAttribute(k, String(v));
  }
  for (const c of children.flat())
    if (c !== null && c !== undefined && c !== false)
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

/** A path through orthogonal points with rounded corners. */
function roundedPath(points, r = 6) {
  if (points.length === 0) return '';
  let d = `M${points[0].x},${points[0].y}`;
  for (let i = 1; i < points.length; i++) {
    const p = points[i];
    const prev = points[i - 1];
    const next = points[i + 1];
    if (!next) {
      d += ` L${p.x},${p.y}`;
      break;
    }
    const inLen = Math.hypot(p.x - prev.x, p.y - prev.y);
    const outLen = Math.hypot(next.x - p.x, next.y - p.y);
    const rr = Math.min(r, inLen / 2, outLen / 2);
    const ax = p.x - ((p.x - prev.x) / (inLen || 1)) * rr;
    const ay = p.y - ((p.y - prev.y) / (inLen || 1)) * rr;
    const bx = p.x + ((next.x - p.x) / (outLen || 1)) * rr;
    const by = p.y + ((next.y - p.y) / (outLen || 1)) * rr;
    d += ` L${ax},${ay} Q${p.x},${p.y} ${bx},${by}`;
  }
  return d;
}

/** A self-transition: a loop out of the side of its state where the layout put it, large enough to see. */
function selfLoop(p, box) {
  if (!box || p.points.length < 2) return roundedPath(p.points);
  const s = p.points[0];
  const e = p.points[p.points.length - 1];
  const cx = box.x + box.width / 2;
  const cy = box.y + box.height / 2;
  const mx = (s.x + e.x) / 2 - cx;
  const my = (s.y + e.y) / 2 - cy;
  // Which side: the one the loop's ends lie on, relative to the box's proportions.
  const horizontal = Math.abs(mx) / box.width > Math.abs(my) / box.height;
  const out = 17;
  if (horizontal) {
    const x = mx < 0 ? box.x : box.x + box.width;
    const dir = mx < 0 ? -1 : 1;
    const y1 = cy - 8;
    const y2 = cy + 8;
    return `M${x},${y1} C${x + dir * out},${y1 - 10} ${x + dir * out},${y2 + 10} ${x + dir * 2},${y2}`;
  }
  const y = my < 0 ? box.y : box.y + box.height;
  const dir = my < 0 ? -1 : 1;
  const x1 = cx - 12;
  const x2 = cx + 12;
  return `M${x1},${y} C${x1 - 10},${y + dir * out} ${x2 + 10},${y + dir * out} ${x2},${y + dir * 2}`;
}

/**
 * Renders `chart` into `host` (an element). Returns a controller:
 * - `light(stateIds)`: lights these states (and their ancestors as "active region");
 * - `take(edgeIds)`: animates the paths of these transitions and their label lines;
 * - `fit()`, `zoom(f)`: view.
 */
export function renderChart(host, chart) {
  const { layout } = chart;
  const W = Math.max(layout.width, 10);
  const H = Math.max(layout.height, 10);
  const svg = el('svg', {
    class: 'chart-svg',
    viewBox: `0 0 ${W} ${H}`,
    role: 'img',
    'aria-label': `Statechart of ${chart.id}`,
    'data-chart': chart.id,
  });
  const defs = el(
    'defs',
    {},
    el(
      'marker',
      {
        id: `arrow-${chart.id}`,
        viewBox: '0 0 10 10',
        refX: '9',
        refY: '5',
        markerWidth: '9',
        markerHeight: '9',
        markerUnits: 'userSpaceOnUse',
        orient: 'auto-start-reverse',
      },
      el('path', { d: 'M0,0 L10,5 L0,10 z', class: 'arrow-head' }),
    ),
    el(
      'marker',
      {
        id: `arrow-hot-${chart.id}`,
        viewBox: '0 0 10 10',
        refX: '9',
        refY: '5',
        markerWidth: '9',
        markerHeight: '9',
        markerUnits: 'userSpaceOnUse',
        orient: 'auto-start-reverse',
      },
      el('path', { d: 'M0,0 L10,5 L0,10 z', class: 'arrow-head-hot' }),
    ),
  );
  svg.append(defs);
  const nodesById = new Map(chart.nodes.map((n) => [n.id, n]));
  const gBoxes = el('g', { class: 'boxes' });
  const gPaths = el('g', { class: 'paths' });
  const gLabels = el('g', { class: 'labels' });
  const boxEls = new Map();
  const pathEls = new Map();
  const lineEls = new Map();
  const pathsByEdge = new Map();

  // Compound boxes first (deeper ones later), so children draw on top.
  const boxes = [...layout.boxes].sort((a, b) => a.depth - b.depth);
  for (const b of boxes) {
    const node = nodesById.get(b.id);
    if (b.kind === 'initial') {
      gBoxes.append(
        el('circle', { class: 'initial-dot', cx: b.x + b.width / 2, cy: b.y + b.height / 2, r: b.width / 2 - 1 }),
      );
      continue;
    }
    if (b.kind === 'any') {
      const g = el(
        'g',
        { class: 'any-state' },
        el('rect', { x: b.x, y: b.y, width: b.width, height: b.height, rx: b.height / 2 }),
        el('text', { x: b.x + b.width / 2, y: b.y + b.height / 2 + 4, 'text-anchor': 'middle' }, 'any state'),
      );
      gBoxes.append(g);
      continue;
    }
    const compound = node && node.children.length > 0;
    // A final state that means "no" (rejected, denied, expired, failed…) is drawn red, as its chip is.
    const bad = b.type === 'final' && FINAL_BAD.has(node ? node.key : b.label);
    const cls = ['state', `state-${b.type}`, compound ? 'state-compound' : 'state-leaf', bad ? 'state-final-bad' : '']
      .filter(Boolean)
      .join(' ');
    const g = el('g', { class: cls, 'data-state': b.id, 'data-key': node ? node.key : b.label });
    g.append(
      el(
        'title',
        {},
        node ? `${node.key} (${node.type})${node.entry.length ? `\nentry: ${node.entry.join(', ')}` : ''}` : b.label,
      ),
    );
    g.append(el('rect', { class: 'state-box', x: b.x, y: b.y, width: b.width, height: b.height, rx: 8 }));
    if (b.type === 'final')
      g.append(
        el('rect', {
          class: 'state-final-ring',
          x: b.x + 3.5,
          y: b.y + 3.5,
          width: b.width - 7,
          height: b.height - 7,
          rx: 6,
        }),
      );
    if (compound) {
      g.append(
        el(
          'text',
          { class: 'state-title', x: b.x + 12, y: b.y + 19 },
          `${b.label}${b.type === 'parallel' ? '  ∥' : ''}`,
        ),
      );
      g.append(el('line', { class: 'state-rule', x1: b.x, x2: b.x + b.width, y1: b.y + 28, y2: b.y + 28 }));
    } else {
      g.append(
        el(
          'text',
          { class: 'state-name', x: b.x + b.width / 2, y: b.y + b.height / 2 + 4, 'text-anchor': 'middle' },
          b.label,
        ),
      );
    }
    boxEls.set(b.id, g);
    gBoxes.append(g);
  }

  const boxById = new Map(layout.boxes.map((b) => [b.id, b]));
  for (const p of layout.paths) {
    const initial = p.edges.length === 0;
    const d = p.self ? selfLoop(p, boxById.get(p.source)) : roundedPath(p.points);
    const path = el('path', {
      class: initial ? 'edge edge-initial' : 'edge',
      d,
      'marker-end': `url(#arrow-${chart.id})`,
      'data-path': p.id,
    });
    gPaths.append(path);
    pathEls.set(p.id, path);
    for (const e of p.edges) {
      if (!pathsByEdge.has(e)) pathsByEdge.set(e, []);
      pathsByEdge.get(e).push(p.id);
    }
    if (!p.label) continue;
    const l = p.label;
    const lg = el('g', { class: 'edge-label', 'data-path': p.id });
    lg.append(
      el('rect', { class: 'label-bg', x: l.x - 3, y: l.y - 1, width: l.width + 6, height: l.height + 2, rx: 3 }),
    );
    let y = l.y + 11;
    for (const line of l.lines) {
      const t = el('text', { class: 'label-line', x: l.x, y, 'data-edge': line.edge });
      t.append(el('tspan', { class: 'label-event' }, line.event));
      for (const d of line.detailLines) t.append(el('tspan', { class: 'label-guard', x: l.x + 8, dy: 12 }, d));
      lg.append(t);
      lineEls.set(line.edge, t);
      y += 14 + line.detailLines.length * 12;
    }
    gLabels.append(lg);
  }
  svg.append(gBoxes, gPaths, gLabels);
  host.append(svg);

  // View: the chart fits the host; wheel zooms, dragging pans.
  let view = { x: 0, y: 0, w: W, h: H };
  const apply = () => svg.setAttribute('viewBox', `${view.x} ${view.y} ${view.w} ${view.h}`);
  const zoom = (f, cx = view.x + view.w / 2, cy = view.y + view.h / 2) => {
    const w = Math.min(W * 1.2, Math.max(W / 8, view.w * f));
    const h = (w / view.w) * view.h;
    view = { x: cx - ((cx - view.x) * w) / view.w, y: cy - ((cy - view.y) * h) / view.h, w, h };
    apply();
  };
  svg.addEventListener(
    'wheel',
    (e) => {
      if (!e.ctrlKey && !e.metaKey) return;
      e.preventDefault();
      const r = svg.getBoundingClientRect();
      const cx = view.x + ((e.clientX - r.left) / r.width) * view.w;
      const cy = view.y + ((e.clientY - r.top) / r.height) * view.h;
      zoom(e.deltaY > 0 ? 1.15 : 1 / 1.15, cx, cy);
    },
    { passive: false },
  );
  let drag = null;
  svg.addEventListener('pointerdown', (e) => {
    drag = { x: e.clientX, y: e.clientY, v: { ...view } };
    svg.setPointerCapture(e.pointerId);
  });
  svg.addEventListener('pointermove', (e) => {
    if (!drag) return;
    const r = svg.getBoundingClientRect();
    const s = Math.max(view.w / r.width, view.h / r.height);
    view = { ...drag.v, x: drag.v.x - (e.clientX - drag.x) * s, y: drag.v.y - (e.clientY - drag.y) * s };
    apply();
  });
  svg.addEventListener('pointerup', () => (drag = null));

  const ancestors = (id) => {
    const out = [];
    for (let n = nodesById.get(id); n && n.parent; n = nodesById.get(n.parent)) out.push(n.parent);
    return out;
  };
  let lit = [];
  let hot = [];
  let hotTimer = null;

  return {
    svg,
    states: chart.nodes.filter((n) => n.id !== chart.root).map((n) => n.id),
    /** Lights the active leaf states (ids) and marks their ancestors. */
    light(ids) {
      for (const g of lit) g.classList.remove('is-active', 'is-active-parent');
      lit = [];
      for (const id of ids) {
        const g = boxEls.get(id);
        if (g) {
          g.classList.add('is-active');
          lit.push(g);
        }
        for (const a of ancestors(id)) {
          const ag = boxEls.get(a);
          if (ag) {
            ag.classList.add('is-active-parent');
            lit.push(ag);
          }
        }
      }
      svg.dataset.active = ids.map((id) => nodesById.get(id)?.key ?? id).join(',');
    },
    /** Marks the transitions taken (animated for a moment when `animate`). */
    take(edgeIds, animate = true) {
      for (const x of hot) x.classList.remove('is-taken', 'is-taken-anim');
      hot = [];
      clearTimeout(hotTimer);
      for (const e of edgeIds) {
        for (const pid of pathsByEdge.get(e) ?? []) {
          const p = pathEls.get(pid);
          if (!p) continue;
          p.classList.add('is-taken');
          p.setAttribute('marker-end', `url(#arrow-hot-${chart.id})`);
          if (animate) {
            // Restart the animation: remove, force a reflow, add.
            p.classList.remove('is-taken-anim');
            void p.getBoundingClientRect();
            p.classList.add('is-taken-anim');
          }
          hot.push(p);
        }
        const line = lineEls.get(e);
        if (line) {
          line.classList.add('is-taken');
          hot.push(line);
        }
      }
      for (const p of pathEls.values())
        if (!p.classList.contains('is-taken')) p.setAttribute('marker-end', `url(#arrow-${chart.id})`);
      svg.dataset.taken = edgeIds.join(' ');
    },
    fit() {
      view = { x: 0, y: 0, w: W, h: H };
      apply();
    },
    zoom,
    size: { width: W, height: H },
  };
}

/** Leaf state ids of a state value (`{a: 'b'}` under machine `m` → `m.a.b`). */
export function leafIds(machineId, value) {
  const out = [];
  const walk = (prefix, v) => {
    if (typeof v === 'string') out.push(`${prefix}.${v}`);
    else if (v && typeof v === 'object')
      for (const [k, sub] of Object.entries(v)) {
        if (sub === undefined || sub === null || (typeof sub === 'object' && Object.keys(sub).length === 0))
          out.push(`${prefix}.${k}`);
        else walk(`${prefix}.${k}`, sub);
      }
  };
  walk(machineId, value);
  return out;
}

/** Leaf state ids from a journal state string (`a.b,c` → `m.a.b`, `m.c`). */
export function idsFromStateString(machineId, state) {
  if (!state) return [];
  return state.split(',').map((s) => `${machineId}.${s}`);
}
