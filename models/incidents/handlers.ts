import { z } from 'zod';
import { sensitive } from '../../src/contracts/classification.ts';
import { EffectError } from '../../src/contracts/errors.ts';
import { defineHandlers, simulatedAction, type PlanDraft } from '../../src/models/define.ts';
import { Rng, drawFor, hash32 } from '../../src/base/rng.ts';

// ---------------------------------------------------------------------------------------------
// Contracts
// ---------------------------------------------------------------------------------------------

const Metric = z.enum(['error_rate', 'latency_p99', 'cpu', 'memory', 'disk']);
type Metric = z.infer<typeof Metric>;
const Region = z.enum(['eu-west-1', 'eu-central-1', 'us-east-1', 'ap-southeast-1']);
type Region = z.infer<typeof Region>;
const Version = z.string().regex(/^v\d+\.\d+\.\d+$/, 'expected a version such as v2.14.3');

/** A firing alert from the monitoring system. */
const Signal = z.object({
  alertId: z.string().min(1),
  service: z.string().min(1),
  metric: Metric,
  /** Observed value, in the metric's unit (ratio for error_rate, ms for latency_p99, % otherwise). */
  value: z.number().nonnegative(),
  threshold: z.number().positive(),
  deployVersion: Version,
  previousVersion: Version,
  region: Region,
  /** The on-call engineer, when they acknowledged the alert and handed it to the agent. */
  requestedBy: z.string().min(1).optional(),
});
type Signal = z.infer<typeof Signal>;

const Criticality = z.enum(['critical', 'standard', 'internal']);
type Criticality = z.infer<typeof Criticality>;

const Fields = z.object({
  alertId: z.string(),
  service: z.string(),
  team: z.string(),
  metric: Metric,
  unit: z.enum(['ratio', 'ms', 'percent']),
  value: z.number(),
  threshold: z.number(),
  /** value / threshold. */
  breachRatio: z.number(),
  region: Region,
  requestedBy: z.string().nullable(),
  customerFacing: z.boolean(),
  criticality: Criticality,
  deploy: z.object({ version: z.string(), previousVersion: z.string(), ageMinutes: z.number().int().nonnegative() }),
  capacity: z.object({
    replicas: z.number().int().positive(),
    minReplicas: z.number().int().positive(),
    cpuPercent: z.number(),
  }),
  /** Share of the 30-day error budget still left, 0..1. */
  errorBudgetLeft: z.number().min(0).max(1),
  dependencies: z.array(z.object({ name: z.string(), owner: z.string(), healthy: z.boolean() })),
  /** The volume behind a disk alert, else null. */
  volume: z
    .object({
      id: z.string(),
      kind: z.enum(['data', 'logs', 'scratch']),
      sizeGb: z.number().int().positive(),
      attached: z.boolean(),
    })
    .nullable(),
  onCall: z.object({
    id: z.string(),
    name: sensitive(z.string()),
    phone: sensitive(z.string()),
  }),
});
type Fields = z.infer<typeof Fields>;

// ---------------------------------------------------------------------------------------------
// The simulated estate: service catalogue, deploy history, capacity and on-call rota
// ---------------------------------------------------------------------------------------------

interface ServiceInfo {
  team: string;
  customerFacing: boolean;
  criticality: Criticality;
  replicas: [number, number];
  deps: string[];
  /** Relative alert frequency. */
  weight: number;
}

const SERVICES: Record<string, ServiceInfo> = {
  'checkout-api': {
    team: 'checkout',
    customerFacing: true,
    criticality: 'critical',
    replicas: [8, 24],
    deps: ['payments-gateway', 'inventory-api', 'postgres-orders'],
    weight: 9,
  },
  'payments-gateway': {
    team: 'payments',
    customerFacing: true,
    criticality: 'critical',
    replicas: [6, 16],
    deps: ['psp-adyen', 'postgres-payments'],
    weight: 7,
  },
  'cart-service': {
    team: 'checkout',
    customerFacing: true,
    criticality: 'critical',
    replicas: [6, 20],
    deps: ['redis-cart', 'inventory-api'],
    weight: 7,
  },
  'auth-service': {
    team: 'identity',
    customerFacing: true,
    criticality: 'critical',
    replicas: [6, 18],
    deps: ['postgres-identity', 'redis-sessions'],
    weight: 6,
  },
  'search-api': {
    team: 'discovery',
    customerFacing: true,
    criticality: 'standard',
    replicas: [10, 36],
    deps: ['elasticsearch-main', 'redis-cache'],
    weight: 10,
  },
  recommendations: {
    team: 'discovery',
    customerFacing: true,
    criticality: 'standard',
    replicas: [4, 20],
    deps: ['feature-store', 'redis-cache'],
    weight: 8,
  },
  'image-resizer': {
    team: 'media',
    customerFacing: true,
    criticality: 'standard',
    replicas: [3, 30],
    deps: ['s3-media'],
    weight: 7,
  },
  'shipping-quotes': {
    team: 'fulfilment',
    customerFacing: true,
    criticality: 'standard',
    replicas: [2, 8],
    deps: ['carrier-dhl-api', 'carrier-ups-api'],
    weight: 6,
  },
  'inventory-api': {
    team: 'fulfilment',
    customerFacing: false,
    criticality: 'critical',
    replicas: [4, 12],
    deps: ['postgres-inventory', 'kafka-events'],
    weight: 7,
  },
  'notifications-worker': {
    team: 'messaging',
    customerFacing: false,
    criticality: 'standard',
    replicas: [2, 10],
    deps: ['kafka-events', 'sendgrid-api'],
    weight: 8,
  },
  'pricing-engine': {
    team: 'pricing',
    customerFacing: false,
    criticality: 'standard',
    replicas: [3, 12],
    deps: ['postgres-catalog', 'redis-cache'],
    weight: 6,
  },
  'reporting-etl': {
    team: 'data',
    customerFacing: false,
    criticality: 'internal',
    replicas: [2, 6],
    deps: ['postgres-warehouse', 'kafka-events'],
    weight: 5,
  },
  'admin-portal': {
    team: 'backoffice',
    customerFacing: false,
    criticality: 'internal',
    replicas: [2, 4],
    deps: ['auth-service', 'postgres-orders'],
    weight: 4,
  },
};
const SERVICE_NAMES = Object.keys(SERVICES);
const SERVICE_WEIGHT = SERVICE_NAMES.reduce((s, n) => s + SERVICES[n]!.weight, 0);
/** Names that still fire alerts but are no longer in the catalogue (decommissioned, renamed, typos). */
const UNKNOWN_SERVICES = [
  'legacy-fax-gateway',
  'billing-v1',
  'search-api-canary-old',
  'promo-banner-svc',
  'checkout-api-blue',
];

const DEPENDENCY_OWNER: Record<string, string> = {
  'psp-adyen': 'payments',
  'payments-gateway': 'payments',
  'inventory-api': 'fulfilment',
  'auth-service': 'identity',
  'elasticsearch-main': 'discovery',
  'feature-store': 'data',
  'kafka-events': 'platform',
  'redis-cart': 'platform',
  'redis-cache': 'platform',
  'redis-sessions': 'platform',
  's3-media': 'platform',
  'sendgrid-api': 'messaging',
  'carrier-dhl-api': 'fulfilment',
  'carrier-ups-api': 'fulfilment',
};
const ownerOf = (dep: string) => DEPENDENCY_OWNER[dep] ?? (dep.startsWith('postgres-') ? 'dba' : 'platform');

const REGION_BLAST: Record<Region, number> = {
  'eu-west-1': 1,
  'us-east-1': 0.8,
  'eu-central-1': 0.6,
  'ap-southeast-1': 0.4,
};

/** The SRE on-call rota: who holds the pager, per region. Personal data: name and phone. */
const ON_CALL: { id: string; name: string; phone: string; regions: Region[] }[] = [
  { id: 'r-noah', name: 'Noah Fischer', phone: '+49 151 2384 7716', regions: ['eu-central-1', 'eu-west-1'] },
  { id: 'r-priya', name: 'Priya Raman', phone: '+44 7700 918 422', regions: ['eu-west-1', 'us-east-1'] },
  { id: 'r-lukas', name: 'Lukas Brandt', phone: '+49 160 9921 0453', regions: ['eu-central-1'] },
  { id: 'r-mei', name: 'Mei Tanaka', phone: '+65 8123 4419', regions: ['ap-southeast-1'] },
  { id: 'r-carlos', name: 'Carlos Medina', phone: '+1 415 555 0147', regions: ['us-east-1'] },
];

/** Who holds the pager for a region when an alert fires (the rota rotates through the eligible people). */
function onCallFor(region: Region, alertId: string): (typeof ON_CALL)[number] {
  const rota = ON_CALL.filter((o) => o.regions.includes(region));
  return rota[hash32(`${region}/${alertId}`) % rota.length]!;
}

const UNITS: Record<Metric, Fields['unit']> = {
  error_rate: 'ratio',
  latency_p99: 'ms',
  cpu: 'percent',
  memory: 'percent',
  disk: 'percent',
};
/** Alert thresholds per metric (unit as above). */
const THRESHOLDS: Record<Metric, number[]> = {
  error_rate: [0.01, 0.02, 0.05],
  latency_p99: [300, 500, 800, 1200],
  cpu: [75, 80, 85],
  memory: [80, 85, 90],
  disk: [80, 85, 90],
};
/** Hard physical ceilings of percentage metrics. */
const CEILING: Partial<Record<Metric, number>> = { cpu: 100, memory: 100, disk: 100 };

/** Share of rollback targets whose image the registry garbage-collected. */
const MISSING_IMAGE_SHARE = 0.02;

const round = (x: number, digits: number) => Math.round(x * 10 ** digits) / 10 ** digits;
const clamp01 = (x: number) => Math.min(1, Math.max(0, x));

function pickService(rng: Rng): string {
  let x = rng.next() * SERVICE_WEIGHT;
  for (const n of SERVICE_NAMES) {
    x -= SERVICES[n]!.weight;
    if (x < 0) return n;
  }
  return SERVICE_NAMES[SERVICE_NAMES.length - 1]!;
}

function formatAge(minutes: number): string {
  if (minutes < 120) return `${minutes} min`;
  if (minutes < 48 * 60) return `${Math.round(minutes / 60)} h`;
  return `${Math.round(minutes / 1440)} days`;
}

function formatValue(metric: Metric, v: number): string {
  if (metric === 'error_rate') return `${round(v * 100, 2)}%`;
  if (metric === 'latency_p99') return `${Math.round(v)} ms`;
  return `${round(v, 1)}%`;
}

// ---------------------------------------------------------------------------------------------
// Actions
// ---------------------------------------------------------------------------------------------

const ServiceName = z.string().min(1);

const RestartArgs = z.object({
  service: ServiceName,
  region: Region,
  /** Rolling restart: at most this many replicas out of rotation at once. */
  maxUnavailable: z.number().int().positive(),
});
type RestartArgs = z.infer<typeof RestartArgs>;

const ScaleArgs = z
  .object({ service: ServiceName, region: Region, from: z.number().int().positive(), to: z.number().int().positive() })
  .refine((a) => a.from !== a.to, { message: 'from and to must differ' });
type ScaleArgs = z.infer<typeof ScaleArgs>;

const DeployArgs = z
  .object({ service: ServiceName, region: Region, from: Version, to: Version })
  .refine((a) => a.from !== a.to, { message: 'from and to must differ' });
type DeployArgs = z.infer<typeof DeployArgs>;

const PipelineArgs = z.object({ service: ServiceName, reason: z.string().min(1) });
type PipelineArgs = z.infer<typeof PipelineArgs>;

const VolumeArgs = z.object({ service: ServiceName, region: Region, volumeId: z.string().min(1) });
type VolumeArgs = z.infer<typeof VolumeArgs>;

const ExpandArgs = z
  .object({
    service: ServiceName,
    region: Region,
    volumeId: z.string().min(1),
    fromGb: z.number().int().positive(),
    toGb: z.number().int().positive(),
  })
  .refine((a) => a.toGb > a.fromGb, { message: 'a volume can only grow' });
type ExpandArgs = z.infer<typeof ExpandArgs>;

const PageArgs = z.object({
  team: z.string().min(1),
  severity: z.enum(['sev1', 'sev2', 'sev3']),
  summary: z.string().min(1),
  service: ServiceName.optional(),
});
type PageArgs = z.infer<typeof PageArgs>;

const restartService = simulatedAction(
  'restartService',
  RestartArgs,
  (args, ctx) => ({
    rolloutId: `ro-${hash32(ctx.key).toString(36)}`,
    status: 'complete',
    maxUnavailable: args.maxUnavailable,
  }),
  {
    transient: {
      salt: 'orchestrator',
      share: 0.03,
      message: (args) => `orchestrator API timed out restarting ${args.service}`,
    },
    check: (args, ctx) => {
      if (ctx.draw('readiness') < 0.02) {
        throw new EffectError(
          `${args.service} in ${args.region}: restarted pods failed their readiness check (CrashLoopBackOff); rollout aborted`,
          {
            transient: false,
            code: 'effect.restart_failed',
          },
        );
      }
    },
  },
);

const restoreTraffic = simulatedAction(
  'restoreTraffic',
  RestartArgs,
  (args) => ({ service: args.service, region: args.region, status: 'all replicas back in rotation' }),
  {
    transient: {
      salt: 'lb',
      share: 0.01,
      message: (args) => `load balancer API timed out re-enabling ${args.service}`,
    },
  },
);

const scaleService = simulatedAction(
  'scaleService',
  ScaleArgs,
  (args) => ({ service: args.service, region: args.region, replicas: args.to, previous: args.from }),
  {
    transient: { salt: 'autoscaler', share: 0.03, message: (args) => `capacity API throttled scaling ${args.service}` },
  },
);

const revertScale = simulatedAction(
  'revertScale',
  ScaleArgs,
  (args) => ({ service: args.service, region: args.region, replicas: args.from, previous: args.to }),
  {
    transient: {
      salt: 'autoscaler',
      share: 0.01,
      message: (args) => `capacity API throttled scaling ${args.service} back`,
    },
  },
);

const rollbackDeploy = simulatedAction(
  'rollbackDeploy',
  DeployArgs,
  (args) => ({ service: args.service, region: args.region, running: args.to, replaced: args.from }),
  {
    transient: {
      salt: 'deployer',
      share: 0.03,
      message: (args) => `deploy controller busy, rollback of ${args.service} not started`,
    },
    check: (args) => {
      if (drawFor('incidents', 'image-missing', args.service, args.to) < MISSING_IMAGE_SHARE) {
        throw new EffectError(
          `image ${args.service}:${args.to} is no longer in the registry (garbage-collected); cannot roll back`,
          {
            transient: false,
            code: 'effect.image_missing',
          },
        );
      }
    },
  },
);

const rollForward = simulatedAction(
  'rollForward',
  DeployArgs,
  (args) => ({ service: args.service, region: args.region, running: args.from, replaced: args.to }),
  {
    transient: {
      salt: 'deployer',
      share: 0.01,
      message: (args) => `deploy controller busy, roll-forward of ${args.service} not started`,
    },
  },
);

const freezePipeline = simulatedAction('freezePipeline', PipelineArgs, (args) => ({
  service: args.service,
  pipeline: 'frozen',
}));

const unfreezePipeline = simulatedAction('unfreezePipeline', PipelineArgs, (args) => ({
  service: args.service,
  pipeline: 'open',
}));

const expandVolume = simulatedAction(
  'expandVolume',
  ExpandArgs,
  (args) => ({ volumeId: args.volumeId, sizeGb: args.toGb }),
  {
    transient: { salt: 'storage', share: 0.02, message: (args) => `storage API timed out resizing ${args.volumeId}` },
  },
);

const deleteVolume = simulatedAction('deleteVolume', VolumeArgs, (args) => ({
  volumeId: args.volumeId,
  status: 'deleted',
  snapshot: `snap-${hash32(args.volumeId).toString(16)}`,
}));

const restoreVolume = simulatedAction(
  'restoreVolume',
  VolumeArgs,
  (args) => ({ volumeId: args.volumeId, status: 'restored from last snapshot' }),
  {
    transient: { salt: 'storage', share: 0.02, message: (args) => `storage API timed out restoring ${args.volumeId}` },
  },
);

const pageHuman = simulatedAction(
  'pageHuman',
  PageArgs,
  (args, ctx) => ({
    pageId: `PG-${hash32(ctx.key).toString(36).toUpperCase()}`,
    team: args.team,
    severity: args.severity,
  }),
  {
    transient: { salt: 'pager', share: 0.01, message: () => 'paging provider unavailable' },
  },
);

// ---------------------------------------------------------------------------------------------
// Planning
// ---------------------------------------------------------------------------------------------

type Action = PlanDraft['actions'][number];

function plan(f: Fields): PlanDraft {
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
