import { z } from 'zod';
import { EffectError } from '../../src/contracts/errors.ts';
import { defineHandlers } from '../../src/models/define.ts';
import { Rng, hash32 } from '../../src/base/rng.ts';
import { Metric, Region, Signal, Fields } from './contracts.ts';
import {
  SERVICES,
  UNKNOWN_SERVICES,
  ownerOf,
  onCallFor,
  UNITS,
  THRESHOLDS,
  CEILING,
  round,
  pickService,
} from './estate.ts';
import {
  RestartArgs,
  ScaleArgs,
  ExpandArgs,
  restartService,
  restoreTraffic,
  scaleService,
  revertScale,
  rollbackDeploy,
  rollForward,
  freezePipeline,
  unfreezePipeline,
  expandVolume,
  deleteVolume,
  restoreVolume,
  pageHuman,
} from './actions.ts';
import { plan } from './plan.ts';

// ---------------------------------------------------------------------------------------------
// The model
// ---------------------------------------------------------------------------------------------

export default defineHandlers<Signal, Fields>({
  signal: Signal,
  fields: Fields,

  async perceive(signal, ctx) {
    if (ctx.draw('catalogue') < 0.03) throw new EffectError('service catalogue timed out', { transient: true });
    const info = SERVICES[signal.service];
    if (!info) {
      throw new EffectError(`service '${signal.service}' is not in the service catalogue`, {
        transient: false,
        code: 'effect.unknown_service',
      });
    }
    const rng = new Rng(`incidents/enrich/${signal.alertId}/${signal.service}`);
    const replicas = rng.int(info.replicas[0], info.replicas[1]);
    const minReplicas = Math.max(2, Math.floor(info.replicas[0] / 2));
    const d = rng.next();
    // Incidents cluster after deploys: a third of alerts fire within three hours of one.
    const ageMinutes =
      d < 0.12 ? rng.int(3, 30) : d < 0.24 ? rng.int(31, 90) : d < 0.33 ? rng.int(91, 180) : rng.int(181, 14 * 24 * 60);
    const b = rng.next();
    const errorBudgetLeft = round(b < 0.12 ? rng.next() * 0.15 : 0.15 + rng.next() * 0.85, 2);
    const cpuPercent =
      signal.metric === 'cpu'
        ? Math.round(signal.value)
        : Math.round(signal.metric === 'latency_p99' ? 35 + rng.next() * 60 : 20 + rng.next() * 50);
    const dependencies = info.deps.map((name) => ({ name, owner: ownerOf(name), healthy: rng.next() >= 0.05 }));
    const vkind = rng.next();
    const volume =
      signal.metric === 'disk'
        ? {
            id: `vol-${hash32(`${signal.service}/${signal.region}/${vkind}`).toString(16).padStart(8, '0')}`,
            kind: vkind < 0.45 ? ('data' as const) : vkind < 0.75 ? ('logs' as const) : ('scratch' as const),
            sizeGb: rng.pick([50, 100, 200, 500, 1000]),
            attached: !(vkind >= 0.75 && rng.chance(0.75)),
          }
        : null;
    const onCall = onCallFor(signal.region, signal.alertId);
    const fields: Fields = {
      alertId: signal.alertId,
      service: signal.service,
      team: info.team,
      metric: signal.metric,
      unit: UNITS[signal.metric],
      value: signal.value,
      threshold: signal.threshold,
      breachRatio: round(signal.value / signal.threshold, 3),
      region: signal.region,
      requestedBy: signal.requestedBy ?? null,
      customerFacing: info.customerFacing,
      criticality: info.criticality,
      deploy: { version: signal.deployVersion, previousVersion: signal.previousVersion, ageMinutes },
      capacity: { replicas, minReplicas, cpuPercent },
      errorBudgetLeft,
      dependencies,
      volume,
      onCall: { id: onCall.id, name: onCall.name, phone: onCall.phone },
    };
    return {
      kind: 'alert',
      subject: `${signal.service}@${signal.region}`,
      ...(signal.requestedBy ? { requestedBy: signal.requestedBy } : {}),
      source: 'alertmanager',
      observedAt: ctx.now,
      fields: Fields.parse(fields),
      transforms: [
        {
          name: 'enrich-catalogue',
          by: 'incidents.perceive',
          note: `owner, criticality and dependencies of ${signal.service}`,
        },
        { name: 'enrich-deploys', by: 'incidents.perceive', note: `deploy history and capacity in ${signal.region}` },
        { name: 'enrich-slo', by: 'incidents.perceive', note: 'error budget from the SLO service' },
      ],
    };
  },

  async plan(observation) {
    return plan(observation.fields);
  },

  actions: {
    // Descriptions from arguments: shown instead of the planner's text when a reviewer edits them.
    restartService: {
      ...restartService,
      describe: (a: z.infer<typeof RestartArgs>) => `Rolling restart, ${a.maxUnavailable} at a time`,
    },
    restoreTraffic,
    scaleService: {
      ...scaleService,
      describe: (a: z.infer<typeof ScaleArgs>) => `Scale ${a.service} from ${a.from} to ${a.to} replicas`,
    },
    revertScale,
    rollbackDeploy,
    rollForward,
    freezePipeline,
    unfreezePipeline,
    expandVolume: {
      ...expandVolume,
      describe: (a: z.infer<typeof ExpandArgs>) => `Grow ${a.volumeId} to ${a.toGb} GB`,
    },
    deleteVolume,
    restoreVolume,
    pageHuman,
  },

  synthesize(rng, index) {
    const alertId = `ALR-${String(index).padStart(5, '0')}-${rng.int(0, 0xffff).toString(16).padStart(4, '0')}`;
    const service = rng.chance(0.022) ? rng.pick(UNKNOWN_SERVICES) : pickService(rng);
    const m = rng.next();
    const metric: Metric =
      m < 0.3 ? 'error_rate' : m < 0.55 ? 'latency_p99' : m < 0.75 ? 'cpu' : m < 0.9 ? 'memory' : 'disk';
    const threshold = rng.pick(THRESHOLDS[metric]);
    // Most alerts fire just over the line; some are well past it.
    const r = rng.next();
    let ratio =
      r < 0.25
        ? 1 + rng.next() * 0.1
        : r < 0.75
          ? 1.1 + rng.next() * 0.4
          : r < 0.95
            ? 1.5 + rng.next() * 1
            : 2.5 + rng.next() * 2;
    const ceiling = CEILING[metric];
    // Percentages saturate: past the ceiling the reading sits just under 100%.
    if (ceiling !== undefined && threshold * ratio > ceiling - 1) ratio = (ceiling - rng.next() * 2.5) / threshold;
    const value =
      metric === 'error_rate'
        ? round(threshold * ratio, 4)
        : metric === 'latency_p99'
          ? Math.round(threshold * ratio)
          : round(threshold * ratio, 1);
    const major = rng.int(2, 9);
    const minor = rng.int(0, 40);
    const patch = rng.int(0, 12);
    const deployVersion = `v${major}.${minor}.${patch}`;
    const previousVersion =
      patch > 0 && rng.chance(0.6)
        ? `v${major}.${minor}.${patch - 1}`
        : minor > 0
          ? `v${major}.${minor - 1}.${rng.int(0, 9)}`
          : `v${major - 1}.${rng.int(5, 30)}.${rng.int(0, 9)}`;
    const g = rng.next();
    const region: Region = g < 0.4 ? 'eu-west-1' : g < 0.65 ? 'eu-central-1' : g < 0.9 ? 'us-east-1' : 'ap-southeast-1';
    // A fifth of alerts were acknowledged by the on-call engineer, who handed them to the agent.
    const requestedBy = rng.chance(0.2) ? onCallFor(region, alertId).id : undefined;
    return {
      alertId,
      service,
      metric,
      value,
      threshold,
      deployVersion,
      previousVersion,
      region,
      ...(requestedBy ? { requestedBy } : {}),
    };
  },
});
