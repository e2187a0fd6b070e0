import { api } from './api.js';
import {
  commandId,
  debounce,
  fmtDuration,
  fmtIso,
  fmtPct,
  fmtTime,
  h,
  humanize,
  now,
  replace,
  riskBand,
  setStyle,
  slaClass,
} from './dom.js';
import { MASK, diff, objectForm, validate } from './form.js';
import { closeModal, modal, toast } from './ui.js';
import { lineageView } from './lineage.js';

const HISTORY_LABEL = {
  opened: 'Opened',
  claimed: 'Claimed',
  released: 'Released',
  'lease-expired': 'Lease expired',
  renewed: 'Lease renewed',
  approved: 'Approved',
  modified: 'Modified',
  rejected: 'Rejected',
  escalated: 'Escalated',
  expired: 'Expired',
};

/** Who did a history entry, in words: a lapsed lease or a missed deadline is nobody's act. */
function historyWho(e) {
  const name = e.byName || e.by;
  if (e.kind === 'lease-expired') return name ? h('span', ' · lease of ', h('bdi', name), ' ran out') : null;
  if (e.kind === 'expired' || (e.kind === 'escalated' && !e.by)) return h('span', ' · by the runtime');
  return name ? h('span', ' by ', h('bdi', name)) : null;
}

/** A step's status as a reviewer reads it: an episode that ended without running a step did not "pend". */
function stepStatus(s, ep, c) {
  if (s.status === 'pending' && (ep.status !== 'active' || (c && c.state === 'rejected'))) return [s, 'not run'];
  return [s, s.status];
}

/** What the loser of a claim race reads. */
export function claimLostText(name, at) {
  return `${name} claimed this case first, at ${fmtTime(at)}. It is theirs while they hold the lease; it comes back to the queue if they release it or go quiet.`;
}

const STATE_LABEL = {
  queued: 'Waiting for a reviewer',
  claimed: 'Claimed',
  approved: 'Approved',
  modified: 'Approved with changes',
  rejected: 'Rejected',
  expired: 'Expired',
};

const EPISODE_STATE = {
  perceiving: 'Reading the signal',
  planning: 'Planning',
  gating: 'At the policy gate',
  awaitingReview: 'Waiting for this review',
  acting: 'Acting',
  actBackoff: 'Retrying an action',
  compensating: 'Undoing completed actions',
  compensateBackoff: 'Retrying a compensation',
  done: 'Done',
  denied: 'Denied',
  rejected: 'Rejected',
  expired: 'Expired',
  compensated: 'Compensated',
  failed: 'Failed',
};

function scalar(v) {
  if (v === null || v === undefined) return h('span.faint', '—');
  if (v === MASK)
    return h(
      'span.masked',
      { title: 'Personal data: your roles may not see it' },
      h('span.lock', { 'aria-hidden': 'true' }),
      'hidden',
    );
  if (typeof v === 'boolean') return v ? 'yes' : 'no';
  if (typeof v === 'number') return h('span.mono', String(v));
  if (Array.isArray(v)) return v.every((x) => typeof x !== 'object') ? v.join(', ') : h('span.mono', JSON.stringify(v));
  if (typeof v === 'object') return h('span.mono', JSON.stringify(v));
  const s = String(v);
  if (/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}/.test(s)) return h('span', { title: s }, fmtIso(s));
  return s;
}

/** Key/value rows for an object; nested objects become sub-sections, lists of objects small tables. */
function fieldsView(obj, { cited = [], prefix = '' } = {}) {
  const kv = h('dl.kv');
  const sections = [];
  for (const [k, v] of Object.entries(obj || {})) {
    const path = prefix ? `${prefix}.${k}` : k;
    const isCited = cited.includes(path);
    if (v && typeof v === 'object' && !Array.isArray(v) && v !== MASK) {
      sections.push(
        h('div.subsection', h('div.subsection-title', humanize(k)), fieldsView(v, { cited, prefix: path })),
      );
    } else if (Array.isArray(v) && v.length && v.every((x) => x && typeof x === 'object' && !Array.isArray(x))) {
      const cols = [...new Set(v.flatMap((x) => Object.keys(x)))];
      sections.push(
        h(
          'div.subsection',
          h(
            'div.subsection-title',
            humanize(k),
            isCited ? h('span.cited', { title: 'Cited by the planner' }, 'cited') : null,
          ),
          h(
            'table.mini',
            h(
              'thead',
              h(
                'tr',
                cols.map((c) => h('th', humanize(c))),
              ),
            ),
            h(
              'tbody',
              v.map((row) =>
                h(
                  'tr',
                  cols.map((c) => h('td', scalar(row[c]))),
                ),
              ),
            ),
          ),
        ),
      );
    } else {
      kv.append(
        h('dt', humanize(k), isCited ? h('span.cited', { title: 'Cited by the planner' }, 'cited') : null),
        h('dd', scalar(v)),
      );
    }
  }
  return h('div.fields', kv.childNodes.length ? kv : null, sections);
}

function card(title, ...children) {
  const opts = children[0] && children[0].constructor === Object ? children.shift() : {};
  return h(
    `section.card${opts.class ? `.${opts.class}` : ''}`,
    { 'aria-label': title, id: opts.id },
    h('header.card-head', h('h2', title), opts.aside || null),
    h('div.card-body', children),
  );
}

function meter(value, band) {
  return h(
    `span.meter.meter-${band}`,
    setStyle(h('span.meter-fill'), '--w', `${Math.round(Math.max(0, Math.min(1, value)) * 100)}%`),
  );
}

/** The case page: evidence on the left and right, decisions in the action bar. */
export class CaseView {
  constructor(app, id) {
    this.app = app;
    this.id = id;
    this.data = null;
    this.audit = null;
    this.queue = Promise.resolve();
    this.reloadSoon = debounce(() => this.load(), 150);
    this.auditSoon = debounce(() => this.loadAudit(), 400);
  }

  mount(el) {
    this.el = el;
    replace(el, h('div.case-page', h('div.loading', 'Loading case…')));
    this.load();
    this.loadAudit();
    this.tick = setInterval(() => this.updateClocks(), 1000);
  }

  unmount() {
    clearInterval(this.tick);
    clearTimeout(this.renewTimer);
    this.app.send({ type: 'unwatch' });
  }

  watch() {
    this.app.send({ type: 'watch', caseId: this.id });
  }

  refresh() {
    this.load();
    this.loadAudit();
  }

  async load() {
    try {
      const data = await api(`/api/cases/${encodeURIComponent(this.id)}`);
      this.apply(data);
    } catch (err) {
      this.data = null;
      replace(
        this.el,
        h(
          'div.case-page',
          this.crumbs(null),
          h(
            'div.empty.empty-error',
            h(
              'strong',
              err.status === 404
                ? 'No such case.'
                : err.status === 403
                  ? 'You may not open this case.'
                  : 'The case could not be loaded.',
            ),
            h('p', err.message),
            h('a.btn.btn-secondary', { href: this.app.queueHash }, 'Back to the queue'),
          ),
        ),
      );
    }
  }

  async loadAudit() {
    try {
      this.audit = await api(`/api/cases/${encodeURIComponent(this.id)}/audit`);
      if (this.auditBox) this.renderAudit();
      this.lineage = (await api(`/api/cases/${encodeURIComponent(this.id)}/lineage`)).lineage;
      if (this.lineageBox) replace(this.lineageBox, lineageView(this.lineage));
    } catch {
      /* the case load shows the error */
    }
  }

  apply(data) {
    const before = this.data;
    this.data = data;
    if (data.case.names) for (const [k, v] of Object.entries(data.case.names)) this.app.names.set(k, v);
    this.render();
    this.scheduleRenew();
    if (before && !before.case.closed && data.case.closed && !this.decidedHere) {
      toast(
        `${STATE_LABEL[data.case.state] || data.case.state} by ${(data.case.resolution && data.case.resolution.decidedByNames.join(', ')) || 'the runtime'}.`,
        'info',
        { title: 'This case was decided' },
      );
    }
  }

  crumbs(c) {
    return h(
      'nav.crumbs',
      { 'aria-label': 'Breadcrumb' },
      h('a', { href: this.app.queueHash }, 'Queue'),
      h('span.sep', '›'),
      c ? h('span', c.tier.name) : null,
      c ? h('span.sep', '›') : null,
      h('span.mono', this.id),
    );
  }

  render() {
    const { case: c, episode } = this.data;
    const you = c.you;
    const band = riskBand(c.decision.riskScore);
    const title = `${humanize(c.observation.kind)} · ${c.observation.subject}`;
    this.head = h(
      'div.case-head',
      this.crumbs(c),
      h(
        'div.case-title-row',
        h(
          'div.case-title',
          h('h1', title),
          h(
            'div.chips',
            c.regated
              ? h('span.chip.chip-warn', `Edited · sent to tier ${c.regated.tier}`)
              : h(`span.chip.state-${c.state}`, STATE_LABEL[c.state] || c.state),
            h('span.chip', `Tier ${c.tier.n} of ${c.tiers.length} · ${c.tier.name}`),
            c.tier.steps.length > 1
              ? h(
                  'span.chip.chip-accent',
                  { title: c.tier.steps.map((s, i) => `${i + 1}. ${s.name} (${s.roles.join(', ')})`).join(' → ') },
                  `${c.tier.fourEyes ? 'Four eyes' : 'Ordered approvals'} · ${c.approvals.length}/${c.tier.steps.length}${c.closed ? '' : ` · next: ${c.tier.steps[c.tier.step - 1].name}`}`,
                )
              : null,
            c.modified ? h('span.chip.chip-accent', 'Plan modified') : null,
            c.escalations ? h('span.chip.chip-warn', `Escalated ×${c.escalations}`) : null,
            h('span.chip.chip-quiet', humanize(c.model.name)),
          ),
        ),
        this.slaBox(c),
      ),
      h(
        'div.kpis',
        h(
          'div.kpi',
          h('div.kpi-label', 'Risk score'),
          h(
            'div.kpi-value',
            h(`span.risk-text.risk-${band}`, c.decision.riskScore.toFixed(2)),
            meter(c.decision.riskScore, band),
          ),
        ),
        h(
          'div.kpi',
          h('div.kpi-label', 'Planner confidence'),
          h('div.kpi-value', fmtPct(c.plan.confidence), meter(c.plan.confidence, 'conf')),
        ),
        h('div.kpi', h('div.kpi-label', 'Sent to review by'), h('div.kpi-value.mono', c.decision.ruleId)),
        h(
          'div.kpi',
          h('div.kpi-label', 'Opened'),
          h(
            'div.kpi-value',
            fmtTime(c.openedAt),
            h(
              'span.faint.age',
              { dataset: { since: String(c.openedAt) } },
              ` · ${fmtDuration(now() - c.openedAt, { short: true })} ago`,
            ),
          ),
        ),
        h(
          'div.kpi',
          h('div.kpi-label', 'Requested by'),
          h('div.kpi-value', c.requestedBy ? c.requestedBy.name || c.requestedBy.id : h('span.faint', 'none recorded')),
        ),
      ),
      this.actionBar(c, you),
      this.banner(c, you, episode),
    );
    const left = h(
      'div.col-left',
      this.whyCard(c),
      this.planCard(c),
      c.edits && c.edits.length ? this.changesCard(c) : null,
    );
    this.auditBox = h('div.audit-box');
    this.lineageBox = h('div.lineage-box', this.lineage ? lineageView(this.lineage) : h('div.faint', 'Loading…'));
    this.episodeBox = h('div');
    const right = h(
      'div.col-right',
      this.episodeCard(episode, c),
      this.observationCard(c),
      this.historyCard(c),
      card('Audit trail', { id: 'audit', aside: h('span.faint', 'hash-chained, append-only') }, this.auditBox),
      card(
        'Lineage',
        {
          id: 'lineage',
          aside: h(
            'a.small',
            { href: `/api/cases/${encodeURIComponent(this.id)}/lineage`, target: '_blank', rel: 'noopener' },
            'JSON',
          ),
        },
        this.lineageBox,
      ),
    );
    replace(this.el, h('div.case-page', this.head, h('div.case-grid', left, right)));
    if (this.audit) this.renderAudit();
    else replace(this.auditBox, h('div.faint', 'Loading…'));
  }

  slaBox(c) {
    const rows = [];
    if (c.closed)
      return h(
        'div.sla-box',
        h('div.sla-line', h('span.sla-label', 'Closed'), h('span', c.resolution ? fmtTime(c.resolution.at) : '—')),
      );
    if (c.ackDueAt && !c.claim) rows.push(['To claim', c.ackDueAt, c.tier.ackMs]);
    if (c.resolveDueAt) rows.push(['To decide', c.resolveDueAt, c.tier.resolveMs]);
    if (c.leaseDueAt && c.claim) rows.push(['Lease', c.leaseDueAt, c.leaseMs]);
    return h(
      'div.sla-box',
      rows.map(([label, due, win]) => {
        const left = due - now();
        return h(
          'div.sla-line',
          h('span.sla-label', label),
          h(
            `span.sla.sla-${slaClass(due, win)}`,
            { dataset: { due: String(due), window: String(win) }, title: new Date(due).toLocaleString() },
            h('span.sla-time', left < 0 ? `Breached ${fmtDuration(-left, { short: true })} ago` : fmtDuration(left)),
          ),
        );
      }),
    );
  }

  actionBar(c, you) {
    const b = (id, label, key, kind, enabled, onClick, title) =>
      h(
        `button.btn.btn-${kind}`,
        {
          type: 'button',
          dataset: { action: id },
          disabled: !enabled,
          title: title || `${label} (${key})`,
          onclick: onClick,
        },
        label,
        h('kbd', key),
      );
    const open = !c.closed;
    const nav = h(
      'span.bar-nav',
      h(
        'button.btn.btn-ghost.btn-sm',
        { type: 'button', onclick: () => this.step(-1), title: 'Previous case (k)' },
        '‹ Prev',
      ),
      h(
        'button.btn.btn-ghost.btn-sm',
        { type: 'button', onclick: () => this.step(1), title: 'Next case (j)' },
        'Next ›',
      ),
    );
    if (!open)
      return h(
        'div.actionbar',
        { role: 'toolbar', 'aria-label': 'Decisions' },
        h('span.faint', 'Decided: no further action on this case.'),
        h('span.bar-fill'),
        nav,
      );
    return h(
      'div.actionbar',
      { role: 'toolbar', 'aria-label': 'Decisions' },
      you.isClaimant
        ? b('release', 'Release', 'u', 'secondary', open, () => this.release())
        : b('claim', 'Claim', 'c', 'primary', you.mayClaim, () => this.claim()),
      h('span.bar-sep'),
      b(
        'approve',
        c.tier.fourEyes && c.approvals.length === 0 ? 'Approve (1st of 2)' : 'Approve',
        'a',
        'approve',
        you.mayDecide,
        () => this.approve(),
      ),
      b('modify', 'Modify', 'm', 'secondary', you.mayDecide, () => this.modify()),
      b('reject', 'Reject', 'r', 'danger', you.mayDecide, () => this.reject()),
      b(
        'escalate',
        'Escalate',
        'e',
        'secondary',
        you.mayEscalate,
        () => this.escalate(),
        c.tier.n >= c.tiers.length ? 'The case is at its last tier' : `Escalate to tier ${c.tier.n + 1} (e)`,
      ),
      h('span.bar-fill'),
      nav,
    );
  }

  banner(c, you, episode) {
    if (c.closed) {
      const r = c.resolution;
      const who = r ? r.decidedByNames.join(' and ') : '';
      // An expiry is the runtime's, never "by" anyone; decisions name people, not ids.
      const text = r
        ? c.state === 'expired'
          ? 'Expired: no decision in time'
          : STATE_LABEL[c.state]
        : `Closed (${c.state})`;
      const ep = episode
        ? episode.status === 'done'
          ? `Agent done · outcome ${episode.outcome}`
          : `Agent: ${(EPISODE_STATE[episode.state] || episode.state).toLowerCase()}`
        : null;
      // An edit the gate sent to a higher tier is not approved: it waits for that tier, in another case.
      if (c.regated)
        return h(
          'div.banner.banner-warn',
          { role: 'status', id: 'case-banner' },
          h('strong', 'Edited, and sent to a higher tier'),
          who ? [' — edit by ', h('bdi', who)] : null,
          h('span', ` · the edited plan needs tier ${c.regated.tier}: `),
          h('a', { href: `#/case/${encodeURIComponent(c.regated.caseId)}` }, `case ${c.regated.caseId}`),
          h('span', '. Nothing has run yet.'),
        );
      return h(
        `div.banner.banner-${c.state === 'rejected' || c.state === 'expired' ? 'bad' : 'ok'}`,
        { role: 'status', id: 'case-banner' },
        h('strong', text, who && c.state !== 'expired' ? [' by ', h('bdi', who)] : null),
        r && r.reason ? h('span', ' — “', h('bdi.reason-text', r.reason.replace(/[.\s]+$/, '')), '”') : null,
        ep ? h('span.banner-aside', ep) : null,
      );
    }
    if (c.state === 'claimed' && c.claim && !you.isClaimant)
      return h(
        'div.banner.banner-warn',
        { role: 'status', id: 'case-banner' },
        'Claimed by ',
        h('bdi', c.claim.name || this.app.nameOf(c.claim.reviewer)),
        ` since ${fmtTime(c.claim.at)}.`,
      );
    if (you.isClaimant)
      return h(
        'div.banner.banner-info',
        { role: 'status', id: 'case-banner' },
        'You hold this case. Your lease renews automatically while this page is open.',
      );
    if (you.blocked)
      return h(
        `div.banner.banner-${you.tierRole && !you.isRequester && !you.alreadyApproved ? 'info' : 'warn'}`,
        { role: 'status', id: 'case-banner' },
        you.blocked,
      );
    if (you.mayClaim)
      return h(
        'div.banner.banner-quiet',
        { role: 'status', id: 'case-banner' },
        'Claim the case to decide it. A claim is a lease: it returns to the queue if you go quiet.',
      );
    return null;
  }

  whyCard(c) {
    const d = c.decision;
    const flagged = d.rules.filter((r) => r.result !== 'pass');
    return card(
      'Why this needs a human',
      h(
        'ul.reasons',
        d.reasons.map((r) => h('li', r)),
      ),
      h(
        'div.rule-line',
        h('span.faint', 'Deciding rule '),
        h('code', d.ruleId),
        h('span.faint', ` · policy ${d.policyVersion} · asks for tier ${d.tier}`),
      ),
      h(
        'table.mini.rules',
        h('thead', h('tr', h('th', 'Rule'), h('th', 'Result'), h('th', 'Detail'))),
        h(
          'tbody',
          (flagged.length ? flagged : d.rules).map((r) =>
            h(
              'tr',
              h('td.mono', r.ruleId),
              h('td', h(`span.result.result-${r.result}`, r.result + (r.tier ? ` · T${r.tier}` : ''))),
              h('td', r.detail),
            ),
          ),
        ),
      ),
      flagged.length && flagged.length < d.rules.length
        ? h('div.faint.small', `${d.rules.length - flagged.length} other rules passed.`)
        : null,
    );
  }

  planCard(c) {
    const p = c.plan;
    return card(
      c.modified ? 'Plan in force: the planner’s, with reviewers’ edits' : 'Proposed plan',
      { aside: h('span.faint', `planner ${p.planner}`) },
      c.modified
        ? h(
            'p.small.faint',
            'Rationale, confidence and risk below are the planner’s; reviewers changed arguments only (see “Changes”). Edited actions are described from their new arguments.',
          )
        : null,
      h('div.rationale', h('div.subsection-title', 'Planner rationale'), h('p', p.rationale)),
      h(
        'div.subsection',
        h('div.subsection-title', 'Risk factors'),
        h(
          'div.factors',
          p.risk.factors.map((f) =>
            h(
              'div.factor',
              h('span.factor-name', humanize(f.name)),
              meter(f.value, riskBand(f.value)),
              h('span.mono.factor-value', f.value.toFixed(2)),
              h('span.factor-note', f.note || ''),
            ),
          ),
        ),
      ),
      h(
        'ol.actions',
        p.actions.map((a) => this.actionItem(a, c)),
      ),
    );
  }

  actionItem(a, c) {
    return h(
      'li.action',
      h(
        'div.action-head',
        h('span.action-index', String(a.index + 1)),
        h(
          'div',
          h('div.action-title', a.description || humanize(a.type)),
          h('div.action-type', h('code', a.type), ` · inherent risk ${a.inherentRisk.toFixed(2)}`),
        ),
      ),
      h('div.action-desc', a.typeDescription),
      fieldsView(a.args),
      h(
        'div.compensation',
        a.compensation
          ? [
              h('span.comp-label', 'If a later step fails'),
              ' it is undone by ',
              h('code', a.compensation.type),
              ` — ${a.compensation.description}`,
            ]
          : h('span.faint', 'No compensation: nothing to undo for this action.'),
      ),
    );
  }

  changesCard(c) {
    const r = c.regate;
    const flagged = r ? r.rules.filter((x) => x.result !== 'pass') : [];
    return card(
      'Changes to the planner’s proposal',
      { class: 'card-accent', id: 'changes' },
      h(
        'ol.edits',
        c.edits.map((e) =>
          h(
            'li.edit',
            h(
              'div.edit-head',
              h('strong', h('bdi', e.byName || e.by)),
              h('span.faint', ` edited at tier ${e.tier} · ${fmtTime(e.at)}`),
            ),
            e.note ? h('p', h('span.faint', 'Reason: '), '“', h('bdi.reason-text', e.note), '”') : null,
            this.diffTable(
              e.diff.map((d) => {
                const m = /^actions\.(\d+)\.args\.(.+)$/.exec(d.path);
                const i = m ? Number(m[1]) : 0;
                const a = c.proposedPlan.actions[i];
                return { action: `${i + 1}. ${a ? a.type : ''}`, path: m ? m[2] : d.path, before: d.from, after: d.to };
              }),
            ),
            e.discardedApprovals.length
              ? h(
                  'p.small',
                  h('span.faint', 'This edit discarded the approval of '),
                  e.discardedApprovals.map((x, k) => [k ? ', ' : '', h('bdi', x.name || x.id)]),
                  h('span.faint', ': they approved the plan before it.'),
                )
              : null,
          ),
        ),
      ),
      r
        ? h(
            'div.subsection',
            h('div.subsection-title', 'The gate on the edited plan'),
            h(
              'p.small',
              r.outcome === 'review'
                ? `Needs review at tier ${r.tier} (risk ${r.riskScore.toFixed(2)}).`
                : r.outcome === 'deny'
                  ? 'Denied by policy.'
                  : 'Within every threshold: runs once approved.',
            ),
            flagged.length
              ? h(
                  'table.mini.rules',
                  h('thead', h('tr', h('th', 'Rule'), h('th', 'Result'), h('th', 'Detail'))),
                  h(
                    'tbody',
                    flagged.map((x) =>
                      h(
                        'tr',
                        h('td.mono', x.ruleId),
                        h('td', h(`span.result.result-${x.result}`, x.result + (x.tier ? ` · T${x.tier}` : ''))),
                        h('td', x.detail),
                      ),
                    ),
                  ),
                )
              : null,
          )
        : null,
      h(
        'details',
        h('summary', 'The planner’s original actions'),
        h(
          'ol.actions',
          c.proposedPlan.actions.map((a) => this.actionItem(a, c)),
        ),
      ),
    );
  }

  diffTable(rows) {
    if (!rows.length) return h('p.faint', 'No argument changed.');
    return h(
      'table.mini.diff',
      h('thead', h('tr', h('th', 'Action'), h('th', 'Field'), h('th', 'Proposed'), h('th', 'New'))),
      h(
        'tbody',
        rows.map((r) =>
          h(
            'tr',
            h('td', r.action),
            h('td', humanize(r.path)),
            h('td.del', scalar(r.before)),
            h('td.ins', scalar(r.after)),
          ),
        ),
      ),
    );
  }

  observationCard(c) {
    const o = c.observation;
    const prov = o.provenance;
    return card(
      'Observation',
      {
        aside: o.masked
          ? h(
              'span.chip.chip-quiet',
              { title: 'Fields marked sensitive are hidden for your roles' },
              h('span.lock'),
              'personal data hidden',
            )
          : null,
      },
      h(
        'div.provenance',
        h('div.prov-line', h('span.prov-k', 'Source'), h('code', prov.source)),
        h(
          'div.prov-line',
          h('span.prov-k', 'Observed'),
          h('span', { title: prov.observedAt }, fmtIso(prov.observedAt)),
        ),
        h(
          'div.prov-line',
          h('span.prov-k', 'Class'),
          h('span', o.classification),
          h('span.faint', ` (${o.dataClasses.join(', ')})`),
        ),
        prov.transforms.length
          ? h(
              'ol.transforms',
              prov.transforms.map((t) =>
                h(
                  'li',
                  h('strong', t.name),
                  h('span.faint', ` by ${t.by} · ${fmtIso(t.at)}`),
                  t.note ? h('div.small', t.note) : null,
                ),
              ),
            )
          : h('div.faint.small', 'No transforms: the data is as the source gave it.'),
      ),
      fieldsView(o.fields, { cited: c.plan.citedInputs }),
    );
  }

  historyCard(c) {
    return card(
      'History',
      h(
        'ol.timeline',
        c.history.map((e) =>
          h(
            `li.tl.tl-${e.kind}`,
            h('span.tl-dot', { 'aria-hidden': 'true' }),
            h(
              'div.tl-body',
              h(
                'div.tl-head',
                h('strong', HISTORY_LABEL[e.kind] || e.kind),
                historyWho(e),
                h('span.faint', ` · tier ${e.tier} · ${fmtTime(e.at)}`),
              ),
              e.note ? h('div.tl-note', h('bdi', e.note)) : null,
            ),
          ),
        ),
      ),
    );
  }

  episodeCard(ep, c) {
    if (!ep) return card('Agent episode', h('p.faint', 'The episode record is not available.'));
    const badge =
      ep.status === 'done'
        ? ep.outcome === 'failed' || ep.outcome === 'compensated'
          ? 'bad'
          : 'ok'
        : ep.state === 'awaitingReview'
          ? 'wait'
          : 'run';
    return card(
      'Agent episode',
      { id: 'episode', aside: h('code.faint', ep.id) },
      h(
        'div.episode-state',
        h(`span.dot.dot-${badge}`),
        h(
          'strong#episode-state',
          ep.status === 'done' ? `Done · outcome ${ep.outcome}` : EPISODE_STATE[ep.state] || ep.state,
        ),
        ep.error ? h('span.faint', ` — ${ep.error}`) : null,
      ),
      h(
        'ol.steps',
        ep.steps
          .map((s) => stepStatus(s, ep, c))
          .map(([s, status]) =>
            h(
              `li.step.step-${status.replace(/\s+/g, '-')}`,
              h('span.step-mark', { 'aria-hidden': 'true' }),
              h('span', h('code', s.type), ' ', h('span.step-status', status)),
              s.result && typeof s.result === 'object'
                ? h(
                    'div.step-result',
                    Object.entries(s.result)
                      .slice(0, 4)
                      .map(([k, v]) => h('span.kvp', `${humanize(k)}: `, scalar(v))),
                  )
                : null,
            ),
          ),
      ),
      ep.caseIds.length > 1 ? h('div.small.faint', `Review cases of this episode: ${ep.caseIds.join(', ')}`) : null,
    );
  }

  renderAudit() {
    const entries = (this.audit && this.audit.entries) || [];
    if (!entries.length) return replace(this.auditBox, h('p.faint', 'No entries yet.'));
    const detail = (e) => {
      const d = e.data || {};
      const bits = [];
      if (e.kind === 'gate.decision')
        bits.push(`${d.outcome} by ${d.ruleId}`, `tier ${d.tier}`, `risk ${d.riskScore}`, `confidence ${d.confidence}`);
      else if (e.kind === 'command.refused') bits.push(`${d.type || ''} → ${d.code}`, d.message);
      else if (e.kind.startsWith('action.')) bits.push(`${d.type} (${d.key})`);
      else if (e.kind === 'episode.outcome') bits.push(`outcome ${d.outcome}`);
      else {
        if (d.tier) bits.push(`tier ${d.tier}`);
        if (d.note) bits.push(d.note);
      }
      return bits.filter(Boolean).join(' · ');
    };
    replace(
      this.auditBox,
      h(
        'table.mini.audit',
        h(
          'thead',
          h(
            'tr',
            h('th.col-num', '#'),
            h('th', 'Time'),
            h('th', 'Entry'),
            h('th', 'By'),
            h('th', 'Detail'),
            h('th', 'Hash'),
          ),
        ),
        h(
          'tbody',
          entries.map((e) =>
            h(
              `tr${e.kind === 'command.refused' ? '.refused' : ''}`,
              { dataset: { seq: String(e.seq), kind: e.kind } },
              h('td.col-num.mono', String(e.seq)),
              h('td.nowrap', fmtTime(e.at)),
              h('td.mono.nowrap', e.kind),
              h('td', e.byName || e.by),
              h('td.audit-detail', detail(e)),
              h('td.mono.faint', { title: `hash ${e.hash}\nprev ${e.prev}` }, e.hash.slice(0, 8)),
            ),
          ),
        ),
      ),
    );
  }

  updateClocks() {
    if (!this.el) return;
    const t = now();
    for (const el of this.el.querySelectorAll('.sla[data-due]')) {
      const due = Number(el.dataset.due);
      const left = due - t;
      el.className = `sla sla-${slaClass(due, Number(el.dataset.window))}`;
      el.firstChild.textContent = left < 0 ? `Breached ${fmtDuration(-left, { short: true })} ago` : fmtDuration(left);
    }
    for (const el of this.el.querySelectorAll('.age[data-since]'))
      el.textContent = ` · ${fmtDuration(t - Number(el.dataset.since), { short: true })} ago`;
  }

  // ----------------------------------------------------------------------------------------------
  // Commands
  // ----------------------------------------------------------------------------------------------

  /** Sends one command at a time, with the version this page shows (optimistic concurrency). */
  send(type, extra = {}, { quiet = false } = {}) {
    const run = async () => {
      if (!this.data) return null;
      const body = { type, schemaVersion: 1, commandId: commandId(), expectedVersion: this.data.case.seq, ...extra };
      try {
        const res = await api(`/api/cases/${encodeURIComponent(this.id)}/commands`, { method: 'POST', body });
        if (res.case) this.apply({ case: res.case, episode: res.episode });
        this.auditSoon();
        return res;
      } catch (err) {
        if (err.status === 409 && quiet === 'claim') {
          await this.load();
        } else if (err.code === 'actor.conflict') {
          toast(
            'Someone or something changed this case while you were looking at it. The page now shows the current version; check it and try again.',
            'warn',
            { title: 'The case changed meanwhile', timeout: 8000 },
          );
          await this.load();
        } else if (!quiet) {
          toast(err.message, err.status === 409 ? 'warn' : 'error', {
            title: err.status === 403 ? 'Not allowed' : err.status === 400 ? 'Refused: invalid input' : 'Refused',
            timeout: 8000,
          });
          if (err.status === 409 || err.status === 403) await this.load();
        }
        this.auditSoon();
        throw err;
      }
    };
    const p = this.queue.then(run, run);
    this.queue = p.catch(() => undefined);
    return p;
  }

  scheduleRenew() {
    clearTimeout(this.renewTimer);
    const c = this.data && this.data.case;
    if (!c || !c.you.isClaimant || !c.leaseDueAt) return;
    const at = c.leaseDueAt - c.leaseMs * 0.4;
    this.renewTimer = setTimeout(
      () => this.send('handoff.case.renew', {}, { quiet: true }).catch(() => undefined),
      Math.max(1000, at - now()),
    );
  }

  async claim() {
    if (!this.data || !this.data.case.you.mayClaim) return;
    try {
      await this.send('handoff.case.claim', {}, { quiet: 'claim' });
      toast('You hold the case now.', 'ok');
    } catch (err) {
      if (err.status !== 409) {
        toast(err.message, 'error', { title: err.status === 403 ? 'Not allowed' : 'Claim refused', timeout: 8000 });
        return;
      }
      // A claim race: say who won, by name, rather than "the case changed".
      const c = this.data && this.data.case;
      if (c && c.claim && c.claim.reviewer !== this.app.session.reviewer.id)
        toast(claimLostText(c.claim.name || this.app.nameOf(c.claim.reviewer), c.claim.at), 'warn', {
          title: 'Someone else claimed it first',
          timeout: 10_000,
        });
      else if (c && c.closed)
        toast(`It was decided meanwhile: ${(STATE_LABEL[c.state] || c.state).toLowerCase()}.`, 'warn', {
          title: 'The case changed meanwhile',
          timeout: 8000,
        });
      else
        toast('The case changed while you were looking at it; the page shows the current version. Try again.', 'warn', {
          title: 'The case changed meanwhile',
          timeout: 8000,
        });
    }
  }

  async release() {
    if (!this.data || !this.data.case.you.mayRelease) return;
    await this.send('handoff.case.release', { reason: 'released from the console' })
      .then(() => toast('Released: the case is back in the queue.', 'ok'))
      .catch(() => undefined);
  }

  textDialog({ title, subtitle, label, placeholder, required, confirm, kind, onSend }) {
    const area = h('textarea#dialog-text', { rows: '4', placeholder, autofocus: true });
    const error = h('div.field-error', { role: 'alert' });
    const submit = async () => {
      const text = area.value.trim();
      if (required && !text) {
        error.textContent = `${label} is required.`;
        area.classList.add('invalid');
        return;
      }
      dialog.setActions([{ label: 'Sending…', kind, disabled: true, onClick: () => undefined }]);
      try {
        await onSend(text);
        closeModal();
      } catch {
        dialog.setActions(actions);
      }
    };
    area.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && (e.ctrlKey || e.metaKey || !required)) {
        e.preventDefault();
        void submit();
      }
    });
    const actions = [
      { label: 'Cancel', kind: 'secondary', onClick: closeModal },
      { label: confirm, kind, onClick: submit, key: required ? 'Ctrl+Enter' : 'Enter', id: 'confirm' },
    ];
    const dialog = modal({
      title,
      subtitle,
      body: h(
        'div',
        h(
          'label.field-label',
          { for: 'dialog-text' },
          label,
          required ? h('span.req', ' *') : h('span.faint', ' (optional)'),
        ),
        area,
        error,
      ),
      actions,
    });
  }

  approve() {
    const c = this.data && this.data.case;
    if (!c || !c.you.mayDecide) return;
    const more = c.approvals.length + 1 < c.tier.steps.length;
    this.textDialog({
      title: more ? `Give approval ${c.approvals.length + 1} of ${c.tier.steps.length}` : 'Approve the plan',
      subtitle: more
        ? `The case returns to the queue for ${c.tier.steps[c.approvals.length + 1].name} (${c.tier.steps[c.approvals.length + 1].roles.join(', ')}), a different person.`
        : `The agent will run ${c.plan.actions.length} action${c.plan.actions.length > 1 ? 's' : ''} as shown.`,
      label: 'Comment',
      placeholder: 'What you checked (kept in the audit log)',
      required: false,
      confirm: 'Approve',
      kind: 'approve',
      onSend: async (comment) => {
        this.decidedHere = true;
        await this.send('handoff.case.approve', comment ? { comment } : {});
        toast(
          first ? 'First approval recorded; the case waits for a second approver.' : 'Approved. The agent acts now.',
          'ok',
        );
      },
    });
  }

  reject() {
    const c = this.data && this.data.case;
    if (!c || !c.you.mayDecide) return;
    this.textDialog({
      title: 'Reject the plan',
      subtitle: 'The agent will not act; the episode ends rejected.',
      label: 'Reason',
      placeholder: 'Why the plan must not run (shown to the requester and kept in the audit log)',
      required: true,
      confirm: 'Reject',
      kind: 'danger',
      onSend: async (reason) => {
        this.decidedHere = true;
        await this.send('handoff.case.reject', { reason });
        toast('Rejected.', 'ok');
      },
    });
  }

  escalate() {
    const c = this.data && this.data.case;
    if (!c || !c.you.mayEscalate) return;
    const next = c.tiers[c.tier.n];
    this.textDialog({
      title: `Escalate to tier ${c.tier.n + 1}`,
      subtitle: next ? `${next.name} (${next.roles.join(', ')}) decides it next; your claim ends.` : '',
      label: 'Reason',
      placeholder: 'What the next tier should look at',
      required: true,
      confirm: 'Escalate',
      kind: 'primary',
      onSend: async (reason) => {
        await this.send('handoff.case.escalate', { reason });
        toast(`Escalated to ${next ? next.name : 'the next tier'}.`, 'ok');
      },
    });
  }

  /** Edit the proposed actions in forms generated from their schemas; review the diff; send. */
  modify() {
    const c = this.data && this.data.case;
    if (!c || !c.you.mayDecide) return;
    const forms = c.plan.actions.map((a) => {
      const schema = c.schemas[a.type];
      const masked = a.masked ? a.sensitive : [];
      const f = objectForm(schema, a.args, { masked, idPrefix: `a${a.index}` });
      return { a, schema, f };
    });
    const comment = h('textarea#modify-comment', {
      rows: '2',
      placeholder: 'Why you changed the plan (required; kept in the audit log)',
    });
    const commentErr = h('div.field-error', { role: 'alert' });
    const editStep = h(
      'div.modify',
      forms.map(({ a, f }) =>
        h(
          'fieldset.action-form',
          h(
            'legend',
            h('span.action-index', String(a.index + 1)),
            ` ${a.description || humanize(a.type)} `,
            h('code', a.type),
          ),
          f.el,
        ),
      ),
      h(
        'div.field',
        h('label.field-label', { for: 'modify-comment' }, 'Reason for the change', h('span.req', ' *')),
        comment,
        commentErr,
      ),
    );
    let edited = null;
    const collect = () => {
      let ok = true;
      edited = forms.map(({ a, schema, f }) => {
        const args = f.read();
        const errors = validate(schema, args);
        f.showErrors(errors);
        if (errors.length) ok = false;
        return { a, args };
      });
      const note = comment.value.trim();
      commentErr.textContent = note ? '' : 'Say why the plan was changed.';
      comment.classList.toggle('invalid', !note);
      if (!note) ok = false;
      return ok;
    };
    const review = () => {
      if (!collect()) {
        const first = dialog.el.querySelector('.invalid');
        if (first) first.focus();
        return;
      }
      const rows = [];
      for (const { a, args } of edited)
        for (const d of diff(a.args, args))
          rows.push({ action: `${a.index + 1}. ${a.type}`, path: d.path, before: d.before, after: d.after });
      if (!rows.length) {
        commentErr.textContent = 'Nothing changed. To run the plan as proposed, approve it instead.';
        return;
      }
      const restart =
        c.tier.steps.length > 1
          ? ` This tier needs ${c.tier.steps.length} approvals: your edit discards ${c.approvals.length ? 'the approvals given so far' : 'none yet'} and the edited plan needs them again.`
          : '';
      replace(
        dialog.el.querySelector('.modal-body'),
        h(
          'div',
          h(
            'p',
            `You are about to send these changes. The agent re-checks the edited plan against the policy; a change that raises the risk needs a higher tier.${restart}`,
          ),
          this.diffTable(rows),
          h('p.small', h('span.faint', 'Reason: '), '“', h('bdi', comment.value.trim()), '”'),
        ),
      );
      dialog.setActions([
        {
          label: 'Back to editing',
          kind: 'secondary',
          onClick: () => {
            replace(dialog.el.querySelector('.modal-body'), editStep);
            dialog.setActions(editActions);
          },
        },
        { label: 'Send modification', kind: 'approve', id: 'send-modify', onClick: send },
      ]);
      setTimeout(() => {
        const b = dialog.el.querySelector('[data-action="send-modify"]');
        if (b) b.focus();
      }, 0);
    };
    const send = async () => {
      // Arguments only: the planner's rationale, confidence and risk are not the reviewer's to change.
      const actions = edited.map(({ a, args }) => ({ type: a.type, args }));
      dialog.setActions([{ label: 'Sending…', kind: 'approve', disabled: true, onClick: () => undefined }]);
      try {
        this.decidedHere = true;
        await this.send('handoff.case.modify', { actions, comment: comment.value.trim() });
        closeModal();
        const more = c.tier.steps.length > 1;
        toast(
          more
            ? 'Edit recorded. Earlier approvals no longer count: the edited plan goes back to the queue for its approvals.'
            : 'Edit recorded as your approval. The agent checks the edited plan against the policy again: a change that needs a higher tier opens a case there.',
          'ok',
        );
      } catch (err) {
        if (err.code === 'contract.invalid' && err.details && err.details.path) {
          replace(dialog.el.querySelector('.modal-body'), editStep);
          dialog.setActions(editActions);
          const m = /^actions\.(\d+)\.args\.(.+)$/.exec(err.details.path);
          if (m && forms[Number(m[1])])
            forms[Number(m[1])].f.showErrors([
              {
                path: m[2],
                message: (err.details.issues && err.details.issues[0] && err.details.issues[0].message) || 'is invalid',
              },
            ]);
        } else closeModal();
      }
    };
    const editActions = [
      { label: 'Cancel', kind: 'secondary', onClick: closeModal },
      { label: 'Review changes', kind: 'primary', id: 'review-modify', onClick: review },
    ];
    const dialog = modal({
      title: 'Modify the proposed actions',
      subtitle: 'Fields come from each action’s contract and are checked here and again on the server.',
      body: editStep,
      actions: editActions,
      wide: true,
    });
  }

  step(delta) {
    const ids = this.app.queueIds;
    const i = ids.indexOf(this.id);
    const next = ids[i < 0 ? 0 : i + delta];
    if (next && next !== this.id) this.app.navigate(`#/case/${encodeURIComponent(next)}`);
  }

  onMessage(msg) {
    if ((msg.type === 'case' && msg.id === this.id) || (msg.type === 'episode' && msg.caseId === this.id)) {
      this.reloadSoon();
      this.auditSoon();
    }
  }

  onKey(e) {
    const k = e.key;
    if (k === 'Escape') return (this.app.navigate(this.app.queueHash), true);
    if (k === 'c') return (this.claim(), true);
    if (k === 'u') return (this.release(), true);
    if (k === 'a') return (this.approve(), true);
    if (k === 'm') return (this.modify(), true);
    if (k === 'r') return (this.reject(), true);
    if (k === 'e') return (this.escalate(), true);
    if (k === 'j') return (this.step(1), true);
    if (k === 'k') return (this.step(-1), true);
    return false;
  }
}
