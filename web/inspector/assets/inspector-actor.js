// One actor in the inspector: its statechart with the active state lit, its event log, its context
// with a diff per step, time travel over its journal, and the live records and notices about it.
import { api } from '/assets/api.js';
import { debounce, fmtTime, h, replace } from '/assets/dom.js';
import { idsFromStateString, leafIds, renderChart } from './chart.js';
import { $, state, stClass, go } from './inspector-state.js';

const charts = new Map();

async function chartFor(model, kind) {
  const key = `${model}/${kind}`;
  if (!charts.has(key)) charts.set(key, api(`/api/inspect/charts/${encodeURIComponent(model)}/${kind}`));
  return charts.get(key);
}

export async function openActor(id) {
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

export function watch() {
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

export function onRecord(r) {
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

export function onNotice(n) {
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
