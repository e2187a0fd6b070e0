// The case page's vocabulary and small building blocks: labels, values, field lists, cards, meters, diffs.
import { fmtIso, h, humanize, setStyle } from './dom.js';
import { MASK } from './form.js';

export const HISTORY_LABEL = {
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
export function historyWho(e) {
  const name = e.byName || e.by;
  if (e.kind === 'lease-expired') return name ? h('span', ' · lease of ', h('bdi', name), ' ran out') : null;
  if (e.kind === 'expired' || (e.kind === 'escalated' && !e.by)) return h('span', ' · by the runtime');
  return name ? h('span', ' by ', h('bdi', name)) : null;
}

/** A step's status as a reviewer reads it: an episode that ended without running a step did not "pend". */
export function stepStatus(s, ep, c) {
  if (s.status === 'pending' && (ep.status !== 'active' || (c && c.state === 'rejected'))) return [s, 'not run'];
  return [s, s.status];
}

export const STATE_LABEL = {
  queued: 'Waiting for a reviewer',
  claimed: 'Claimed',
  approved: 'Approved',
  modified: 'Approved with changes',
  rejected: 'Rejected',
  expired: 'Expired',
};

export const EPISODE_STATE = {
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

export function scalar(v) {
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
export function fieldsView(obj, { cited = [], prefix = '' } = {}) {
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

export function card(title, ...children) {
  const opts = children[0] && children[0].constructor === Object ? children.shift() : {};
  return h(
    `section.card${opts.class ? `.${opts.class}` : ''}`,
    { 'aria-label': title, id: opts.id },
    h('header.card-head', h('h2', title), opts.aside || null),
    h('div.card-body', children),
  );
}

export function meter(value, band) {
  return h(
    `span.meter.meter-${band}`,
    setStyle(h('span.meter-fill'), '--w', `${Math.round(Math.max(0, Math.min(1, value)) * 100)}%`),
  );
}

export function diffTable(rows) {
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
