/** The incidents model: the simulated estate (service catalogue, deploy history, capacity, on-call rota), all derived from the alert. */
import { Rng, hash32 } from '../../src/base/rng.ts';
import { Metric, Region, Criticality, Fields } from './contracts.ts';

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

export const SERVICES: Record<string, ServiceInfo> = {
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
export const UNKNOWN_SERVICES = [
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
export const ownerOf = (dep: string) => DEPENDENCY_OWNER[dep] ?? (dep.startsWith('postgres-') ? 'dba' : 'platform');

export const REGION_BLAST: Record<Region, number> = {
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
export function onCallFor(region: Region, alertId: string): (typeof ON_CALL)[number] {
  const rota = ON_CALL.filter((o) => o.regions.includes(region));
  return rota[hash32(`${region}/${alertId}`) % rota.length]!;
}

export const UNITS: Record<Metric, Fields['unit']> = {
  error_rate: 'ratio',
  latency_p99: 'ms',
  cpu: 'percent',
  memory: 'percent',
  disk: 'percent',
};
/** Alert thresholds per metric (unit as above). */
export const THRESHOLDS: Record<Metric, number[]> = {
  error_rate: [0.01, 0.02, 0.05],
  latency_p99: [300, 500, 800, 1200],
  cpu: [75, 80, 85],
  memory: [80, 85, 90],
  disk: [80, 85, 90],
};
/** Hard physical ceilings of percentage metrics. */
export const CEILING: Partial<Record<Metric, number>> = { cpu: 100, memory: 100, disk: 100 };

/** Share of rollback targets whose image the registry garbage-collected. */
export const MISSING_IMAGE_SHARE = 0.02;

export const round = (x: number, digits: number) => Math.round(x * 10 ** digits) / 10 ** digits;
export const clamp01 = (x: number) => Math.min(1, Math.max(0, x));

export function pickService(rng: Rng): string {
  let x = rng.next() * SERVICE_WEIGHT;
  for (const n of SERVICE_NAMES) {
    x -= SERVICES[n]!.weight;
    if (x < 0) return n;
  }
  return SERVICE_NAMES[SERVICE_NAMES.length - 1]!;
}

export function formatAge(minutes: number): string {
  if (minutes < 120) return `${minutes} min`;
  if (minutes < 48 * 60) return `${Math.round(minutes / 60)} h`;
  return `${Math.round(minutes / 1440)} days`;
}

export function formatValue(metric: Metric, v: number): string {
  if (metric === 'error_rate') return `${round(v * 100, 2)}%`;
  if (metric === 'latency_p99') return `${Math.round(v)} ms`;
  return `${round(v, 1)}%`;
}
