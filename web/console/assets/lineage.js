import { fmtIso, fmtTime, h } from './dom.js';

/** Shows audit entry `n` in the case's audit trail (the console routes on the hash, so no `#audit` link). */
function showAudit(n) {
  const box = document.getElementById('audit');
  if (!box) return;
  const row = box.querySelector(`tr[data-seq="${n}"]`);
  (row ?? box).scrollIntoView({ block: 'center' });
  if (row) {
    row.classList.add('flash');
    setTimeout(() => row.classList.remove('flash'), 1600);
  }
}

const seq = (n) =>
  n === null || n === undefined
    ? null
    : h(
        'button.linklike.mono.lineage-seq',
        { type: 'button', title: `audit entry ${n}: show it in the audit trail`, onclick: () => showAudit(n) },
        `#${n}`,
      );

function stage(title, count, ...body) {
  return h(
    'div.lineage-stage',
    { dataset: { stage: title.toLowerCase() } },
    h('div.lineage-stage-title', title, count !== null ? h('span.faint', ` · ${count}`) : null),
    body,
  );
}

/**
 * The lineage of the case's episode (GET /api/cases/<id>/lineage): sources → plans → gate → reviews
 * → actions → effects, each with its audit entry numbers.
 */
export function lineageView(l) {
  const history =
    l.history.journal === 'compacted'
      ? `Journal compacted ${fmtTime(l.history.compactedAt)} (retention ${l.history.keepDays} days): ${l.history.entries} entries summarised; the audit entries below are intact.`
      : l.history.journal === 'kept'
        ? `Journal kept: ${l.history.entries} entries.`
        : 'No journal.';
  return h(
    'div.lineage',
    h(
      'p.small.faint',
      history,
      l.hold ? h('strong', ` Legal hold since ${fmtTime(l.hold.at)} by ${l.hold.by}: ${l.hold.reason}.`) : null,
    ),
    stage(
      'Sources',
      l.observations.length,
      l.observations.map((o) =>
        h(
          'div.lineage-item',
          h(
            'div',
            h('code', o.source),
            ` observed ${fmtIso(o.observedAt)}`,
            o.journalSeq !== null ? h('span.faint', ` · journal #${o.journalSeq}`) : null,
          ),
          h(
            'ul.lineage-transforms',
            o.transforms.map((t) => h('li.small.faint', `${t.name} by ${t.by}${t.note ? ` — ${t.note}` : ''}`)),
          ),
        ),
      ),
    ),
    stage(
      'Plans',
      l.plans.length,
      l.plans.map((p) =>
        h(
          'div.lineage-item',
          h(
            'div',
            h('code', p.id),
            ` · ${p.origin === 'reviewer' ? `modified by ${p.by.join(', ') || 'a reviewer'}` : p.origin === 'fallback' ? 'policy fallback' : p.planner} · confidence ${p.confidence}`,
          ),
          h('div.small', p.actions.map((a) => a.type).join(' → ')),
          h('div.small.faint', `cites ${p.citedInputs.join(', ') || 'nothing'}`),
          h('div.small', p.rationale),
        ),
      ),
    ),
    stage(
      'Gate',
      l.decisions.length,
      l.decisions.map((d) =>
        h(
          'div.lineage-item',
          { dataset: { rule: d.ruleId } },
          h(
            'div',
            seq(d.auditSeq),
            ` ${d.outcome}${d.tier ? ` (tier ${d.tier})` : ''} · `,
            h('code', d.ruleId),
            h('span.faint', ` · policy ${d.policyVersion}`),
          ),
          h(
            'ul.small',
            d.reasons.map((r) => h('li', r)),
          ),
        ),
      ),
    ),
    stage(
      'Reviews',
      l.reviews.length,
      l.reviews.map((r) =>
        h(
          'div.lineage-item',
          h(
            'div',
            h('code', r.caseId),
            ` · ${r.state || '—'}`,
            r.resolution ? ` · ${r.resolution.outcome} by ${r.resolution.decidedBy.join(', ') || '—'}` : '',
          ),
          h(
            'ul.small',
            r.events.map((e) =>
              h(
                'li',
                seq(e.auditSeq),
                ` ${fmtTime(e.at)} ${e.kind}${e.by !== 'runtime' ? ` by ${e.by}` : ''}${e.tier ? ` · tier ${e.tier}` : ''}`,
              ),
            ),
          ),
        ),
      ),
    ),
    stage(
      'Actions → effects',
      l.actions.length,
      l.actions.map((a) =>
        h(
          'div.lineage-item',
          h(
            'div',
            `${a.step + 1}. `,
            h('code', a.type),
            ' ',
            a.executed ? seq(a.executed.auditSeq) : h('span.faint', 'not executed'),
            a.effect ? h('span.faint', ` · effect ${a.effect.applications}× at ${fmtTime(a.effect.at)}`) : null,
          ),
          a.compensation.compensated
            ? h('div.small', `compensated by ${a.compensation.type || '—'} `, seq(a.compensation.compensated.auditSeq))
            : a.compensation.type
              ? h('div.small.faint', `compensation ${a.compensation.type}: not run`)
              : null,
        ),
      ),
    ),
    stage(
      'Outcome',
      null,
      l.outcomeEntry
        ? h(
            'div.lineage-item',
            seq(l.outcomeEntry.auditSeq),
            ` ${l.outcomeEntry.outcome} at ${fmtTime(l.outcomeEntry.at)}`,
          )
        : h('div.faint', 'Not finished yet.'),
    ),
  );
}
