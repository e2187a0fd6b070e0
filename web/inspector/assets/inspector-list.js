// The inspector's actor list: filters, the server's page of actors, live rows from the stream.
import { api } from '/assets/api.js';
import { debounce, fmtTime, h, replace, setServerTime } from '/assets/dom.js';
import { toast } from '/assets/ui.js';
import { $, state, stClass, writeHash, go } from './inspector-state.js';

export function syncFilterInputs() {
  $('f-q').value = state.filter.q;
  $('f-kind').value = state.filter.kind;
  $('f-status').value = state.filter.status;
  for (const k of ['model', 'state', 'node']) $(`f-${k}`).value = state.filter[k];
}

function fillSelect(sel, label, counts, current) {
  const keys = Object.keys(counts).sort();
  if (current && !keys.includes(current)) keys.unshift(current);
  replace(
    sel,
    h('option', { value: '' }, label),
    keys.map((k) => h('option', { value: k }, `${k}${counts[k] !== undefined ? ` (${counts[k]})` : ''}`)),
  );
  sel.value = current;
}

export async function loadList() {
  const sp = new URLSearchParams();
  for (const [k, v] of Object.entries(state.filter)) if (v) sp.set(k, v);
  sp.set('limit', '300');
  const res = await api(`/api/inspect/actors?${sp}`);
  setServerTime(res.serverTime);
  state.rows = new Map(res.rows.map((r) => [r.id, r]));
  state.total = res.total;
  fillSelect($('f-model'), 'All models', res.facets.models, state.filter.model);
  fillSelect($('f-state'), 'All states', res.facets.states, state.filter.state);
  fillSelect($('f-node'), 'All nodes', res.facets.nodes, state.filter.node);
  renderList();
}

function matches(r) {
  const f = state.filter;
  if (f.kind && r.kind !== f.kind) return false;
  if (f.model && r.model !== f.model) return false;
  if (f.state && r.state !== f.state) return false;
  if (f.node && r.node !== f.node) return false;
  if (f.status === 'live' && r.status !== 'active') return false;
  if (f.status === 'finished' && r.status === 'active') return false;
  if (f.q && !r.id.toLowerCase().includes(f.q.toLowerCase())) return false;
  return true;
}

export function listHeld() {
  const list = $('actors');
  return list.matches(':hover') || list.contains(document.activeElement);
}

export function renderList() {
  const sorted = [...state.rows.values()].sort((a, b) => b.updatedAt - a.updatedAt || (a.id < b.id ? -1 : 1));
  let rows;
  if (listHeld() && state.order.length) {
    // Under the pointer: same order as shown, rows updated in place, new ones at the end.
    const shown = new Set(state.order);
    rows = [
      ...state.order.filter((id) => state.rows.has(id)).map((id) => state.rows.get(id)),
      ...sorted.filter((r) => !shown.has(r.id)),
    ].slice(0, 300);
    state.resortPending = true;
  } else {
    rows = sorted.slice(0, 300);
    state.resortPending = false;
  }
  state.order = rows.map((r) => r.id);
  $('count').textContent = `${state.total} actor${state.total === 1 ? '' : 's'}`;
  $('count-note').textContent = state.total > rows.length ? `newest ${rows.length}` : '';
  replace(
    $('actors'),
    rows.map((r) =>
      h(
        'li',
        h(
          `button.actor-item${r.id === state.selected ? '.active' : ''}`,
          { type: 'button', dataset: { id: r.id, kind: r.kind, state: r.state }, onclick: () => go(r.id) },
          h('span.actor-id', { title: r.id }, r.id),
          h(`span.st.${stClass(r.state, r.status)}`, r.state),
          h('span.actor-meta', h(`span.kind.kind-${r.kind}`, r.kind), r.model, h('span', '·'), fmtTime(r.updatedAt)),
        ),
      ),
    ),
  );
}

const refreshList = debounce(() => loadList().catch((e) => toast(e.message, 'error')), 250);

export function onRows(rows) {
  let changed = false;
  for (const r of rows) {
    const had = state.rows.has(r.id);
    if (matches(r)) {
      if (!had) state.total++;
      state.rows.set(r.id, r);
      changed = true;
    } else if (had) {
      state.rows.delete(r.id);
      state.total = Math.max(0, state.total - 1);
      changed = true;
    }
    if (state.actor && r.id === state.actor.id) {
      state.actor = { ...state.actor, ...r, cases: r.cases.length ? r.cases : state.actor.cases };
    }
    // Follow an agent into the case it opened.
    if (
      state.follow &&
      state.actor &&
      state.actor.kind === 'agent' &&
      r.kind === 'case' &&
      r.episodeId === state.actor.id &&
      r.seq === 0 &&
      r.status === 'active'
    ) {
      toast(`Following ${state.actor.id} into ${r.id}`, 'info', { title: 'Case opened' });
      go(r.id);
    }
  }
  if (changed) renderList();
}

export function bindFilters() {
  const set = (k, v) => {
    state.filter[k] = v;
    writeHash();
    refreshList();
  };
  $('f-q').addEventListener(
    'input',
    debounce((e) => set('q', e.target.value.trim()), 200),
  );
  for (const k of ['kind', 'model', 'state', 'status', 'node'])
    $(`f-${k}`).addEventListener('change', (e) => set(k, e.target.value));
}
