// The inspector page's shared state, its address (#/actor/<id>?filters) and the colour of a state.

export const $ = (id) => document.getElementById(id);

const FINAL_OK = new Set(['done', 'approved', 'modified']);
const FINAL_BAD = new Set(['denied', 'rejected', 'expired', 'compensated', 'failed', 'stopped']);
const WAITING = new Set([
  'awaitingReview',
  'awaitingOperator',
  'queued',
  'perceiveBackoff',
  'planBackoff',
  'actBackoff',
  'compensateBackoff',
]);

export const state = {
  session: null,
  filter: { kind: '', model: '', state: '', status: 'live', node: '', q: '' },
  rows: new Map(),
  total: 0,
  selected: null, // id
  actor: null, // row of the selected actor
  replay: null,
  chart: null, // renderer
  chartKey: '',
  step: null, // index into replay.steps, or null for live
  live: null, // { value, state, status, context, transitions, event } from the stream, newer than the journal
  // Following an agent into its case moves the view mid-inspection: off unless asked for.
  follow: false,
  /** Ids in the order last shown: kept while the pointer or focus is on the list, so rows do not move under it. */
  order: [],
  socket: null,
  retry: 0,
};

export function stClass(s, status) {
  const leaf = String(s || '')
    .split(/[.,]/)
    .pop();
  if (status === 'done' || FINAL_OK.has(leaf) || FINAL_BAD.has(leaf)) return FINAL_BAD.has(leaf) ? 'st-bad' : 'st-ok';
  if (WAITING.has(leaf)) return 'st-wait';
  return 'st-run';
}

export function readHash() {
  const raw = window.location.hash.slice(1) || '/';
  const [path, query = ''] = raw.split('?');
  const sp = new URLSearchParams(query);
  for (const k of Object.keys(state.filter)) state.filter[k] = sp.get(k) ?? (k === 'status' ? 'live' : '');
  const m = /^\/actor\/(.+)$/.exec(path);
  return m ? decodeURIComponent(m[1]) : null;
}

export function writeHash(id = state.selected) {
  const sp = new URLSearchParams();
  for (const [k, v] of Object.entries(state.filter)) if (v && !(k === 'status' && v === 'live')) sp.set(k, v);
  const q = sp.toString();
  const hash = `#${id ? `/actor/${encodeURIComponent(id)}` : '/'}${q ? `?${q}` : ''}`;
  if (window.location.hash !== hash) history.replaceState(null, '', hash);
}

export function go(id) {
  if (id === state.selected) return;
  const sp = new URLSearchParams(window.location.hash.split('?')[1] || '');
  window.location.hash = `#/actor/${encodeURIComponent(id)}${sp.toString() ? `?${sp}` : ''}`;
}
