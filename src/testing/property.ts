/**
 * Property-based sequences (issue 22, item 3): random sequences of reviewer commands and deadlines,
 * run on the real runtime (through the harness) and on a small REFERENCE MODEL of the review process
 * written from the rules in docs/security.md and model.json (not from the machine), with fast-check
 * shrinking a failure to a minimal sequence. `handoff testgen --property` runs it; generated suites
 * run it with a fixed seed (`<model>.property.test.ts`).
 */
import type { Reviewer } from '../contracts/reviewer-command.ts';
import type { TierSpec } from '../contracts/review-case.ts';
import type { LoadedModel } from '../models/loader.ts';
import { identify, type Fixtures, type PlanClass } from './fixtures.ts';
import { defineSuite } from './suite.ts';
import type { Action, Expectation } from './steps.ts';

type Command = 'claim' | 'release' | 'renew' | 'approve' | 'reject' | 'escalate';
/**
 * One element of a sequence: a command by a principal, or the next deadline passing. `who` is an
 * index into the scenario's principals, or `claimant` (whoever holds the claim) or `eligible` (the
 * first principal the rules let claim now), resolved when the step runs, so sequences get far.
 */
export type SeqStep = { cmd: Command; who: number | 'claimant' | 'eligible' } | { cmd: 'timer' };

/** The review process as the rules state it: what a case must do with each command. */
export class ReferenceCase {
  status: 'queued' | 'claimed' | 'approved' | 'rejected' | 'expired' = 'queued';
  claimant: string | null = null;
  approvals: string[] = [];
  now: number;
  timers: Record<string, number>;
  constructor(
    readonly tiers: TierSpec[],
    readonly leaseMs: number,
    readonly requester: string | null,
    public tier: number,
    t0: number,
  ) {
    this.now = t0;
    this.timers = this.#enter(tier);
  }
  #enter(tier: number): Record<string, number> {
    this.tier = tier;
    const t = this.tiers[tier - 1]!;
    return { ack: this.now + t.ackMs, resolve: this.now + t.resolveMs };
  }
  get open(): boolean {
    return this.status === 'queued' || this.status === 'claimed';
  }
  steps(): string[][] {
    const t = this.tiers[this.tier - 1]!;
    if (t.steps?.length) return t.steps.map((s) => s.roles);
    return t.fourEyes ? [t.roles, t.roles] : [t.roles];
  }
  /** The refusal (`auth.forbidden` or `event.rejected`) a command meets, or null when it is taken. */
  refusal(cmd: Command, r: Reviewer): string | null {
    if (!this.open) return 'event.rejected';
    const tier = this.tiers[this.tier - 1]!;
    if (!r.roles.some((x) => tier.roles.includes(x))) return 'auth.forbidden';
    if (cmd === 'escalate') {
      if (r.id === this.requester) return 'auth.forbidden';
      if (this.tier >= this.tiers.length) return 'event.rejected';
      if (this.status === 'claimed' && this.claimant !== r.id) return 'event.rejected';
      return null;
    }
    const steps = this.steps();
    const step = steps[Math.min(this.approvals.length, steps.length - 1)]!;
    if (!r.roles.some((x) => step.includes(x))) return 'auth.forbidden';
    if (cmd === 'claim') {
      if (this.status !== 'queued') return 'event.rejected';
      if (r.id === this.requester || this.approvals.includes(r.id)) return 'auth.forbidden';
      return null;
    }
    if (this.status !== 'claimed' || this.claimant !== r.id) return 'event.rejected';
    return null;
  }
  apply(cmd: Command, r: Reviewer): void {
    const { lease: _l, ...noLease } = this.timers;
    switch (cmd) {
      case 'claim': {
        const { ack: _a, ...rest } = this.timers;
        this.status = 'claimed';
        this.claimant = r.id;
        this.timers = { ...rest, lease: this.now + this.leaseMs };
        return;
      }
      case 'renew':
        this.timers = { ...this.timers, lease: this.now + this.leaseMs };
        return;
      case 'release':
        this.status = 'queued';
        this.claimant = null;
        this.timers = noLease;
        return;
      case 'approve':
        this.approvals = [...this.approvals, r.id];
        this.claimant = null;
        if (this.approvals.length < this.steps().length) {
          this.status = 'queued';
          this.timers = noLease;
        } else this.#close('approved');
        return;
      case 'reject':
        this.claimant = null;
        return this.#close('rejected');
      case 'escalate':
        return this.#escalate();
    }
  }
  #close(status: 'approved' | 'rejected' | 'expired') {
    this.status = status;
    this.timers = {};
  }
  #escalate() {
    this.status = 'queued';
    this.claimant = null;
    this.approvals = [];
    this.timers = this.#enter(this.tier + 1);
  }
  /** The deadline that passes first, and what it does. */
  nextTimer(): string | null {
    const due = Object.entries(this.timers).sort((a, b) => a[1] - b[1] || (a[0] < b[0] ? -1 : 1))[0];
    return due ? due[0] : null;
  }
  fire(): void {
    const name = this.nextTimer()!;
    this.now = Math.max(this.now, this.timers[name]!);
    if (name === 'lease') {
      const { lease: _l, ...rest } = this.timers;
      this.status = 'queued';
      this.claimant = null;
      this.timers = rest;
    } else if (this.tier < this.tiers.length) this.#escalate();
    else this.#close('expired');
  }
  expectation(t0: number): Expectation {
    return {
      state: this.status,
      tier: this.tier,
      claimedBy: this.claimant,
      approvals: this.open ? [...this.approvals] : this.approvals,
      due: Object.fromEntries(Object.entries(this.timers).map(([k, v]) => [k, v - t0])),
      ...(this.open ? { priority: this.tiers[this.tier - 1]!.priority } : {}),
    };
  }
}

export interface PropertyOptions {
  /** Runs (sequences). @default 20 */
  runs?: number;
  /** fast-check seed: the same seed, the same sequences. @default 1 */
  seed?: number;
  /** Longest sequence. @default 16 */
  maxSteps?: number;
  /** The reference model (a subclass, to test the property itself). @default ReferenceCase */
  reference?: typeof ReferenceCase;
}

export interface PropertyResult {
  ok: boolean;
  runs: number;
  seed: number;
  /** The minimal failing sequence (after shrinking), described, and the failure. */
  counterexample?: string[];
  error?: string;
  /** What the runs exercised: commands taken, commands refused, deadlines passed, cases closed. */
  exercised: { taken: number; refused: number; deadlines: number; closed: number };
}

/** The principals a sequence picks from: each tier's reviewers, the requester, someone with no role. */
export function principals(fx: Fixtures): string[] {
  const ids = new Set<string>();
  for (const t of fx.reviewers) for (const r of t.allowed.slice(0, 3)) ids.add(r.id);
  if (fx.requestedBy) ids.add(fx.requestedBy);
  ids.add('qa-norole');
  return [...ids];
}

/** Runs random command sequences on the real runtime and the reference model; fast-check shrinks a failure. */
export async function runProperty(
  model: LoadedModel,
  fx: Fixtures,
  opts: PropertyOptions = {},
): Promise<PropertyResult> {
  const fc = await import('fast-check');
  const seed = opts.seed ?? 1;
  const runs = opts.runs ?? 20;
  const who = principals(fx);
  const starts = Object.keys(fx.plans).filter((c) => c.startsWith('review:')) as PlanClass[];
  const exercised = { taken: 0, refused: 0, deadlines: 0, closed: 0 };
  if (starts.length === 0) return { ok: true, runs: 0, seed, exercised };
  const suite = defineSuite({ model, fixtures: fx, timeoutMs: 5_000 });
  const step = fc.oneof(
    {
      weight: 6,
      arbitrary: fc.record({
        cmd: fc.oneof(
          { weight: 3, arbitrary: fc.constant<Command>('claim') },
          { weight: 3, arbitrary: fc.constant<Command>('approve') },
          { weight: 1, arbitrary: fc.constantFrom<Command>('release', 'renew', 'reject', 'escalate') },
        ),
        who: fc.oneof(
          { weight: 2, arbitrary: fc.constantFrom('claimant' as const, 'eligible' as const) },
          { weight: 1, arbitrary: fc.nat({ max: who.length - 1 }) },
        ),
      }),
    },
    { weight: 1, arbitrary: fc.constant({ cmd: 'timer' as const }) },
  );
  const describe = (start: PlanClass, seq: SeqStep[]) => [
    `case opened at ${start}`,
    ...seq.map((s) =>
      s.cmd === 'timer'
        ? 'next deadline passes'
        : `${s.cmd} by ${typeof s.who === 'number' ? who[s.who] : `the ${s.who} reviewer`}`,
    ),
  ];
  let failure: { start: PlanClass; seq: SeqStep[]; error: string } | undefined;
  const property = fc.asyncProperty(
    fc.constantFrom(...starts),
    fc.array(step, { maxLength: opts.maxSteps ?? 16 }),
    async (start, seq) => {
      try {
        await suite.case(start, async (s) => {
          const decision = model.gate(fx.plans[start]!, fx.observation);
          const ref = new (opts.reference ?? ReferenceCase)(
            model.config.review.tiers,
            model.config.review.leaseMs,
            fx.requestedBy,
            Math.max(1, decision.tier),
            fx.t0,
          );
          await s.start(ref.expectation(fx.t0));
          for (const st of seq) {
            if (st.cmd === 'timer') {
              const name = ref.nextTimer();
              if (!name) continue;
              ref.fire();
              await s.step({ do: 'timer', timer: name }, ref.expectation(fx.t0));
              exercised.deadlines++;
              continue;
            }
            const pick = (w: SeqStep & { who: unknown }): string => {
              if (typeof w.who === 'number') return who[w.who]!;
              if (w.who === 'claimant' && ref.claimant) return ref.claimant;
              return who.find((x) => ref.refusal('claim', identify(model, fx, ref.tier, x)) === null) ?? who[0]!;
            };
            const id = pick(st);
            const reviewer = identify(model, fx, ref.tier, id);
            const action: Action = { do: st.cmd, by: id };
            const refused = ref.refusal(st.cmd, reviewer);
            if (refused) {
              await s.step(action, { state: ref.status, refused: { code: refused } });
              exercised.refused++;
            } else {
              ref.apply(st.cmd, reviewer);
              await s.step(action, ref.expectation(fx.t0));
              exercised.taken++;
            }
          }
          if (!ref.open) exercised.closed++;
          await s.end();
        });
      } catch (err) {
        const error = err instanceof Error ? err.message : String(err);
        if (!failure || seq.length <= failure.seq.length) failure = { start, seq, error };
        throw err;
      }
    },
  );
  const out = await fc.check(property, { seed, numRuns: runs, endOnFailure: false });
  if (!out.failed) return { ok: true, runs: out.numRuns, seed, exercised };
  const [start, seq] = (out.counterexample ?? [failure?.start, failure?.seq]) as [PlanClass, SeqStep[]];
  return {
    ok: false,
    runs: out.numRuns,
    seed,
    counterexample: describe(start, seq),
    error: (out.errorInstance as Error | undefined)?.message ?? failure?.error,
    exercised,
  };
}
