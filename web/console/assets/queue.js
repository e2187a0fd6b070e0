import { api } from './api.js';
import { commandId, debounce, fmtDuration, fmtNum, fmtTime, h, humanize, now, replace, slaClass } from './dom.js';
import { toast } from './ui.js';
import { queueRow } from './queue-row.js';

const PAGE = 50;
const AGES = [
  ['', 'Any age'],
  ['lt15', 'Under 15 min'],
  ['15to60', '15 min – 1 h'],
  ['1to4h', '1 h – 4 h'],
  ['gt4h', 'Over 4 h'],
];
const AGE_PARAMS = {
  lt15: { maxAgeMin: 15 },
  '15to60': { minAgeMin: 15, maxAgeMin: 60 },
  '1to4h': { minAgeMin: 60, maxAgeMin: 240 },
  gt4h: { minAgeMin: 240 },
};
const STATUSES = [
  ['', 'All open'],
  ['unclaimed', 'Unclaimed'],
  ['mine', 'Claimed by me'],
  ['claimed', 'Claimed'],
  ['breached', 'SLA breached'],
];
const RISKS = [
  ['', 'Any risk'],
  ['low', 'Low (< 0.35)'],
  ['medium', 'Medium (0.35 – 0.6)'],
  ['high', 'High (≥ 0.6)'],
];

/** The queue: the open cases this reviewer may see, best first, a server-side page at a time. */
export class QueueView {
  constructor(app, params) {
    this.app = app;
    this.f = {
      queue: params.get('queue') || '',
      tier: params.get('tier') || '',
      risk: params.get('risk') || '',
      age: params.get('age') || '',
      status: params.get('status') || '',
      q: params.get('q') || '',
    };
    this.page = Math.max(0, Number(params.get('page') || 0) | 0);
    this.rows = [];
    this.total = 0;
    this.sel = 0;
    this.firstRender = true;
    this.names = {};
    this.refreshSoon = debounce(() => this.load(), 250);
    this.abort = null;
  }

  mount(el) {
    this.el = el;
    this.side = h('aside.sidebar', { 'aria-label': 'Queues' });
    this.title = h('h1.page-title');
    this.count = h('span.page-count');
    this.search = h('input.search', {
      type: 'search',
      placeholder: 'Search subject, case id, action…',
      value: this.f.q,
      'aria-label': 'Search cases',
      oninput: debounce(() => {
        this.f.q = this.search.value.trim();
        this.page = 0;
        this.sync();
      }, 250),
    });
    this.filters = h('div.filters', { role: 'toolbar', 'aria-label': 'Filters' });
    this.table = h('table.grid.queue-table', { 'aria-label': 'Open cases' });
    this.tbody = h('tbody');
    this.table.append(
      h(
        'thead',
        h(
          'tr',
          h('th.col-pri', h('abbr', { title: 'Priority: P1 is the most urgent' }, 'Pri')),
          h('th', 'Case'),
          h('th.col-actions', 'Proposed actions'),
          h('th.col-num.col-risk', 'Risk'),
          h('th.col-num.col-conf', h('abbr', { title: 'Planner confidence' }, 'Conf.')),
          h('th.col-tier', 'Tier'),
          h('th', 'SLA'),
          h('th.col-num.col-age', 'Age'),
          h('th', 'Owner'),
        ),
      ),
      this.tbody,
    );
    this.pager = h('div.pager');
    this.status = h('div.table-status', { role: 'status' });
    const main = h(
      'section.main',
      h('div.page-head', h('div', this.title, this.count), this.search),
      this.filters,
      h('div.table-wrap', this.table, this.status),
      this.pager,
    );
    replace(el, h('div.layout', this.side, main));
    this.renderFilters();
    this.renderSide();
    this.load();
    this.tick = setInterval(() => this.updateClocks(), 1000);
  }

  unmount() {
    clearInterval(this.tick);
    if (this.abort) this.abort.abort();
  }

  refresh() {
    this.load();
  }

  params() {
    const p = new URLSearchParams();
    if (this.f.queue) p.set('queue', this.f.queue);
    if (this.f.tier) p.set('tier', this.f.tier);
    if (this.f.risk) p.set('risk', this.f.risk);
    if (this.f.status) p.set('status', this.f.status);
    if (this.f.q) p.set('q', this.f.q);
    if (this.f.age) for (const [k, v] of Object.entries(AGE_PARAMS[this.f.age] || {})) p.set(k, String(v));
    return p;
  }

  /** Keeps the filters in the address (bookmarkable) without re-mounting the view. */
  sync() {
    const p = new URLSearchParams();
    for (const [k, v] of Object.entries(this.f)) if (v) p.set(k, v);
    if (this.page) p.set('page', String(this.page));
    const hash = `#/queue${p.toString() ? `?${p}` : ''}`;
    window.history.replaceState(null, '', hash);
    this.app.queueHash = hash;
    this.renderFilters();
    this.renderSide();
    this.load();
  }

  async load() {
    if (this.abort) this.abort.abort();
    const ctrl = new AbortController();
    this.abort = ctrl;
    const p = this.params();
    p.set('offset', String(this.page * PAGE));
    p.set('limit', String(PAGE));
    let data;
    try {
      data = await api(`/api/queue?${p}`, { signal: ctrl.signal });
    } catch (err) {
      if (err.name === 'AbortError') return;
      replace(this.status, h('div.empty.empty-error', err.message));
      return;
    }
    if (ctrl.signal.aborted) return;
    const selectedId = this.rows[this.sel] && this.rows[this.sel].id;
    this.rows = data.rows;
    this.total = data.total;
    Object.assign(this.names, data.names);
    for (const [k, v] of Object.entries(data.names)) this.app.names.set(k, v);
    this.app.depth = data.depth;
    if (this.total > 0 && this.page * PAGE >= this.total) {
      this.page = Math.floor((this.total - 1) / PAGE);
      return this.sync();
    }
    const keep = selectedId ? this.rows.findIndex((r) => r.id === selectedId) : -1;
    this.sel = keep >= 0 ? keep : Math.min(this.sel, Math.max(0, this.rows.length - 1));
    this.app.queueIds = this.rows.map((r) => r.id);
    this.render();
    this.renderSide();
    if (this.firstRender) {
      this.firstRender = false;
      // Time from navigation start to the first page of cases on screen (read by the e2e benchmark).
      requestAnimationFrame(() => {
        window.__handoffFirstRender = { ms: performance.now(), rows: this.rows.length, total: this.total };
        this.table.dataset.rendered = '1';
      });
    }
  }

  queueLabel(queue) {
    const d = (this.app.depth || []).find((x) => x.queue === queue);
    return d ? d.tierName : queue;
  }

  renderSide() {
    const depth = this.app.depth || [];
    const total = depth.reduce((s, d) => s + d.open, 0);
    const item = (key, label, sub, d, index) =>
      h(
        `button.queue-item${this.f.queue === key ? '.active' : ''}`,
        {
          type: 'button',
          dataset: { queue: key },
          title: index ? `Shortcut: ${index}` : undefined,
          onclick: () => {
            this.f.queue = key;
            this.page = 0;
            this.sync();
          },
        },
        h('span.queue-text', h('span.queue-name', label), sub ? h('span.queue-sub', sub) : null),
        h(
          'span.queue-counts',
          d && d.breached
            ? h('span.badge.badge-bad', { title: `${d.breached} past their SLA deadline` }, fmtNum(d.breached))
            : null,
          h('span.badge', { title: 'open cases' }, fmtNum(d ? d.open : total)),
        ),
      );
    const models = this.app.session.models;
    replace(
      this.side,
      h(
        'div.side-section',
        h('div.side-title', 'Queues'),
        item('', 'All my queues', null, null, 1),
        depth.map((d, i) =>
          item(
            d.queue,
            d.tierName,
            `${d.queue} · tier ${d.tier}${models.length > 1 ? ` · ${d.model}` : ''}`,
            d,
            i + 2 <= 9 ? i + 2 : 0,
          ),
        ),
      ),
      h(
        'div.side-section.side-roles',
        h('div.side-title', 'Your roles'),
        models.map((m) =>
          h(
            'div.role-block',
            h('div.role-model', humanize(m.name)),
            h(
              'div.role-list',
              (this.app.session.reviewer.grants[m.name] || { roles: [] }).roles.map((r) =>
                h('span.chip', { title: m.roles[r] || '' }, r),
              ),
            ),
          ),
        ),
      ),
    );
  }

  renderFilters() {
    const select = (key, options, label) =>
      h(
        'label.filter',
        h('span.filter-label', label),
        h(
          'select',
          {
            'aria-label': label,
            dataset: { filter: key },
            onchange: (e) => {
              this.f[key] = e.target.value;
              this.page = 0;
              this.sync();
            },
          },
          options.map(([v, t]) => h('option', { value: v, selected: this.f[key] === v }, t)),
        ),
      );
    const tiers = [['', 'All tiers']];
    const maxTier = Math.max(1, ...this.app.session.models.map((m) => m.tiers.length));
    for (let i = 1; i <= maxTier; i++) tiers.push([String(i), `Tier ${i}`]);
    const active = Object.entries(this.f).filter(([k, v]) => v && k !== 'queue' && k !== 'q').length;
    replace(
      this.filters,
      select('tier', tiers, 'Tier'),
      select('risk', RISKS, 'Risk'),
      select('age', AGES, 'Age'),
      select('status', STATUSES, 'Status'),
      active
        ? h(
            'button.btn.btn-ghost.btn-sm',
            {
              type: 'button',
              onclick: () => {
                this.f = { ...this.f, tier: '', risk: '', age: '', status: '' };
                this.page = 0;
                this.sync();
              },
            },
            'Clear filters',
          )
        : null,
      h('span.filters-note', 'Sorted by priority, then SLA time left'),
    );
    const label = this.f.queue ? this.queueLabel(this.f.queue) : 'All my queues';
    this.title.textContent = label;
  }

  render() {
    const t = now();
    replace(
      this.tbody,
      this.rows.map((r, i) => queueRow(this, r, i, t)),
    );
    this.count.textContent = `${fmtNum(this.total)} open`;
    if (this.rows.length === 0) {
      replace(
        this.status,
        h(
          'div.empty',
          h('strong', 'No open cases here.'),
          h(
            'span',
            Object.values(this.f).some(Boolean)
              ? ' Try clearing the filters.'
              : ' New cases appear as soon as an agent asks for review.',
          ),
        ),
      );
    } else replace(this.status);
    const from = this.total ? this.page * PAGE + 1 : 0;
    const to = this.page * PAGE + this.rows.length;
    const pages = Math.max(1, Math.ceil(this.total / PAGE));
    replace(
      this.pager,
      h('span.pager-text', `${fmtNum(from)}–${fmtNum(to)} of ${fmtNum(this.total)}`),
      h(
        'span.pager-buttons',
        h(
          'button.btn.btn-secondary.btn-sm',
          { type: 'button', disabled: this.page === 0, onclick: () => this.go(-1), title: 'Previous page (p)' },
          '‹ Prev',
        ),
        h('span.pager-page', `Page ${this.page + 1} of ${fmtNum(pages)}`),
        h(
          'button.btn.btn-secondary.btn-sm',
          { type: 'button', disabled: to >= this.total, onclick: () => this.go(1), title: 'Next page (n)' },
          'Next ›',
        ),
      ),
    );
  }

  updateClocks() {
    const t = now();
    for (const el of this.tbody.querySelectorAll('.sla[data-due]')) {
      const due = Number(el.dataset.due);
      const left = due - t;
      const cls = slaClass(due, Number(el.dataset.window), el.dataset.missed === '1');
      el.className = `sla sla-${cls}`;
      el.firstChild.textContent = left < 0 ? `Breached ${fmtDuration(-left, { short: true })} ago` : fmtDuration(left);
    }
    for (const el of this.tbody.querySelectorAll('.age[data-opened]'))
      el.textContent = fmtDuration(t - Number(el.dataset.opened), { short: true });
  }

  go(delta) {
    const pages = Math.max(1, Math.ceil(this.total / PAGE));
    const next = Math.min(pages - 1, Math.max(0, this.page + delta));
    if (next === this.page) return;
    this.page = next;
    this.sel = 0;
    this.sync();
  }

  select(i, scroll = true) {
    if (!this.rows.length) return;
    this.sel = Math.max(0, Math.min(this.rows.length - 1, i));
    const trs = this.tbody.querySelectorAll('tr.row');
    trs.forEach((tr, j) => tr.classList.toggle('selected', j === this.sel));
    const tr = trs[this.sel];
    if (tr && scroll) tr.scrollIntoView({ block: 'nearest' });
  }

  open(id) {
    this.app.navigate(`#/case/${encodeURIComponent(id)}`);
  }

  async claim(row) {
    try {
      await api(`/api/cases/${encodeURIComponent(row.id)}/commands`, {
        method: 'POST',
        body: { type: 'handoff.case.claim', schemaVersion: 1, commandId: commandId(), expectedVersion: row.seq },
      });
      toast(`You claimed ${row.subject}.`, 'ok');
      this.open(row.id);
    } catch (err) {
      let winner = null;
      if (err.status === 409) {
        // A claim race: name who won.
        const fresh = await api(`/api/cases/${encodeURIComponent(row.id)}`).catch(() => null);
        const c = fresh && fresh.case;
        if (c && c.claim && c.claim.reviewer !== this.app.session.reviewer.id) winner = c.claim;
      }
      if (winner)
        toast(
          `${winner.name || this.app.nameOf(winner.reviewer)} claimed ${row.subject} first, at ${fmtTime(winner.at)}.`,
          'warn',
          { title: 'Someone else claimed it first', timeout: 10_000 },
        );
      else
        toast(err.message, err.status === 409 ? 'warn' : 'error', {
          title: err.status === 409 ? 'The case changed meanwhile' : 'Claim refused',
        });
      this.load();
    }
  }

  onMessage(msg) {
    if (msg.type === 'depth') {
      this.renderSide();
      return;
    }
    if (msg.type !== 'queue') return;
    const i = this.rows.findIndex((r) => r.id === (msg.op === 'remove' ? msg.id : msg.row.id));
    if (i >= 0) {
      const tr = this.tbody.querySelector(`tr[data-id="${CSS.escape(this.rows[i].id)}"]`);
      if (msg.op === 'remove' && tr) tr.classList.add('leaving');
      else if (msg.op === 'upsert' && tr) {
        this.rows[i] = msg.row;
        if (msg.row.claimedBy && !this.names[msg.row.claimedBy])
          this.names[msg.row.claimedBy] = this.app.nameOf(msg.row.claimedBy);
        const fresh = queueRow(this, msg.row, i, now());
        fresh.classList.add('flash');
        tr.replaceWith(fresh);
      }
    }
    this.refreshSoon();
  }

  onKey(e) {
    const k = e.key;
    if (k === 'j' || k === 'ArrowDown') return (this.select(this.sel + 1), true);
    if (k === 'k' || k === 'ArrowUp') return (this.select(this.sel - 1), true);
    if (k === 'Enter' || k === 'o') {
      const r = this.rows[this.sel];
      if (r) this.open(r.id);
      return true;
    }
    if (k === 'c') {
      const r = this.rows[this.sel];
      if (r) this.claim(r);
      return true;
    }
    if (k === '/') {
      this.search.focus();
      return true;
    }
    if (k === 'n') return (this.go(1), true);
    if (k === 'p') return (this.go(-1), true);
    if (/^[1-9]$/.test(k)) {
      const n = Number(k);
      const d = this.app.depth || [];
      if (n === 1) this.f.queue = '';
      else if (d[n - 2]) this.f.queue = d[n - 2].queue;
      else return false;
      this.page = 0;
      this.sync();
      return true;
    }
    return false;
  }
}
