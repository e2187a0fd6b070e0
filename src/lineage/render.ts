import type { Lineage } from './lineage.ts';

export interface RenderStyle {
  bold(s: string): string;
  dim(s: string): string;
}

const plain: RenderStyle = { bold: (s) => s, dim: (s) => s };
const iso = (ms: number | null | undefined) => (ms === null || ms === undefined ? '—' : new Date(ms).toISOString());
const seq = (n: number | null | undefined) => (n === null || n === undefined ? '' : `#${n}`);

/** The lineage as text for a terminal: one section per stage, audit entry numbers as `#n`. */
export function renderLineage(l: Lineage, style: RenderStyle = plain): string {
  const out: string[] = [];
  const line = (s = '') => out.push(s);
  const h = (s: string) => line(style.bold(s));

  h(
    `Lineage of ${l.episodeId}${l.id !== l.episodeId ? ` (asked for ${l.id})` : ''} · model ${l.model || '—'} · ${l.state ?? 'unknown state'} · outcome ${l.outcome ?? '—'}`,
  );
  line(style.dim(`started ${iso(l.startedAt)} · ended ${iso(l.endedAt)}`));
  const history =
    l.history.journal === 'kept'
      ? `journal kept (${l.history.entries} entries)`
      : l.history.journal === 'compacted'
        ? `journal compacted at ${iso(l.history.compactedAt)} (retention ${l.history.keepDays} days): ${l.history.entries} entries replaced by the audit summary`
        : 'no journal';
  line(
    style.dim(
      `${history} · legal hold: ${l.hold ? `yes, since ${iso(l.hold.at)} by ${l.hold.by}: ${l.hold.reason}` : 'none'}`,
    ),
  );

  line();
  h('Observations (sources)');
  if (l.observations.length === 0) line('  none recorded');
  for (const o of l.observations) {
    line(
      `  ${o.id}  source ${o.source} · observed ${o.observedAt}${o.journalSeq !== null ? ` · journal ${seq(o.journalSeq)} at ${iso(o.at)}` : ''}`,
    );
    line(`    ${o.kind}: ${o.subject}`);
    for (const t of o.transforms)
      line(style.dim(`    transform ${t.name} by ${t.by} at ${t.at}${t.note ? ` (${t.note})` : ''}`));
  }

  line();
  h('Plans');
  if (l.plans.length === 0) line('  none recorded');
  for (const p of l.plans) {
    const who =
      p.origin === 'reviewer'
        ? `modified by ${p.by.join(', ') || 'a reviewer'}`
        : p.origin === 'fallback'
          ? 'policy fallback'
          : `planner ${p.planner}`;
    line(
      `  ${p.id}  ${who} · confidence ${p.confidence} · risk ${p.riskScore}${p.journalSeq !== null ? ` · journal ${seq(p.journalSeq)}` : ''}`,
    );
    line(`    actions: ${p.actions.map((a) => a.type).join(' → ')}`);
    line(`    cites: ${p.citedInputs.length ? p.citedInputs.join(', ') : 'nothing'}`);
    line(`    rationale: ${p.rationale}`);
  }

  line();
  h('Gate decisions');
  if (l.decisions.length === 0) line('  none');
  for (const d of l.decisions) {
    line(
      `  ${seq(d.auditSeq)} ${iso(d.at)}  ${d.outcome}${d.tier ? ` (tier ${d.tier})` : ''} · rule ${d.ruleId} · policy ${d.policyVersion}${d.planId ? ` · plan ${d.planId}` : ''}`,
    );
    for (const r of d.reasons) line(`    - ${r}`);
    if (d.inputs)
      line(
        style.dim(
          `    inputs: ${d.inputs.observationId} from ${d.inputs.source}, observed ${d.inputs.observedAt}; cited ${d.inputs.cited.join(', ') || 'nothing'}`,
        ),
      );
  }

  line();
  h('Reviews');
  if (l.reviews.length === 0) line('  none');
  for (const r of l.reviews) {
    const tiers = r.tiers
      .map((t) => `${t.n}. ${t.name} (${t.roles.join('/')}${t.fourEyes ? ', four eyes' : ''})`)
      .join(' → ');
    line(
      `  ${r.caseId}  ${r.kind} case · ${r.state ?? '—'} · opened ${iso(r.openedAt)} at tier ${r.openedTier ?? '—'}, now tier ${r.tier ?? '—'}`,
    );
    if (r.decision)
      line(`    opened on: ${r.decision.outcome} · rule ${r.decision.ruleId} · ${r.decision.reasons.join('; ')}`);
    if (tiers) line(style.dim(`    tiers: ${tiers}`));
    for (const e of r.events)
      line(
        `    ${seq(e.auditSeq)} ${iso(e.at)}  ${e.kind}${e.by !== 'runtime' ? ` by ${e.by}` : ''}${e.tier !== null ? ` (tier ${e.tier})` : ''}${e.note ? `: ${e.note}` : ''}`,
      );
    line(
      `    reviewers: ${r.reviewers.join(', ') || 'none'}${r.resolution ? ` · resolution ${r.resolution.outcome} by ${r.resolution.decidedBy.join(', ') || '—'} at ${iso(r.resolution.at)}` : ''}`,
    );
  }

  line();
  h('Actions → effects');
  if (l.actions.length === 0) line('  none');
  for (const a of l.actions) {
    const effect = a.effect
      ? `effect applied ${a.effect.applications}× at ${iso(a.effect.at)}`
      : 'no effect in the ledger';
    line(
      `  ${a.step + 1}. ${a.type}  key ${a.key} · ${a.executed ? `executed ${seq(a.executed.auditSeq)} at ${iso(a.executed.at)}` : 'not executed'} · ${effect}`,
    );
    const c = a.compensation;
    if (c.compensated)
      line(
        `     compensated${c.type ? ` by ${c.type}` : ''} ${seq(c.compensated.auditSeq)} at ${iso(c.compensated.at)} · key ${c.key}${c.effect ? ` · effect applied ${c.effect.applications}×` : ''}`,
      );
    else if (c.type) line(style.dim(`     compensation ${c.type} (key ${c.key}): not run`));
  }

  line();
  h('Outcome');
  line(
    l.outcomeEntry
      ? `  ${seq(l.outcomeEntry.auditSeq)} ${iso(l.outcomeEntry.at)}  ${l.outcomeEntry.outcome}${l.outcomeEntry.error ? `: ${l.outcomeEntry.error}` : ''}`
      : '  not finished',
  );
  for (const o of l.other)
    line(`  ${seq(o.auditSeq)} ${iso(o.at)}  ${o.kind} by ${o.by}${o.actor !== l.episodeId ? ` (${o.actor})` : ''}`);

  line();
  line(style.dim(`audit entries: ${l.auditSeqs.map((s) => `#${s}`).join(' ') || 'none'}`));
  return out.join('\n');
}
