// The queue page's rows: one table row per open case, with its deadline and escalations.
import { fmtDuration, h, humanize, riskBand, setStyle, slaClass } from './dom.js';

/** "escalated ×2 · ack missed at tier 1, 2": a case's escalations, in a few words. */
export function escalationText(esc) {
  const parts = [];
  for (const [cause, label] of [
    ['ack', 'ack missed'],
    ['resolve', 'resolve missed'],
    ['reviewer', 'by a reviewer'],
  ]) {
    const tiers = esc.filter((e) => e.cause === cause).map((e) => e.fromTier);
    if (tiers.length) parts.push(`${label} at tier ${tiers.join(', ')}`);
  }
  return `escalated ×${esc.length} · ${parts.join(' · ')}`;
}

/**
 * One row of the queue: `view` is the queue (its session, selection, names, open and select), `i` the
 * row's index on the page, `t` the time the clocks show.
 */
export function queueRow(view, r, i, t) {
  const mine = r.claimedBy === view.app.session.reviewer.id;
  const risk = riskBand(r.riskScore);
  const ownerName = r.claimedBy ? view.names[r.claimedBy] || view.app.nameOf(r.claimedBy) : null;
  const owner = r.claimedBy
    ? h(
        `span.owner${mine ? '.owner-me' : ''}`,
        { title: `Claimed by ${ownerName}` },
        mine ? 'You' : h('bdi', ownerName),
      )
    : h('span.owner.owner-none', 'Unclaimed');
  const href = `#/case/${encodeURIComponent(r.id)}`;
  const rank = r.priorityRank || 1;
  const esc = r.escalations || [];
  const tr = h(
    `tr.row${i === view.sel ? '.selected' : ''}${r.claimedBy && !mine ? '.claimed' : ''}${r.slaMissed ? '.missed' : ''}`,
    {
      dataset: { id: r.id, seq: String(r.seq) },
      // A click anywhere on the row opens the case; the subject is a real link (Tab, middle-click, new tab).
      onclick: (e) => {
        if (e.target.closest('a')) return;
        if (e.ctrlKey || e.metaKey || e.shiftKey || e.button === 1) return void window.open(href, '_blank', 'noopener');
        view.open(r.id);
      },
    },
    h(
      'td.col-pri',
      h(
        `span.pri.pri-${Math.min(rank, 3)}`,
        { title: `Priority ${rank}${rank === 1 ? ' (most urgent)' : ''}` },
        `P${rank}`,
      ),
    ),
    h(
      'td.col-case',
      h(
        'div.case-subject',
        h('a.case-link', { href, onfocus: () => view.select(i, false) }, h('bdi', r.subject)),
        r.requestedBy
          ? h('span.tag', { title: `Filed by ${view.names[r.requestedBy] || r.requestedBy}` }, 'staff-filed')
          : null,
      ),
      h('div.case-meta', `${humanize(r.kind)} · `, h('span.case-id', r.id)),
    ),
    h(
      'td.col-actions',
      h('div.summary', { title: r.summary }, h('bdi', r.summary)),
      r.modified ? h('span.tag.tag-accent', 'modified') : null,
    ),
    h(
      'td.col-num.col-risk',
      h(
        'div.riskcell',
        h(
          `span.riskbar.risk-${risk}`,
          { 'aria-hidden': 'true' },
          setStyle(h('span.riskfill'), '--w', `${Math.round(r.riskScore * 100)}%`),
        ),
        h('span.mono', { title: `Risk ${risk}` }, r.riskScore.toFixed(2)),
      ),
    ),
    h('td.col-num.col-conf.mono', `${Math.round(r.confidence * 100)}%`),
    h(
      'td.col-tier',
      h('div.tier-line', h('span.tier', `T${r.tier}`), ' ', h('span.tier-name', r.tierName)),
      r.fourEyes
        ? h('span.tag.tag-four', { title: 'Four eyes: two distinct approvers' }, `4-eyes ${r.approvals}/2`)
        : null,
      esc.length
        ? h(
            'div.esc',
            {
              title: esc
                .map(
                  (e) =>
                    `${new Date(e.at).toLocaleString()}: from tier ${e.fromTier}, ${e.cause === 'reviewer' ? `by ${view.app.nameOf(e.by)}` : `${e.cause === 'ack' ? 'acknowledge' : 'resolve'} deadline missed`}`,
                )
                .join('\n'),
            },
            escalationText(esc),
          )
        : null,
    ),
    h('td.col-sla', slaCell(r, t)),
    h(
      'td.col-num.col-age.mono.age',
      { dataset: { opened: String(r.openedAt) } },
      fmtDuration(t - r.openedAt, { short: true }),
    ),
    h('td.col-owner', owner),
  );
  return tr;
}

/** The row's next deadline (to claim or to decide) and its time left; "SLA missed" after an earlier miss. */
function slaCell(r, t) {
  const missed = r.slaMissed
    ? h(
        'span.sla-missed',
        { title: 'A deadline was missed at an earlier tier: this case counts against SLA attainment' },
        'SLA missed',
      )
    : null;
  if (!r.dueAt) return h('span.sla.sla-none', '—', missed);
  const which = !r.claimedBy && r.ackDueAt === r.dueAt ? 'ack' : 'resolve';
  const left = r.dueAt - t;
  const cls = slaClass(r.dueAt, r.dueAt - r.enteredTierAt, r.slaMissed);
  return h(
    `span.sla.sla-${cls}`,
    {
      dataset: { due: String(r.dueAt), window: String(r.dueAt - r.enteredTierAt), missed: r.slaMissed ? '1' : '' },
      title: `${which === 'ack' ? 'Acknowledge (claim)' : 'Resolve'} by ${new Date(r.dueAt).toLocaleString()}`,
    },
    h('span.sla-time', left < 0 ? `Breached ${fmtDuration(-left, { short: true })} ago` : fmtDuration(left)),
    h('span.sla-kind', which === 'ack' ? 'to claim' : 'to decide'),
    missed,
  );
}
