import { api } from './api.js';
import {
  commandId,
  debounce,
  fmtDuration,
  fmtPct,
  fmtTime,
  h,
  humanize,
  now,
  replace,
  riskBand,
  slaClass,
} from './dom.js';
import { toast } from './ui.js';
import { lineageView } from './lineage.js';
import { card, meter, STATE_LABEL } from './case-format.js';
import {
  auditTable,
  banner,
  changesCard,
  episodeCard,
  historyCard,
  observationCard,
  planCard,
  slaBox,
  whyCard,
} from './case-cards.js';
import { modifyDialog, textDialog } from './case-dialogs.js';

/** What the loser of a claim race reads. */
export function claimLostText(name, at) {
  return `${name} claimed this case first, at ${fmtTime(at)}. It is theirs while they hold the lease; it comes back to the queue if they release it or go quiet.`;
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
        slaBox(c),
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
      banner(c, you, episode, (id) => this.app.nameOf(id)),
    );
    const left = h('div.col-left', whyCard(c), planCard(c), c.edits && c.edits.length ? changesCard(c) : null);
    this.auditBox = h('div.audit-box');
    this.lineageBox = h('div.lineage-box', this.lineage ? lineageView(this.lineage) : h('div.faint', 'Loading…'));
    this.episodeBox = h('div');
    const right = h(
      'div.col-right',
      episodeCard(episode, c),
      observationCard(c),
      historyCard(c),
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

  renderAudit() {
    replace(this.auditBox, auditTable((this.audit && this.audit.entries) || []));
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

  approve() {
    const c = this.data && this.data.case;
    if (!c || !c.you.mayDecide) return;
    const more = c.approvals.length + 1 < c.tier.steps.length;
    textDialog({
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
          more ? 'First approval recorded; the case waits for a second approver.' : 'Approved. The agent acts now.',
          'ok',
        );
      },
    });
  }

  reject() {
    const c = this.data && this.data.case;
    if (!c || !c.you.mayDecide) return;
    textDialog({
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
    textDialog({
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
    modifyDialog(c, async (actions, comment) => {
      this.decidedHere = true;
      await this.send('handoff.case.modify', { actions, comment });
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
