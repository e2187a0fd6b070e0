import { createActor } from 'xstate';
import type { TierSpec } from '../contracts/review-case.ts';
import type { Reviewer } from '../contracts/reviewer-command.ts';
import type { GateDecision } from '../contracts/gate-decision.ts';
import type { Plan } from '../contracts/plan.ts';
import { explainCaseRejection, reviewCaseMachine, type CaseEvent } from './review-case.ts';

/**
 * The review rules as a table (who may do what, in which state, on which tier), computed from the
 * review-case machine itself: every cell runs the command against a real snapshot, asks the machine
 * whether it takes it, and asks {@link explainCaseRejection} which rule refuses it. docs/security.md
 * carries this table; a test regenerates it and fails when the docs and the machine disagree.
 */

const COMMANDS = ['claim', 'release', 'renew', 'approve', 'modify', 'reject', 'escalate'] as const;
type Command = (typeof COMMANDS)[number];

const T0 = Date.UTC(2026, 0, 1);
const PLAN: Plan = {
  id: 'p',
  planner: 'rules',
  actions: [{ type: 'refund', args: { amount: 50 } }],
  confidence: 0.9,
  rationale: 'r',
  risk: { score: 0.2, factors: [] },
  citedInputs: [],
};
const DECISION: GateDecision = {
  outcome: 'review',
  ruleId: 'r',
  tier: 1,
  reasons: ['r'],
  riskScore: 0.2,
  confidence: 0.9,
  policyVersion: 'v',
  rules: [],
};

interface Scenario {
  title: string;
  tiers: TierSpec[];
  /** Who is who in this scenario, in the table's column order. */
  principals: Record<string, Reviewer>;
  /** Commands that bring a fresh case to the state the table shows, with the states to show. */
  setup: { state: 'queued' | 'claimed'; by: (Command | [Command, string])[] }[];
}

const tier = (name: string, roles: string[], extra: Partial<TierSpec> = {}): TierSpec => ({
  name,
  queue: name,
  roles,
  ackMs: 60_000,
  resolveMs: 600_000,
  priority: 1,
  fourEyes: false,
  ...extra,
});

const SCENARIOS: Scenario[] = [
  {
    title: 'A four-eyes tier (not the last), after a first approval by the earlier approver',
    tiers: [tier('lead', ['lead'], { fourEyes: true }), tier('finance', ['finance'])],
    principals: {
      claimant: { id: 'claimant', roles: ['lead'] },
      'other holder of the role': { id: 'other', roles: ['lead'] },
      'earlier approver': { id: 'earlier', roles: ['lead'] },
      requester: { id: 'requester', roles: ['lead', 'finance'] },
      'next tier only': { id: 'finance', roles: ['finance'] },
      'no role': { id: 'nobody', roles: ['viewer'] },
    },
    setup: [
      {
        state: 'queued',
        by: [
          ['claim', 'earlier'],
          ['approve', 'earlier'],
        ],
      },
      {
        state: 'claimed',
        by: [
          ['claim', 'earlier'],
          ['approve', 'earlier'],
          ['claim', 'claimant'],
        ],
      },
    ],
  },
  {
    title: 'Ordered steps ("manager, then security"), before any approval',
    tiers: [
      tier('access', ['manager', 'security'], {
        steps: [
          { name: 'manager', roles: ['manager'] },
          { name: 'security', roles: ['security'] },
        ],
      }),
      tier('ciso', ['ciso']),
    ],
    principals: {
      claimant: { id: 'claimant', roles: ['manager'] },
      'other manager': { id: 'other', roles: ['manager'] },
      'security (a later step)': { id: 'sec', roles: ['security'] },
      requester: { id: 'requester', roles: ['manager', 'security'] },
      'no role': { id: 'nobody', roles: ['viewer'] },
    },
    setup: [
      { state: 'queued', by: [] },
      { state: 'claimed', by: [['claim', 'claimant']] },
    ],
  },
];

function event(type: Command, reviewer: Reviewer, at: number): CaseEvent {
  switch (type) {
    case 'modify':
      return { type, reviewer, at, actions: [{ type: 'refund', args: { amount: 20 } }], comment: 'edit' };
    case 'reject':
    case 'escalate':
      return { type, reviewer, at, reason: 'why' };
    default:
      return { type, reviewer, at };
  }
}

/** One cell: `✓` when the machine takes the command, else the rule that refuses it. */
function cell(s: Scenario, setup: Scenario['setup'][number], type: Command, who: Reviewer): string {
  const actor = createActor(reviewCaseMachine, {
    input: {
      caseId: 'c',
      episodeId: 'e',
      model: 'm',
      tier: 1,
      tiers: s.tiers,
      leaseMs: 60_000,
      requestedBy: 'requester',
      plan: PLAN,
      decision: DECISION,
      observation: {
        id: 'o',
        kind: 'k',
        subject: 's',
        provenance: { source: 's', observedAt: new Date(T0).toISOString(), transforms: [] },
        classification: 'internal',
        dataClasses: [],
        fields: {},
      },
      openedAt: T0,
    },
  }).start();
  const all = Object.values(s.principals);
  let at = T0;
  for (const step of setup.by) {
    const [t, id] = Array.isArray(step) ? step : [step, 'claimant'];
    actor.send(
      event(
        t,
        all.find((r) => r.id === id)!,
        ++at,
      ),
    );
  }
  const snap = actor.getSnapshot();
  if (String(snap.value) !== setup.state)
    throw new Error(`review rules: setup reached ${String(snap.value)}, not ${setup.state}`);
  const e = event(type, who, ++at);
  const taken = snap.can(e);
  const why = explainCaseRejection(String(snap.value), snap.context, e);
  actor.stop();
  if (taken !== (why === null))
    throw new Error(
      `review rules: the machine ${taken ? 'takes' : 'refuses'} ${type} by ${who.id} in ${setup.state} but explainCaseRejection says ${why?.rule ?? 'nothing'}`,
    );
  return taken ? '✓' : `${why!.rule}${why!.forbidden ? ' (403)' : ''}`;
}

/** The review rules as Markdown tables, one per scenario and state. */
export function reviewRulesMarkdown(): string {
  const out: string[] = [];
  for (const s of SCENARIOS) {
    for (const setup of s.setup) {
      const names = Object.keys(s.principals);
      out.push(`**${s.title}; case ${setup.state}${setup.state === 'claimed' ? ' by the claimant' : ''}.**`, '');
      out.push(`| command | ${names.join(' | ')} |`, `|---|${names.map(() => '---').join('|')}|`);
      for (const type of COMMANDS)
        out.push(`| ${type} | ${names.map((n) => cell(s, setup, type, s.principals[n]!)).join(' | ')} |`);
      out.push('');
    }
  }
  return out.join('\n').trimEnd();
}
