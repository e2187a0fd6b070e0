// The Handoff inspector: live actors of the node, one actor's statechart drawn from its machine
// definition with the active state lit and the last transition animated, its event log with
// payloads, its context with a diff per step, and a time-travel slider over its journal.
// Read-only: nothing on this page changes an actor. Data arrives as JSON and goes in as text nodes.
// This file boots the page and holds the live socket; the list, the actor view and the shared state
// are in inspector-list.js, inspector-actor.js and inspector-state.js.

import { api, onSessionExpired, setCsrf } from '/assets/api.js';
import { h, initials, replace, setServerTime } from '/assets/dom.js';
import { toast } from '/assets/ui.js';
import { $, state, readHash } from './inspector-state.js';
import { syncFilterInputs, loadList, listHeld, renderList, onRows, bindFilters } from './inspector-list.js';
import { openActor, watch, onRecord, onNotice } from './inspector-actor.js';

onSessionExpired(() => window.location.assign('/login?expired=1&next=/inspector'));

function setLive(on, text) {
  const el = $('live');
  el.className = `live ${on ? 'live-on' : 'live-off'}`;
  el.textContent = text || (on ? 'Live' : 'Reconnecting…');
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
