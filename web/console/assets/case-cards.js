// The case page's evidence: the deadlines, the banner, and one card per question a reviewer asks.
import { fmtDuration, fmtIso, fmtTime, h, humanize, now, riskBand, slaClass } from './dom.js';
import {
  card,
  diffTable,
  EPISODE_STATE,
  fieldsView,
  HISTORY_LABEL,
  historyWho,
  meter,
  scalar,
  STATE_LABEL,
  stepStatus,
} from './case-format.js';

/** The case's open deadlines (to claim, to decide, the lease), each with its time left. */
export function slaBox(c) {
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

/** One line on where the case stands for this reviewer; `nameOf` turns a reviewer id into a name. */
export function banner(c, you, episode, nameOf) {
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
      h('bdi', c.claim.name || nameOf(c.claim.reviewer)),
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

export function whyCard(c) {
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

export function planCard(c) {
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
      p.actions.map((a) => actionItem(a)),
    ),
  );
}

export function actionItem(a) {
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

export function changesCard(c) {
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
          diffTable(
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
        c.proposedPlan.actions.map((a) => actionItem(a)),
      ),
    ),
  );
}

export function observationCard(c) {
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
      h('div.prov-line', h('span.prov-k', 'Observed'), h('span', { title: prov.observedAt }, fmtIso(prov.observedAt))),
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

export function historyCard(c) {
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

export function episodeCard(ep, c) {
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

/** The audit trail's entries as a table. */
export function auditTable(entries) {
  if (!entries.length) return h('p.faint', 'No entries yet.');
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
  return h(
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
  );
}
