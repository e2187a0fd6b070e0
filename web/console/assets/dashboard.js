import uPlot from '/vendor/uplot/uPlot.esm.js';
import { api } from './api.js';
import { fmtNum, fmtPct, fmtSpan, h, replace } from './dom.js';

const RANGES = [
  ['1h', 'Last hour'],
  ['6h', '6 hours'],
  ['24h', '24 hours'],
  ['7d', '7 days'],
  ['all', 'All'],
];
const PALETTE = ['#2f5bd3', '#d9822b', '#8e44ad', '#1f8a4c', '#c53030', '#0f8ea1', '#7a6f2a', '#b83280', '#4a5568'];

/** A sentence that says what a chart shows: its latest, lowest and highest value per series. */
function describe(series, data, fmt) {
  return series
    .map((s, i) => {
      const vals = (data[i] || []).filter((v) => v !== null && v !== undefined && Number.isFinite(v));
      if (!vals.length) return `${s.label}: no data in this range`;
      return `${s.label}: latest ${fmt(vals[vals.length - 1])}, lowest ${fmt(Math.min(...vals))}, highest ${fmt(Math.max(...vals))}`;
    })
    .join('; ');
}

/** Dashboards: KPIs and time series (uPlot) for the queues and models the reviewer works on. */
export class DashboardView {
  constructor(app) {
    this.app = app;
    this.range = sessionStorage.getItem('handoff.range') || 'all';
    this.plots = [];
  }

  mount(el) {
    this.el = el;
    this.kpis = h('div.kpi-tiles');
    this.grid = h('div.chart-grid');
    this.rangeBar = h('div.segmented', { role: 'group', 'aria-label': 'Time range' });
    this.note = h('span.faint.small');
    replace(
      el,
      h(
        'div.dash-page',
        h(
          'div.page-head',
          h('div', h('h1.page-title', 'Dashboards'), h('span.page-count', 'Review performance for your queues')),
          h('div.dash-tools', this.note, this.rangeBar),
        ),
        this.kpis,
        this.grid,
      ),
    );
    this.renderRange();
    this.load();
    this.timer = setInterval(() => this.load(), 15_000);
    this.onResize = () => this.resize();
    window.addEventListener('resize', this.onResize);
  }

  unmount() {
    clearInterval(this.timer);
    window.removeEventListener('resize', this.onResize);
    for (const p of this.plots) p.destroy();
    this.plots = [];
  }

  refresh() {
    this.load();
  }

  renderRange() {
    replace(
      this.rangeBar,
      RANGES.map(([k, label]) =>
        h(
          `button.seg${this.range === k ? '.active' : ''}`,
          {
            type: 'button',
            onclick: () => {
              this.range = k;
              sessionStorage.setItem('handoff.range', k);
              this.renderRange();
              this.load();
            },
          },
          label,
        ),
      ),
    );
  }

  async load() {
    let d;
    try {
      d = await api(`/api/dashboard?range=${this.range}`);
    } catch (err) {
      replace(this.grid, h('div.empty.empty-error', err.message));
      return;
    }
    this.data = d;
    const open = (this.app.depth || []).reduce((s, x) => s + x.open, 0);
    const breached = (this.app.depth || []).reduce((s, x) => s + x.breached, 0);
    const t = d.totals;
    const tile = (label, value, sub, cls = '') =>
      h(`div.tile${cls}`, h('div.tile-label', label), h('div.tile-value', value), h('div.tile-sub', sub));
    replace(
      this.kpis,
      tile(
        'Open cases',
        fmtNum(open),
        breached ? `${fmtNum(breached)} past SLA` : 'none past SLA',
        breached ? '.tile-bad' : '',
      ),
      tile('MTTA', fmtSpan(t.mttaMs), 'open → first claim'),
      tile('MTTR', fmtSpan(t.mttrMs), 'open → decision'),
      tile(
        'SLA attainment',
        fmtPct(t.slaAttainment, 1),
        `${fmtNum(t.slaMissed || 0)} missed a deadline · ${fmtNum(t.closed)} closed`,
        t.slaMissed ? '.tile-warn' : '',
      ),
      tile('Auto-rate', fmtPct(t.autoRate, 1), `${fmtNum(t.auto)} of ${fmtNum(t.episodes)} plans ran without review`),
      tile('Sent to review', fmtNum(t.review), `${fmtNum(t.deny)} denied by policy`),
    );
    this.note.textContent = d.ready ? `${Math.round(d.stepMs / 60000)} min per point` : 'Loading history…';
    this.renderCharts(d);
  }

  renderCharts(d) {
    for (const p of this.plots) p.destroy();
    this.plots = [];
    const x = d.t.map((ms) => ms / 1000);
    const width = () =>
      Math.max(280, Math.floor((this.grid.clientWidth - 24) / (this.grid.clientWidth > 900 ? 2 : 1)) - 34);
    // Each chart has a text alternative: a summary read out in its place (role img + label), and
    // the same summary as text under it for anyone who prefers numbers to lines.
    const panel = (title, sub, id) => {
      const body = h('div.chart-body', { role: 'img', 'aria-label': title });
      const legendNote = h('div.chart-sub', sub);
      const summary = h('p.chart-summary');
      this.grid.append(
        h(
          'section.card.chart-card',
          { dataset: { chart: id } },
          h('header.card-head', h('h2', title), legendNote),
          body,
          summary,
        ),
      );
      body.summaryEl = summary;
      return body;
    };
    replace(this.grid);
    const span = d.to - d.from;
    const two = (n) => String(n).padStart(2, '0');
    const timeLabel = (sec) => {
      const t = new Date(sec * 1000);
      const hm = `${two(t.getHours())}:${two(t.getMinutes())}`;
      return span > 36 * 3600_000 ? `${t.toLocaleDateString([], { day: '2-digit', month: 'short' })} ${hm}` : hm;
    };
    const axes = (fmt) => [
      {
        stroke: '#5b6575',
        grid: { stroke: '#eef0f3' },
        ticks: { stroke: '#e2e5ea' },
        space: span > 36 * 3600_000 ? 110 : 64,
        values: (u, splits) => splits.map(timeLabel),
      },
      {
        stroke: '#5b6575',
        grid: { stroke: '#eef0f3' },
        ticks: { stroke: '#e2e5ea' },
        values: (u, vals) => vals.map(fmt),
        size: 56,
      },
    ];
    const make = (el, series, data, fmt, { yRange, stepped = false } = {}) => {
      const sparse = data.some((col) => col.filter((v) => v !== null && v !== undefined).length < 30);
      el.setAttribute('aria-label', `${el.getAttribute('aria-label')}: ${describe(series, data, fmt)}`);
      el.summaryEl.textContent = describe(series, data, fmt);
      const opts = {
        width: width(),
        height: 220,
        // No line across an interval with no data: a gap says "nothing to measure", a line would invent values.
        series: [
          { value: (u, v) => (v === null || v === undefined ? '—' : new Date(v * 1000).toLocaleString()) },
          ...series.map((s, i) => ({
            label: s.label,
            stroke: s.color || PALETTE[i % PALETTE.length],
            width: 2,
            fill: s.fill,
            spanGaps: false,
            ...(stepped
              ? { paths: uPlot.paths.stepped({ align: 1 }), points: { show: false } }
              : { points: { show: sparse, size: 5 } }),
            value: (u, v) => (v === null || v === undefined ? '—' : fmt(v)),
          })),
        ],
        axes: axes(fmt),
        scales: {
          x: { time: true },
          y: yRange ? { range: yRange } : { range: (u, min, max) => [0, Math.max(1, max * 1.1)] },
        },
        cursor: { drag: { x: false, y: false } },
        legend: { live: true },
      };
      this.plots.push(new uPlot(opts, [x, ...data], el));
    };
    const queues = d.queues;
    make(
      panel('Queue depth over time', 'open cases per queue at the end of each interval', 'depth'),
      queues.map((q) => ({ label: `${q.tierName} (${q.queue})` })),
      queues.map((q) => d.depth[q.queue] || []),
      (v) => fmtNum(Math.round(v)),
    );
    const minutes = (ms) => (ms === null ? null : ms / 60000);
    const rolling = `rolling ${fmtSpan(d.windowMs).replace('.0 ', ' ')} window`;
    make(
      panel('Time to acknowledge and resolve', `mean minutes of closed cases · ${rolling}`, 'times'),
      [
        { label: 'MTTA (min)', color: '#2f5bd3' },
        { label: 'MTTR (min)', color: '#d9822b' },
      ],
      [d.mttaMs.map(minutes), d.mttrMs.map(minutes)],
      (v) => (v < 10 && !Number.isInteger(v) ? v.toFixed(1) : Math.round(v).toString()),
    );
    make(
      panel('SLA attainment', `cases with no deadline missed, a miss counted when it happens · ${rolling}`, 'sla'),
      [{ label: 'SLA attainment', color: '#1f8a4c', fill: 'rgba(31,138,76,0.08)' }],
      [d.slaAttainment],
      (v) => `${Math.round(v * 100)}%`,
      { yRange: [0, 1] },
    );
    make(
      panel('Auto-rate', `plans the gate let run without review · ${rolling}`, 'auto'),
      [{ label: 'Auto-rate', color: '#8e44ad', fill: 'rgba(142,68,173,0.08)' }],
      [d.autoRate],
      (v) => `${Math.round(v * 100)}%`,
      { yRange: [0, 1] },
    );
    const esc = d.escalations || { ack: [], resolve: [], reviewer: [] };
    const stepMin = Math.round(d.stepMs / 60000);
    make(
      panel('Escalations', `cases escalated per ${stepMin} min, by cause`, 'escalations'),
      [
        { label: 'Acknowledge deadline missed', color: '#c0392b' },
        { label: 'Resolve deadline missed', color: '#d9822b' },
        { label: 'By a reviewer', color: '#2f5bd3' },
      ],
      [esc.ack, esc.resolve, esc.reviewer],
      (v) => fmtNum(Math.round(v)),
      { stepped: true },
    );
    this.grid.dataset.rendered = '1';
  }

  resize() {
    clearTimeout(this.resizeT);
    this.resizeT = setTimeout(() => {
      if (this.data) this.renderCharts(this.data);
    }, 150);
  }

  onMessage(msg) {
    if (msg.type === 'depth' && this.data) {
      /* KPI tiles use the live depth on the next refresh */
    }
  }
}
