/** The incidents model: the remediation actions and their arguments (simulated effects). */
import { z } from 'zod';
import { EffectError } from '../../src/contracts/errors.ts';
import { simulatedAction } from '../../src/models/define.ts';
import { drawFor, hash32 } from '../../src/base/rng.ts';
import { Region, Version } from './contracts.ts';
import { MISSING_IMAGE_SHARE } from './estate.ts';

// ---------------------------------------------------------------------------------------------
// Actions
// ---------------------------------------------------------------------------------------------

const ServiceName = z.string().min(1);

export const RestartArgs = z.object({
  service: ServiceName,
  region: Region,
  /** Rolling restart: at most this many replicas out of rotation at once. */
  maxUnavailable: z.number().int().positive(),
});
export type RestartArgs = z.infer<typeof RestartArgs>;

export const ScaleArgs = z
  .object({ service: ServiceName, region: Region, from: z.number().int().positive(), to: z.number().int().positive() })
  .refine((a) => a.from !== a.to, { message: 'from and to must differ' });
export type ScaleArgs = z.infer<typeof ScaleArgs>;

const DeployArgs = z
  .object({ service: ServiceName, region: Region, from: Version, to: Version })
  .refine((a) => a.from !== a.to, { message: 'from and to must differ' });
type DeployArgs = z.infer<typeof DeployArgs>;

const PipelineArgs = z.object({ service: ServiceName, reason: z.string().min(1) });
type PipelineArgs = z.infer<typeof PipelineArgs>;

const VolumeArgs = z.object({ service: ServiceName, region: Region, volumeId: z.string().min(1) });
type VolumeArgs = z.infer<typeof VolumeArgs>;

export const ExpandArgs = z
  .object({
    service: ServiceName,
    region: Region,
    volumeId: z.string().min(1),
    fromGb: z.number().int().positive(),
    toGb: z.number().int().positive(),
  })
  .refine((a) => a.toGb > a.fromGb, { message: 'a volume can only grow' });
export type ExpandArgs = z.infer<typeof ExpandArgs>;

export const PageArgs = z.object({
  team: z.string().min(1),
  severity: z.enum(['sev1', 'sev2', 'sev3']),
  summary: z.string().min(1),
  service: ServiceName.optional(),
});
export type PageArgs = z.infer<typeof PageArgs>;

export const restartService = simulatedAction(
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

export const restoreTraffic = simulatedAction(
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

export const scaleService = simulatedAction(
  'scaleService',
  ScaleArgs,
  (args) => ({ service: args.service, region: args.region, replicas: args.to, previous: args.from }),
  {
    transient: { salt: 'autoscaler', share: 0.03, message: (args) => `capacity API throttled scaling ${args.service}` },
  },
);

export const revertScale = simulatedAction(
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

export const rollbackDeploy = simulatedAction(
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

export const rollForward = simulatedAction(
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

export const freezePipeline = simulatedAction('freezePipeline', PipelineArgs, (args) => ({
  service: args.service,
  pipeline: 'frozen',
}));

export const unfreezePipeline = simulatedAction('unfreezePipeline', PipelineArgs, (args) => ({
  service: args.service,
  pipeline: 'open',
}));

export const expandVolume = simulatedAction(
  'expandVolume',
  ExpandArgs,
  (args) => ({ volumeId: args.volumeId, sizeGb: args.toGb }),
  {
    transient: { salt: 'storage', share: 0.02, message: (args) => `storage API timed out resizing ${args.volumeId}` },
  },
);

export const deleteVolume = simulatedAction('deleteVolume', VolumeArgs, (args) => ({
  volumeId: args.volumeId,
  status: 'deleted',
  snapshot: `snap-${hash32(args.volumeId).toString(16)}`,
}));

export const restoreVolume = simulatedAction(
  'restoreVolume',
  VolumeArgs,
  (args) => ({ volumeId: args.volumeId, status: 'restored from last snapshot' }),
  {
    transient: { salt: 'storage', share: 0.02, message: (args) => `storage API timed out restoring ${args.volumeId}` },
  },
);

export const pageHuman = simulatedAction(
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
