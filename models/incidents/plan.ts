/** The incidents model: planning from an observation (diagnosis, risk, confidence, the proposed actions). */
import { type PlanDraft } from '../../src/models/define.ts';
import { Fields } from './contracts.ts';
import { REGION_BLAST, round, clamp01, formatAge, formatValue } from './estate.ts';
import { PageArgs } from './actions.ts';

// ---------------------------------------------------------------------------------------------
// Planning
// ---------------------------------------------------------------------------------------------

type Action = PlanDraft['actions'][number];

export function plan(f: Fields): PlanDraft {
  const cited = new Set<string>([
    'metric',
    'value',
    'threshold',
    'breachRatio',
    'customerFacing',
    'errorBudgetLeft',
    'region',
  ]);
  const notes: string[] = [];
  const actions: Action[] = [];
  const { replicas } = f.capacity;
  const severity = clamp01((f.breachRatio - 1) / 1.5);
  const sev: PageArgs['severity'] =
    f.criticality === 'critical' && f.customerFacing ? 'sev1' : f.customerFacing ? 'sev2' : 'sev3';
  const versionChanged = f.deploy.version !== f.deploy.previousVersion;
  const recentDeploy = versionChanged && f.deploy.ageMinutes <= 180;
  const sickDep = f.dependencies.find((d) => !d.healthy);
  let confidence: number;
  let actionRisk = 0;
  let remedy: string;

  const what = `${f.service} (${f.region}): ${f.metric} at ${formatValue(f.metric, f.value)} against a threshold of ${formatValue(f.metric, f.threshold)} (${round(f.breachRatio, 2)}×)`;

  if (
    sickDep &&
    (f.metric === 'error_rate' || f.metric === 'latency_p99') &&
    !(recentDeploy && f.deploy.ageMinutes <= 30)
  ) {
    // The fault is upstream: restarting or scaling this service will not help.
    cited.add('dependencies');
    notes.push(`Dependency ${sickDep.name} (owned by ${sickDep.owner}) is unhealthy, which explains the symptom`);
    actions.push({
      type: 'pageHuman',
      args: {
        team: sickDep.owner,
        severity: sev,
        summary: `${sickDep.name} unhealthy; ${f.service} ${f.metric} at ${round(f.breachRatio, 2)}× threshold`,
        service: sickDep.name,
      },
      description: `Page ${sickDep.owner}, owners of ${sickDep.name}`,
    });
    confidence = 0.9;
    remedy = `Page the ${sickDep.owner} on-call about ${sickDep.name}; no change to ${f.service}.`;
  } else if (recentDeploy && f.metric !== 'disk' && f.metric !== 'cpu') {
    cited.add('deploy.version').add('deploy.previousVersion').add('deploy.ageMinutes');
    notes.push(
      `Version ${f.deploy.version} went out ${f.deploy.ageMinutes} min ago, replacing ${f.deploy.previousVersion}`,
    );
    actions.push(
      {
        type: 'freezePipeline',
        args: { service: f.service, reason: `alert ${f.alertId}: rolling back ${f.deploy.version}` },
        description: 'Stop the pipeline from redeploying the bad version',
      },
      {
        type: 'rollbackDeploy',
        args: { service: f.service, region: f.region, from: f.deploy.version, to: f.deploy.previousVersion },
        description: `Roll back to ${f.deploy.previousVersion}`,
      },
    );
    confidence = f.deploy.ageMinutes <= 30 ? 0.94 : f.deploy.ageMinutes <= 90 ? 0.86 : 0.72;
    if (f.metric === 'memory') confidence -= 0.04;
    actionRisk = f.deploy.ageMinutes > 90 ? 0.15 : 0.05;
    remedy = `Freeze the pipeline and roll ${f.service} back from ${f.deploy.version} to ${f.deploy.previousVersion}.`;
  } else if (f.metric === 'cpu' || f.metric === 'latency_p99') {
    cited.add('capacity.replicas').add('capacity.cpuPercent');
    // Size for the load: enough replicas to bring the metric back to ~80% of its threshold.
    // When latency is not CPU-bound, more replicas are only a stopgap: add a modest 30% of headroom.
    const cpuBound = f.metric === 'cpu' || f.capacity.cpuPercent >= 70;
    const factor = cpuBound ? Math.min(3.5, Math.max(1.25, f.breachRatio / 0.8)) : 1.3;
    const to = Math.max(replicas + 1, Math.ceil(replicas * factor));
    notes.push(
      f.metric === 'cpu'
        ? `CPU saturation across ${replicas} replicas; sizing for 80% of the threshold needs ${to}`
        : cpuBound
          ? `Latency with CPU at ${f.capacity.cpuPercent}% across ${replicas} replicas points to saturation; sizing for 80% of the threshold needs ${to}`
          : `Latency with CPU at only ${f.capacity.cpuPercent}%, so the bottleneck is probably elsewhere; a modest scale-out buys headroom while someone looks`,
    );
    actions.push({
      type: 'scaleService',
      args: { service: f.service, region: f.region, from: replicas, to },
      description: `Scale out from ${replicas} to ${to} replicas`,
    });
    confidence = cpuBound ? 0.9 : 0.62;
    actionRisk = clamp01((to - replicas) / 40);
    remedy = `Scale ${f.service} from ${replicas} to ${to} replicas.`;
    if (recentDeploy) {
      cited.add('deploy.ageMinutes');
      confidence -= 0.1;
      notes.push(`Version ${f.deploy.version}, deployed ${f.deploy.ageMinutes} min ago, may also be involved`);
    }
  } else if (f.metric === 'memory' || f.metric === 'error_rate') {
    cited.add('capacity.replicas');
    const maxUnavailable = Math.max(1, Math.floor(replicas / 4));
    const thin = replicas <= 3;
    if (f.metric === 'memory')
      notes.push(`Memory climbing with no deploy for ${formatAge(f.deploy.ageMinutes)} looks like a leak`);
    else
      notes.push(
        `No recent deploy (last ${formatAge(f.deploy.ageMinutes)} ago) and dependencies healthy; a restart clears stuck workers`,
      );
    if (thin || (f.metric === 'memory' && f.breachRatio >= 1.12)) {
      const to = replicas + Math.max(1, Math.ceil(replicas / 3));
      notes.push(
        thin
          ? `With only ${replicas} replicas a rolling restart would cut capacity, so scale to ${to} first`
          : `At ${round(f.breachRatio, 2)}× the memory threshold there is no headroom for a rolling restart, so scale to ${to} first`,
      );
      actions.push({
        type: 'scaleService',
        args: { service: f.service, region: f.region, from: replicas, to },
        description: `Add headroom: ${replicas} → ${to} replicas`,
      });
      remedy = `Scale ${f.service} to ${to} replicas, then do a rolling restart.`;
    } else {
      remedy = `Rolling restart of ${f.service}, ${maxUnavailable} replica(s) at a time.`;
    }
    actions.push({
      type: 'restartService',
      args: { service: f.service, region: f.region, maxUnavailable },
      description: `Rolling restart, ${maxUnavailable} at a time`,
    });
    confidence = f.metric === 'memory' ? 0.88 : 0.8;
    actionRisk = thin ? 0.15 : 0.05;
  } else {
    // Disk.
    const vol = f.volume!;
    cited.add('volume');
    if (vol.kind === 'scratch' && !vol.attached) {
      notes.push(`Volume ${vol.id} is a ${vol.sizeGb} GB scratch volume no longer attached to any replica`);
      actions.push({
        type: 'deleteVolume',
        args: { service: f.service, region: f.region, volumeId: vol.id },
        description: `Delete orphaned scratch volume ${vol.id}`,
      });
      confidence = 0.66;
      actionRisk = 0.3;
      remedy = `Delete the orphaned volume ${vol.id}.`;
    } else if (vol.kind === 'scratch') {
      notes.push(`Volume ${vol.id} holds scratch files that a restart clears`);
      actions.push({
        type: 'restartService',
        args: { service: f.service, region: f.region, maxUnavailable: Math.max(1, Math.floor(replicas / 4)) },
        description: 'Rolling restart to clear scratch space',
      });
      confidence = 0.8;
      remedy = `Rolling restart of ${f.service} to clear scratch space.`;
    } else {
      const toGb = Math.ceil((vol.sizeGb * f.breachRatio * 1.5) / 50) * 50;
      notes.push(`The ${vol.kind} volume ${vol.id} of ${vol.sizeGb} GB is filling up`);
      actions.push({
        type: 'expandVolume',
        args: { service: f.service, region: f.region, volumeId: vol.id, fromGb: vol.sizeGb, toGb },
        description: `Grow ${vol.id} from ${vol.sizeGb} GB to ${toGb} GB`,
      });
      confidence = vol.kind === 'logs' ? 0.9 : 0.84;
      actionRisk = vol.kind === 'data' ? 0.1 : 0;
      remedy = `Grow ${vol.id} from ${vol.sizeGb} GB to ${toGb} GB.`;
    }
  }

  // Marginal breaches may be noise; a burnt error budget leaves no room for a wrong move.
  if (f.breachRatio < 1.05) {
    confidence -= 0.08;
    notes.push('The breach is marginal and may be noise');
  }
  if (f.errorBudgetLeft < 0.15) {
    confidence -= 0.06;
    notes.push(`Only ${Math.round(f.errorBudgetLeft * 100)}% of the error budget is left`);
  }
  if (f.requestedBy !== null) {
    cited.add('requestedBy');
    confidence += 0.03;
    notes.push(`On-call engineer ${f.requestedBy} acknowledged the alert and handed it over`);
  }
  confidence = round(clamp01(confidence), 2);

  const exposure = f.customerFacing
    ? f.criticality === 'critical'
      ? 1
      : 0.6
    : f.criticality === 'critical'
      ? 0.5
      : 0.15;
  const budgetBurn = clamp01(1 - f.errorBudgetLeft);
  const blast = REGION_BLAST[f.region];
  const score = clamp01(
    0.02 + 0.22 * exposure + 0.18 * budgetBurn * budgetBurn + 0.1 * blast + 0.12 * severity + actionRisk,
  );
  const factors = [
    {
      name: 'customer-exposure',
      value: exposure,
      note: `${f.customerFacing ? 'customer-facing' : 'internal'}, ${f.criticality}`,
    },
    {
      name: 'error-budget-burn',
      value: round(budgetBurn, 2),
      note: `${Math.round(f.errorBudgetLeft * 100)}% of the budget left`,
    },
    { name: 'region-blast-radius', value: blast, note: f.region },
    { name: 'breach-severity', value: round(severity, 2), note: `${round(f.breachRatio, 2)}× threshold` },
    { name: 'change-size', value: round(actionRisk, 2), note: actions.map((a) => a.type).join(' then ') },
  ];

  return {
    actions,
    confidence,
    rationale: `${what}. ${notes.join('. ')}. ${remedy}`,
    risk: { score: round(score, 3), factors },
    citedInputs: [...cited],
  };
}
