import { z } from 'zod';
import { EffectError } from '../../src/contracts/errors.ts';
import { defineHandlers, simulatedAction, type PlanDraft } from '../../src/models/define.ts';

// ---------------------------------------------------------------------------------------------
// Contracts
// ---------------------------------------------------------------------------------------------

const Level = z.enum(['read', 'write', 'admin']);
type Level = z.infer<typeof Level>;

/** An access request as it arrives from the ticketing system. */
const Signal = z.object({
  ticketId: z.string().regex(/^ACC-\d{5}$/, 'expected ACC- followed by 5 digits'),
  /** Employee id of the person who needs the access (and who filed the request). */
  user: z.string().min(1),
  system: z.string().min(1),
  level: Level,
  /** How long the access is needed, hours. */
  hours: z.number().int().positive(),
  justification: z.string().min(1),
});
type Signal = z.infer<typeof Signal>;

const Fields = z.object({
  ticketId: z.string(),
  user: z.string(),
  team: z.string(),
  system: z.string(),
  critical: z.boolean(),
  level: Level,
  hours: z.number().int().positive(),
  justification: z.string(),
  /** Whether the user's team owns the system. */
  ownsSystem: z.boolean(),
});
type Fields = z.infer<typeof Fields>;

// ---------------------------------------------------------------------------------------------
// The simulated directory and identity provider
// ---------------------------------------------------------------------------------------------

const SYSTEMS: Record<string, { owner: string; critical: boolean }> = {
  'payments-db': { owner: 'payments', critical: true },
  'orders-api': { owner: 'orders', critical: false },
  'search-cluster': { owner: 'search', critical: false },
  'billing-ledger': { owner: 'payments', critical: true },
  'metrics-store': { owner: 'platform', critical: false },
};
/** Employees and their teams; two managers file requests too (separation of duties). */
const PEOPLE: Record<string, string> = {
  'e-fatima': 'payments',
  'e-gus': 'orders',
  'e-hiro': 'search',
  'e-ines': 'platform',
  'm-ben': 'orders',
  'm-ana': 'payments',
};

const GrantArgs = z.object({
  ticketId: z.string(),
  user: z.string(),
  system: z.string(),
  level: Level,
  hours: z.number().int().positive(),
});
type GrantArgs = z.infer<typeof GrantArgs>;
const RevokeArgs = GrantArgs.extend({ original: z.unknown().optional() });
const NotifyArgs = z.object({ ticketId: z.string(), user: z.string(), message: z.string().min(1) });
type NotifyArgs = z.infer<typeof NotifyArgs>;

const grantAccess = simulatedAction(
  'grantAccess',
  GrantArgs,
  (a, ctx) => ({
    grantId: `G-${a.ticketId.slice(4)}`,
    expiresAt: new Date(ctx.now + a.hours * 3_600_000).toISOString(),
  }),
  {
    transient: { salt: 'idp', share: 0.04, message: (a) => `identity provider timed out granting ${a.system}` },
    check: (a) => {
      if (!SYSTEMS[a.system]) throw new EffectError(`no such system: ${a.system}`, { transient: false });
    },
  },
);
const revokeAccess = simulatedAction('revokeAccess', RevokeArgs, (a) => ({ revoked: `${a.user}@${a.system}` }), {
  transient: { salt: 'idp-revoke', share: 0.04, message: (a) => `identity provider timed out revoking ${a.system}` },
});
const notifyRequester = simulatedAction('notifyRequester', NotifyArgs, (a) => ({ commented: a.ticketId }), {
  transient: { salt: 'ticketing', share: 0.03, message: () => 'ticketing system unavailable' },
});

// ---------------------------------------------------------------------------------------------
// The planner: grant what was asked, no longer than policy allows, and tell the requester
// ---------------------------------------------------------------------------------------------

function plan(f: Fields): PlanDraft {
  const hours = Math.min(f.hours, f.level === 'admin' ? 4 : 72);
  const grant: GrantArgs = { ticketId: f.ticketId, user: f.user, system: f.system, level: f.level, hours };
  const base = { read: 0.15, write: 0.45, admin: 0.75 }[f.level];
  const score = Math.min(1, base + (f.critical ? 0.15 : 0) + (f.ownsSystem ? 0 : 0.05));
  const confidence = f.ownsSystem ? 0.92 : f.justification.length > 30 ? 0.8 : 0.6;
  return {
    actions: [
      { type: 'grantAccess', args: grant, description: `Grant ${f.level} access to ${f.system} for ${hours} h` },
      {
        type: 'notifyRequester',
        args: { ticketId: f.ticketId, user: f.user, message: `${f.level} access to ${f.system} for ${hours} h` },
      },
    ],
    confidence,
    rationale: `${f.user} (${f.team}) asks for ${f.level} access to ${f.system}${f.critical ? ' (critical)' : ''} for ${f.hours} h${f.ownsSystem ? '; their team owns it' : ''}.`,
    risk: {
      score,
      factors: [
        { name: 'level', value: base, note: f.level },
        ...(f.critical ? [{ name: 'critical-system', value: 0.15 }] : []),
        ...(f.ownsSystem
          ? []
          : [{ name: 'foreign-system', value: 0.05, note: `owned by ${SYSTEMS[f.system]?.owner}` }]),
      ],
    },
    citedInputs: ['level', 'system', 'critical', 'hours', 'ownsSystem'],
  };
}

export default defineHandlers<Signal, Fields>({
  signal: Signal,
  fields: Fields,

  async perceive(signal, ctx) {
    if (ctx.draw('directory') < 0.03) throw new EffectError('directory service timed out', { transient: true });
    const system = SYSTEMS[signal.system];
    if (!system) throw new EffectError(`unknown system: ${signal.system}`, { transient: false });
    const team = PEOPLE[signal.user] ?? 'unknown';
    const fields: Fields = {
      ticketId: signal.ticketId,
      user: signal.user,
      team,
      system: signal.system,
      critical: system.critical,
      level: signal.level,
      hours: signal.hours,
      justification: signal.justification,
      ownsSystem: system.owner === team,
    };
    return {
      kind: 'access-request',
      subject: `${signal.user}@${signal.system}`,
      requestedBy: signal.user,
      source: 'directory',
      observedAt: ctx.now,
      fields: Fields.parse(fields),
      transforms: [
        { name: 'lookup-directory', by: 'access.perceive', note: `team of ${signal.user}, owner of ${signal.system}` },
      ],
    };
  },

  async plan(observation) {
    return plan(observation.fields);
  },

  actions: {
    grantAccess: {
      ...grantAccess,
      describe: (a: GrantArgs) => `Grant ${a.level} access to ${a.system} for ${a.hours} h`,
    },
    revokeAccess,
    notifyRequester: { ...notifyRequester, describe: (a: NotifyArgs) => `Tell ${a.user}: ${a.message}` },
  },

  synthesize(rng, index) {
    const user = rng.pick(Object.keys(PEOPLE));
    const system = rng.pick(Object.keys(SYSTEMS));
    const l = rng.next();
    const level: Level = l < 0.55 ? 'read' : l < 0.9 ? 'write' : 'admin';
    return {
      ticketId: `ACC-${String(10_000 + (index % 90_000))}`,
      user,
      system,
      level,
      hours: rng.pick([2, 4, 8, 8, 12, 24, 48, 96]),
      justification: rng.pick([
        'incident follow-up',
        'migrating the schema for the quarterly release, needs write on the tables',
        'debugging a customer escalation (ticket attached)',
        'on-call',
      ]),
    };
  },
});
