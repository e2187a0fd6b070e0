import { api, onSessionExpired, setCsrf } from './api.js';
import { h, initials, replace, setServerTime } from './dom.js';
import { closeModal, modal, modalOpen, showHelp, toast } from './ui.js';
import { QueueView } from './queue.js';
import { CaseView } from './case.js';
import { DashboardView } from './dashboard.js';

/** Shared state of the page: the session, the live socket, the current view. */
export const app = {
  session: null,
  depth: [],
  /** Ids of the queue page last shown, so j/k on a case page move through the queue. */
  queueIds: [],
  queueHash: '#/queue',
  live: false,
  send(msg) {
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(msg));
  },
  navigate(hash) {
    if (window.location.hash === hash) route();
    else window.location.hash = hash;
  },
  /** Reviewer display name by id (from the model's reviewers, as the server sends them). */
  names: new Map(),
  nameOf(id) {
    return (id && app.names.get(id)) || id;
  },
  roleNames() {
    const s = app.session;
    if (!s) return [];
    return [...new Set(Object.values(s.reviewer.grants).flatMap((g) => g.roles))];
  },
};

let current = null;
let socket = null;
let retry = 0;
let expiredShown = false;
const viewEl = document.getElementById('view');

function showExpired() {
  if (expiredShown) return;
  expiredShown = true;
  if (socket) socket.close();
  modal({
    title: 'Session ended',
    body: h(
      'p',
      'Your session expired or you signed out in another tab. Sign in again to continue; nothing you had not sent was changed.',
    ),
    actions: [{ label: 'Sign in again', kind: 'primary', onClick: () => window.location.assign('/login?expired=1') }],
  });
}
onSessionExpired(showExpired);

function setLive(on, text) {
  app.live = on;
  const el = document.getElementById('live');
  el.className = `live ${on ? 'live-on' : 'live-off'}`;
  el.textContent = text || (on ? 'Live' : 'Reconnecting…');
}

function connect() {
  const url = `${window.location.protocol === 'https:' ? 'wss' : 'ws'}://${window.location.host}/ws`;
  socket = new WebSocket(url);
  socket.addEventListener('open', () => {
    const reconnected = retry > 0;
    retry = 0;
    setLive(true);
    if (current && current.watch) current.watch();
    if (reconnected && current && current.refresh) current.refresh();
  });
  socket.addEventListener('message', (e) => {
    let msg;
    try {
      msg = JSON.parse(e.data);
    } catch {
      return;
    }
    if (msg.type === 'hello') setServerTime(msg.serverTime);
    else if (msg.type === 'session') showExpired();
    else if (msg.type === 'depth') {
      app.depth = msg.depth;
      setServerTime(msg.serverTime);
    }
    if (current && current.onMessage) current.onMessage(msg);
  });
  socket.addEventListener('close', (e) => {
    setLive(false);
    if (e.code === 4401) {
      showExpired();
      return;
    }
    retry++;
    setTimeout(connect, Math.min(10_000, 500 * 2 ** Math.min(retry, 5)));
  });
}

function renderUser() {
  const s = app.session;
  const roles = app.roleNames();
  const el = document.getElementById('user');
  replace(
    el,
    h('span.avatar', { 'aria-hidden': 'true' }, initials(s.reviewer.name)),
    h('span.user-text', h('span.user-name', s.reviewer.name), h('span.user-roles', roles.join(' · '))),
    h(
      'button.btn.btn-ghost.btn-sm',
      {
        type: 'button',
        id: 'signout',
        onclick: async () => {
          try {
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

function parseHash() {
  const raw = window.location.hash || '#/queue';
  const [path, query = ''] = raw.slice(1).split('?');
  return { path, params: new URLSearchParams(query) };
}

function route() {
  const { path, params } = parseHash();
  if (current && current.unmount) current.unmount();
  current = null;
  closeModal();
  replace(viewEl);
  let nav = 'queue';
  const caseMatch = /^\/case\/(.+)$/.exec(path);
  if (caseMatch) {
    current = new CaseView(app, decodeURIComponent(caseMatch[1]));
  } else if (path === '/dashboards') {
    current = new DashboardView(app);
    nav = 'dashboards';
  } else {
    current = new QueueView(app, params);
    app.queueHash = window.location.hash || '#/queue';
  }
  for (const a of document.querySelectorAll('[data-nav]')) a.classList.toggle('active', a.dataset.nav === nav);
  current.mount(viewEl);
  if (app.live && current.watch) current.watch();
}

function typing(e) {
  const t = e.target;
  return t && (t.tagName === 'INPUT' || t.tagName === 'TEXTAREA' || t.tagName === 'SELECT' || t.isContentEditable);
}

let pendingG = 0;
document.addEventListener('keydown', (e) => {
  if (e.defaultPrevented || e.ctrlKey || e.metaKey || e.altKey) return;
  if (modalOpen()) return;
  if (typing(e)) {
    if (e.key === 'Escape') e.target.blur();
    return;
  }
  if (e.key === '?') {
    e.preventDefault();
    showHelp();
    return;
  }
  if (pendingG && Date.now() - pendingG < 1200) {
    pendingG = 0;
    if (e.key === 'q') return app.navigate(app.queueHash);
    if (e.key === 'd') return app.navigate('#/dashboards');
  }
  if (e.key === 'g') {
    pendingG = Date.now();
    return;
  }
  if (current && current.onKey && current.onKey(e)) e.preventDefault();
});

document.getElementById('help-button').addEventListener('click', showHelp);
window.addEventListener('hashchange', route);

async function boot() {
  try {
    const s = await api('/api/session');
    app.session = s;
    setCsrf(s.csrfToken);
    setServerTime(s.serverTime);
  } catch (err) {
    if (err.status !== 401) toast(err.message, 'error', { title: 'The console could not start' });
    return;
  }
  renderUser();
  route();
  connect();
}

window.addEventListener('error', (e) => toast(String(e.message || e), 'error', { title: 'Console error' }));
void boot();
