// The Handoff inspector: live actors of the node, one actor's statechart drawn from its machine
// definition with the active state lit and the last transition animated, its event log with
// payloads, its context with a diff per step, and a time-travel slider over its journal.
// Read-only: nothing on this page changes an actor. Data arrives as JSON and goes in as text nodes.

import { api, onSessionExpired, setCsrf } from '/assets/api.js';
import { debounce, fmtTime, h, initials, replace, setServerTime } from '/assets/dom.js';
import { toast } from '/assets/ui.js';
import { idsFromStateString, leafIds, renderChart } from './chart.js';

const $ = (id) => document.getElementById(id);
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

const state = {
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
const charts = new Map();

onSessionExpired(() => window.location.assign('/login?expired=1&next=/inspector'));

function stClass(s, status) {
  const leaf = String(s || '')
    .split(/[.,]/)
    .pop();
  if (status === 'done' || FINAL_OK.has(leaf) || FINAL_BAD.has(leaf)) return FINAL_BAD.has(leaf) ? 'st-bad' : 'st-ok';
  if (WAITING.has(leaf)) return 'st-wait';
  return 'st-run';
}

function setLive(on, text) {
  const el = $('live');
  el.className = `live ${on ? 'live-on' : 'live-off'}`;
  el.textContent = text || (on ? 'Live' : 'Reconnecting…');
}

// ------------------------------------------------------------------------------------------------
// Routing: #/actor/<id>?kind=...&model=...
// ------------------------------------------------------------------------------------------------

function readHash() {
  const raw = window.location.hash.slice(1) || '/';
  const [path, query = ''] = raw.split('?');
  const sp = new URLSearchParams(query);
  for (const k of Object.keys(state.filter)) state.filter[k] = sp.get(k) ?? (k === 'status' ? 'live' : '');
  const m = /^\/actor\/(.+)$/.exec(path);
  return m ? decodeURIComponent(m[1]) : null;
}

function writeHash(id = state.selected) {
  const sp = new URLSearchParams();
  for (const [k, v] of Object.entries(state.filter)) if (v && !(k === 'status' && v === 'live')) sp.set(k, v);
  const q = sp.toString();
  const hash = `#${id ? `/actor/${encodeURIComponent(id)}` : '/'}${q ? `?${q}` : ''}`;
  if (window.location.hash !== hash) history.replaceState(null, '', hash);
}

function go(id) {
  if (id === state.selected) return;
  const sp = new URLSearchParams(window.location.hash.split('?')[1] || '');
  window.location.hash = `#/actor/${encodeURIComponent(id)}${sp.toString() ? `?${sp}` : ''}`;
}

// ------------------------------------------------------------------------------------------------
// Actor list
// ------------------------------------------------------------------------------------------------

function syncFilterInputs() {
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

async function loadList() {
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

function listHeld() {
  const list = $('actors');
  return list.matches(':hover') || list.contains(document.activeElement);
}

function renderList() {
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

function onRows(rows) {
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

// ------------------------------------------------------------------------------------------------
// One actor
// ------------------------------------------------------------------------------------------------

async function chartFor(model, kind) {
  const key = `${model}/${kind}`;
  if (!charts.has(key)) charts.set(key, api(`/api/inspect/charts/${encodeURIComponent(model)}/${kind}`));
  return charts.get(key);
}

async function openActor(id) {
  state.selected = id;
  state.step = null;
  state.live = null;
  for (const b of document.querySelectorAll('.actor-item')) b.classList.toggle('active', b.dataset.id === id);
  let res;
  try {
    res = await api(`/api/inspect/actors/${encodeURIComponent(id)}`);
  } catch (err) {
    replace(
      $('main'),
      h(
        'div.insp-empty',
        h('h1', err.status === 404 ? 'No such actor' : 'The actor cannot be shown'),
        h('p', err.message),
      ),
    );
    return;
  }
  if (state.selected !== id) return;
  state.actor = res.actor;
  state.replay = res.replay;
  const chart = await chartFor(res.actor.model, res.actor.kind);
  if (state.selected !== id) return;
  renderActor(chart);
  watch();
}

async function refreshActor() {
  const id = state.selected;
  if (!id) return;
  const res = await api(`/api/inspect/actors/${encodeURIComponent(id)}`);
  if (state.selected !== id) return;
  const atEnd = state.step === null;
  state.actor = res.actor;
  state.replay = res.replay;
  // The journal caught up with what the stream showed.
  if (state.live && state.live.seqHint !== undefined && res.replay.steps.length - 1 >= state.live.seqHint)
    state.live = null;
  renderLinks();
  renderLog();
  renderTravel();
  if (atEnd) showStep(null, false);
}
const refreshActorSoon = debounce(() => refreshActor().catch(() => undefined), 120);

function watch() {
  if (!state.socket || state.socket.readyState !== WebSocket.OPEN || !state.actor) return;
  const a = state.actor;
  const ids = [a.id, ...(a.episodeId ? [a.episodeId] : []), ...a.cases];
  state.socket.send(JSON.stringify({ type: 'watch', ids }));
}

function renderActor(chart) {
  const a = state.actor;
  const main = $('main');
  const hostHeight = Math.round(
    Math.min(900, Math.max(380, (main.clientWidth - 40) * (chart.layout.height / chart.layout.width))),
  );
  const host = h('div.chart-host#chart-host');
  host.style.setProperty('height', `${hostHeight}px`);
  replace(
    main,
    h(
      'div.actor-head',
      h(
        'div',
        h(
          'div.actor-title',
          h(`span.kind.kind-${a.kind}`, a.kind),
          h('h1#actor-id', a.id),
          h(`span.st#actor-state`, a.state),
        ),
        h('div.actor-sub#actor-sub'),
      ),
      h('div.links#links'),
    ),
    h(
      'section.card.chart-card',
      h(
        'div.card-head',
        h('h2', `Statechart · ${chart.id}`),
        h(
          'div.chart-tools',
          h(
            'span.chart-legend',
            h('span', h('span.legend-swatch.legend-active'), 'active state'),
            h('span', h('span.legend-swatch.legend-taken'), 'last transition'),
          ),
          h(
            'button.btn.btn-secondary.btn-sm',
            { type: 'button', onclick: () => state.chart && state.chart.zoom(1 / 1.25) },
            '+',
          ),
          h(
            'button.btn.btn-secondary.btn-sm',
            { type: 'button', onclick: () => state.chart && state.chart.zoom(1.25) },
            '−',
          ),
          h(
            'button.btn.btn-secondary.btn-sm',
            { type: 'button', onclick: () => state.chart && state.chart.fit() },
            'Fit',
          ),
        ),
      ),
      h(
        'div.travel',
        h('button.btn.btn-secondary.btn-sm#travel-live', { type: 'button', onclick: () => showStep(null) }, 'Live'),
        h('input#travel', {
          type: 'range',
          min: '0',
          max: '0',
          step: '1',
          value: '0',
          'aria-label': 'Time travel: step of the journal',
          oninput: (e) => showStep(Number(e.target.value)),
        }),
        h('span.travel-label#travel-label'),
      ),
      h('div.card-body', host),
    ),
    h(
      'div.insp-grid',
      h('section.card', h('div.card-head', h('h2', 'Event log'), h('span.faint.small#log-note')), h('ul.log#log')),
      h('section.card', h('div.card-head', h('h2', 'Context'), h('span.faint.small#ctx-note')), h('div.card-body#ctx')),
    ),
  );
  state.chart = renderChart(host, chart);
  state.chartKey = chart.id;
  renderLinks();
  renderLog();
  renderTravel();
  showStep(null, false);
}

function renderLinks() {
  const a = state.actor;
  if (!a || !$('links')) return;
  const last = state.replay.steps.at(-1);
  replace(
    $('actor-sub'),
    h('span', `model ${a.model}`),
    h('span', `node ${a.node}`),
    h('span', `version ${a.seq}`),
    h('span', a.status === 'active' ? 'live' : `finished ${last ? fmtTime(last.at) : ''}`),
  );
  const links = [];
  if (a.episodeId)
    links.push(
      h(
        'button.link-btn',
        { type: 'button', dataset: { link: a.episodeId }, onclick: () => go(a.episodeId) },
        h('span.arrow', '↰'),
        'episode ',
        h('span.mono', a.episodeId),
      ),
    );
  for (const c of a.cases)
    links.push(
      h(
        'button.link-btn',
        { type: 'button', dataset: { link: c }, onclick: () => go(c) },
        h('span.arrow', '↳'),
        'case ',
        h('span.mono', c),
      ),
    );
  const follow = h('input#follow', {
    type: 'checkbox',
    checked: state.follow,
    onchange: (e) => (state.follow = e.target.checked),
  });
  replace($('links'), links, h('label.follow', follow, 'Follow agent ↔ case'));
}

function renderTravel() {
  const r = $('travel');
  if (!r) return;
  const n = state.replay.steps.length;
  r.max = String(Math.max(0, n - 1));
  r.disabled = n <= 1;
  if (state.step === null) r.value = r.max;
}

function renderLog() {
  const steps = state.replay.steps;
  const list = $('log');
  if (!list) return;
  replace(
    list,
    steps.map((s, i) =>
      h(
        `li.log-item${(state.step ?? steps.length - 1) === i ? '.selected' : ''}`,
        { dataset: { seq: String(s.seq), i: String(i) } },
        h(
          'button.log-row',
          {
            type: 'button',
            onclick: () => showStep(i === steps.length - 1 && state.actor.status === 'active' ? null : i),
          },
          h('span.log-seq', `#${s.seq}`),
          h('span', h('span.log-event', s.event.type), h('span.log-state', `  → ${s.state}`)),
          h('span.log-time', fmtTime(s.at)),
        ),
        h('details.payload', h('summary', 'payload'), jsonBlock(s.event)),
      ),
    ),
  );
  $('log-note').textContent =
    `${steps.length} step${steps.length === 1 ? '' : 's'} from the journal${state.replay.exact ? '' : ' · replay partial'}`;
}

function jsonBlock(value, big = false) {
  const text = JSON.stringify(value, null, 2) ?? 'null';
  const pre = h(`pre.json${big ? '.json-big' : ''}`);
  // Redacted values stand out; everything stays a text node.
  const parts = text.split('"[REDACTED]"');
  parts.forEach((p, i) => {
    pre.append(document.createTextNode(p));
    if (i < parts.length - 1) pre.append(h('span.redacted', '"[REDACTED]"'));
  });
  return pre;
}

function fmtVal(v) {
  if (v === undefined) return '';
  const s = JSON.stringify(v);
  return s && s.length > 90 ? `${s.slice(0, 87)}…` : s;
}

/** Shows step `i` of the journal (the past), or the live state (`null`). */
function showStep(i, animate = true) {
  const steps = state.replay.steps;
  if (!state.chart || steps.length === 0) return;
  const last = steps.length - 1;
  state.step = i === null || i >= last ? null : Math.max(0, i);
  const idx = state.step ?? last;
  const s = steps[idx];
  const live = state.step === null ? state.live : null;
  const stateStr = live ? live.state : s.state;
  const value = live ? live.value : s.value;
  state.chart.light(value ? leafIds(state.chartKey, value) : idsFromStateString(state.chartKey, stateStr));
  state.chart.take(live ? live.transitions.map((t) => t.edge) : s.transitions.map((t) => t.edge), animate);
  const stEl = $('actor-state');
  stEl.textContent = stateStr;
  stEl.className = `st ${stClass(stateStr, live ? live.status : idx === last ? state.actor.status : 'active')}`;
  const r = $('travel');
  r.value = String(idx);
  const lbl = $('travel-label');
  replace(
    lbl,
    state.step === null ? h('strong', 'Live') : h('span.travel-past', 'Past'),
    ` · step ${idx + 1} of ${steps.length} · `,
    h('strong', live ? live.event : s.event.type),
    ` · ${fmtTime(live ? live.at : s.at)}`,
    s.diverged && !live ? h('span.diverged', ' · replay diverged') : null,
  );
  $('travel-live').disabled = state.step === null;
  document.body.dataset.step = String(idx);
  document.body.dataset.mode = state.step === null ? 'live' : 'past';
  for (const li of document.querySelectorAll('.log-item'))
    li.classList.toggle('selected', Number(li.dataset.i) === idx);
  renderContext(s, live);
}

function renderContext(s, live) {
  const ctx = live && live.context !== undefined ? live.context : s.context;
  const diff = live ? null : s.diff;
  const host = $('ctx');
  if (!host) return;
  $('ctx-note').textContent = live
    ? 'live, from the inspection stream'
    : `after step ${s.seq} · sensitive fields redacted`;
  replace(
    host,
    diff
      ? h(
          'div',
          h('div.subsection-title', diff.length ? `Changed in this step (${diff.length})` : 'No change in this step'),
          h(
            'ul.diff-list',
            diff
              .slice(0, 60)
              .map((d) =>
                h(
                  `li.diff-row.diff-${d.op}`,
                  { dataset: { path: d.path } },
                  h('span.diff-op', d.op === 'add' ? '+' : d.op === 'remove' ? '−' : '~'),
                  h('span.diff-path', d.path || '(context)'),
                  h(
                    'span.diff-val',
                    d.op === 'change'
                      ? [h('del', fmtVal(d.before)), ' → ', h('ins', fmtVal(d.after))]
                      : d.op === 'add'
                        ? h('ins', fmtVal(d.after))
                        : h('del', fmtVal(d.before)),
                  ),
                ),
              ),
          ),
        )
      : null,
    h('div.subsection-title', 'Context'),
    ctx === null ? h('p.muted', state.replay.note || 'not available for this step') : jsonBlock(ctx, true),
  );
}

// ------------------------------------------------------------------------------------------------
// Live
// ------------------------------------------------------------------------------------------------

function onRecord(r) {
  if (!state.actor || r.id !== state.actor.id || !state.chart) return;
  if (r.type !== 'snapshot') return;
  state.live = {
    value: r.value,
    state: r.state,
    status: r.status,
    context: r.context,
    transitions: r.transitions || [],
    event: r.event ? r.event.type : '',
    at: r.at,
    seqHint: state.replay.steps.length,
  };
  if (state.step === null) showStep(null, true);
}

function onNotice(n) {
  if (!state.actor) return;
  if (n.id === state.actor.id) {
    refreshActorSoon();
    // Follow a decided case back to its episode.
    if (state.follow && state.actor.kind === 'case' && n.status === 'done' && state.actor.episodeId) {
      const back = state.actor.episodeId;
      setTimeout(() => {
        if (state.follow && state.selected === n.id) go(back);
      }, 1500);
    }
  }
}

function connect() {
  const url = `${window.location.protocol === 'https:' ? 'wss' : 'ws'}://${window.location.host}/inspector/ws`;
  const ws = new WebSocket(url);
  state.socket = ws;
  ws.addEventListener('open', () => {
    state.retry = 0;
    setLive(true);
    watch();
  });
  ws.addEventListener('message', (e) => {
    let msg;
    try {
      msg = JSON.parse(e.data);
    } catch {
      return;
    }
    if (msg.type === 'hello') {
      setServerTime(msg.serverTime);
      if (msg.stats) showStats(msg.stats);
    } else if (msg.type === 'rows') onRows(msg.rows);
    else if (msg.type === 'record') onRecord(msg.record);
    else if (msg.type === 'notice') onNotice(msg.notice);
    else if (msg.type === 'stats') showStats(msg.stats);
    else if (msg.type === 'session') window.location.assign('/login?expired=1&next=/inspector');
  });
  ws.addEventListener('close', (e) => {
    setLive(false);
    if (e.code === 4401) return window.location.assign('/login?expired=1&next=/inspector');
    state.retry++;
    setTimeout(connect, Math.min(10_000, 500 * 2 ** Math.min(state.retry, 5)));
  });
}

function showStats(s) {
  $('stats').textContent =
    `stream: ${s.published.toLocaleString('en-US')} sent · ${s.dropped.toLocaleString('en-US')} sampled out`;
  $('stats').title =
    `Inspection records on node ${s.node}: recorded ${s.recorded}, published ${s.published}, dropped under the budget ${s.dropped}; ${s.workMs} ms of work; ${s.focused} actors in full detail`;
}

// ------------------------------------------------------------------------------------------------
// Boot
// ------------------------------------------------------------------------------------------------

function renderUser(s) {
  replace(
    $('user'),
    h('span.avatar', { 'aria-hidden': 'true' }, initials(s.reviewer.name)),
    h('span.user-text', h('span.user-name', s.reviewer.name), h('span.user-roles', 'engineer')),
    h(
      'button.btn.btn-ghost.btn-sm',
      {
        type: 'button',
        onclick: async () => {
          try {
            setCsrf((await api('/api/session')).csrfToken);
            await api('/api/logout', { method: 'POST', body: {} });
          } finally {
            window.location.assign('/login?signedout=1');
          }
        },
      },
      'Sign out',
    ),
  );
}

function bindFilters() {
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

function route() {
  const id = readHash();
  syncFilterInputs();
  if (id && id !== state.selected) void openActor(id);
  if (!id) {
    state.selected = null;
    state.actor = null;
    replace(
      $('main'),
      h(
        'div.insp-empty',
        h('h1', 'Pick an actor'),
        h(
          'p',
          'Agents and review cases of this node, live. Open one to see its statechart, its events and its context, and travel back through its journal.',
        ),
      ),
    );
  }
}

async function boot() {
  let s;
  try {
    s = await api('/api/inspect/session');
  } catch (err) {
    if (err.status === 403) {
      replace($('main'), h('div.insp-empty', h('h1', 'The inspector needs the engineer role'), h('p', err.message)));
      $('actors').remove();
      return;
    }
    if (err.status !== 401) toast(err.message, 'error', { title: 'The inspector could not start' });
    return;
  }
  state.session = s;
  setServerTime(s.serverTime);
  renderUser(s);
  if (s.stats) showStats(s.stats);
  bindFilters();
  // Rows held still under the pointer take their place once it leaves.
  $('actors').addEventListener('mouseleave', () => state.resortPending && renderList());
  $('actors').addEventListener('focusout', () =>
    setTimeout(() => state.resortPending && !listHeld() && renderList(), 0),
  );
  readHash();
  syncFilterInputs();
  await loadList();
  route();
  window.addEventListener('hashchange', route);
  connect();
}

void boot();
