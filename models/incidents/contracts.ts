/** The incidents model: the signal (an alert) and the observation fields (zod). */
import { z } from 'zod';
import { sensitive } from '../../src/contracts/classification.ts';

// ---------------------------------------------------------------------------------------------
// Contracts
// ---------------------------------------------------------------------------------------------

export const Metric = z.enum(['error_rate', 'latency_p99', 'cpu', 'memory', 'disk']);
export type Metric = z.infer<typeof Metric>;
export const Region = z.enum(['eu-west-1', 'eu-central-1', 'us-east-1', 'ap-southeast-1']);
export type Region = z.infer<typeof Region>;
export const Version = z.string().regex(/^v\d+\.\d+\.\d+$/, 'expected a version such as v2.14.3');

/** A firing alert from the monitoring system. */
export const Signal = z.object({
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
export type Signal = z.infer<typeof Signal>;

export const Criticality = z.enum(['critical', 'standard', 'internal']);
export type Criticality = z.infer<typeof Criticality>;

export const Fields = z.object({
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
export type Fields = z.infer<typeof Fields>;
