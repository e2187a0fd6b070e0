/**
 * The traversal under the path generator (graph.ts): a path's actions replayed through a machine
 * (snapshots, events, transitions taken), the exploration of its abstract state graph (shortest paths
 * to every abstract state, the edges, the way on to a final state), each step annotated with what the
 * runtime must show after it (the oracle's deadlines and priorities from model.json), and the greedy
 * choice of a small set of paths that covers every goal.
 */
import type { AnyMachineSnapshot } from 'xstate';
import { getAdjacencyMap, getShortestPaths } from 'xstate/graph';
import type { CaseResolution } from '../contracts/review-case.ts';
import type { AgentContext } from '../machines/agent.ts';
import type { CaseContext } from '../machines/review-case.ts';
import type { LoadedModel } from '../models/loader.ts';
import { labelOf, type Adapter, type Labeled } from './adapters.ts';
import type { Fixtures, PlanClass } from './fixtures.ts';
import { stateName, TransitionRecorder, type StepTrace } from './machine-walk.ts';
import { AgentOracle, CaseOracle, expiryMs } from './oracle.ts';
import { describeAction, type Action, type Expectation } from './steps.ts';

export interface Replayed {
  start?: PlanClass;
  labels: Action[];
  snapshots: AnyMachineSnapshot[];
  events: Labeled[];
  traces: StepTrace[];
  items: Set<string>;
  final: boolean;
}

export function replay(
  adapter: Adapter,
  root: Adapter['roots'][number],
  labels: Action[],
  recorder: TransitionRecorder,
): Replayed | null {
  const { snapshot: first, trace: init } = recorder.initial(adapter.machine, root.input);
  let snap = first;
  const snapshots = [snap];
  const events: Labeled[] = [];
  const traces: StepTrace[] = [];
  const items = new Set<string>(init.states.map((s) => `S:${s}`));
  if (root.start) items.add(`B:case opened at ${root.start}`);
  for (const label of labels) {
    const want = labelOf(label);
    const event = adapter.events(snap).find((e) => labelOf(e.qa) === want);
    if (!event || !snap.can(event)) return null;
    const { next, trace } = recorder.step(adapter.machine, snap, event);
    for (const s of trace.states) items.add(`S:${s}`);
    for (const t of trace.transitions) items.add(`T:${t}`);
    for (const b of adapter.branches(snap, event, next)) items.add(`B:${b}`);
    snap = next;
    snapshots.push(snap);
    events.push(event);
    traces.push(trace);
  }
  return {
    ...(root.start ? { start: root.start } : {}),
    labels,
    snapshots,
    events,
    traces,
    items,
    final: snap.status === 'done',
  };
}

export interface Explored {
  root: Adapter['roots'][number];
  initial: AnyMachineSnapshot;
  /** Labels of a shortest path to each abstract state. */
  shortest: Map<string, Action[]>;
  /** For each abstract state, the labels that lead to a final state fastest. */
  toFinal: Map<string, Action[]>;
  edges: { from: string; label: Action; to: string; trace: StepTrace; items: string[] }[];
  reps: Map<string, AnyMachineSnapshot>;
}

export function explore(
  adapter: Adapter,
  root: Adapter['roots'][number],
  recorder: TransitionRecorder,
  reachable: { states: Set<string>; transitions: Set<string> },
): Explored {
  const { snapshot: initial, trace: init } = recorder.initial(adapter.machine, root.input);
  for (const s of init.states) reachable.states.add(s);
  const options = {
    fromState: initial,
    serializeState: (s: AnyMachineSnapshot) => adapter.key(s, false),
    serializeEvent: (e: Labeled) => labelOf(e.qa),
    events: (s: AnyMachineSnapshot) => adapter.events(s),
  };
  const adj = getAdjacencyMap(adapter.machine, options as never) as Record<
    string,
    { state: AnyMachineSnapshot; transitions: Record<string, { event: Labeled; state: AnyMachineSnapshot }> }
  >;
  const edges: Explored['edges'] = [];
  const reps = new Map<string, AnyMachineSnapshot>();
  for (const [from, v] of Object.entries(adj)) {
    reps.set(from, v.state);
    for (const t of Object.values(v.transitions)) {
      const { trace } = recorder.step(adapter.machine, v.state, t.event);
      if (trace.transitions.length === 0) continue;
      for (const s of trace.states) reachable.states.add(s);
      for (const x of trace.transitions) reachable.transitions.add(x);
      const items = [
        ...trace.transitions.map((x) => `T:${x}`),
        ...adapter.branches(v.state, t.event, t.state).map((b) => `B:${b}`),
      ];
      edges.push({ from, label: t.event.qa, to: adapter.key(t.state, false), trace, items });
    }
  }
  const shortest = new Map<string, Action[]>();
  for (const p of getShortestPaths(adapter.machine, options as never)) {
    const labels = p.steps.slice(1).map((s) => (s.event as Labeled).qa);
    shortest.set(adapter.key(p.state as AnyMachineSnapshot, false), labels);
  }
  // Reverse BFS from the final states: the quickest way to finish from anywhere.
  const toFinal = new Map<string, Action[]>();
  const incoming = new Map<string, Explored['edges']>();
  for (const e of edges) incoming.set(e.to, [...(incoming.get(e.to) ?? []), e]);
  const queue: string[] = [];
  for (const [k, s] of reps)
    if (s.status === 'done') {
      toFinal.set(k, []);
      queue.push(k);
    }
  while (queue.length) {
    const k = queue.shift()!;
    for (const e of incoming.get(k) ?? []) {
      if (toFinal.has(e.from)) continue;
      toFinal.set(e.from, [e.label, ...toFinal.get(k)!]);
      queue.push(e.from);
    }
  }
  return { root, initial, shortest, toFinal, edges, reps };
}

/** Expectations after each step of a replayed path: shape from the machine, values from the oracle. */
export function annotate(
  adapter: Adapter,
  r: Replayed,
  model: LoadedModel,
  fx: Fixtures,
  problems: string[],
): { initial: Expectation; steps: { action: Action; expect: Expectation }[]; states: string[] } {
  const ledger = new Set<string>();
  const feat = (s: AnyMachineSnapshot) => adapter.features(s) as Expectation;
  const t0 = fx.t0;
  const first = r.snapshots[0]!;
  const caseOracle =
    adapter.kind === 'case'
      ? new CaseOracle(model.config, (first.context as CaseContext).tier, (first.context as CaseContext).openedAt)
      : null;
  const agentOracle = adapter.kind === 'agent' ? new AgentOracle(model.config, t0) : null;
  const values = (): Expectation =>
    caseOracle ? { due: caseOracle.due(t0), priority: caseOracle.priority } : { due: agentOracle!.due(t0) };
  const disagree = (what: string) =>
    problems.push(`oracle: ${adapter.kind} path ${r.labels.map((l) => describeAction(l)).join(', ')}: ${what}`);
  const initial: Expectation = {
    state: stateName(first),
    ...feat(first),
    ...values(),
    ...(adapter.kind === 'agent' ? { ledger: [] } : {}),
    audit: adapter.kind === 'case' ? ['case.opened'] : [],
  };
  const steps: { action: Action; expect: Expectation }[] = [];
  const states: string[] = [stateName(first)];
  r.events.forEach((event, i) => {
    const prev = r.snapshots[i]!;
    const next = r.snapshots[i + 1]!;
    const trace = r.traces[i]!;
    const audit: string[] = [];
    if (adapter.kind === 'agent') {
      const pc = prev.context as AgentContext;
      const nc = next.context as AgentContext;
      if (event.type === 'action.done') ledger.add(String(pc.step));
      if (event.type === 'compensation.done') {
        const a = pc.plan?.actions[pc.compensateStep];
        if (a && model.config.actions[a.type]?.compensation) ledger.add(`${pc.compensateStep}/compensate`);
      }
      if (trace.states.includes('gating')) audit.push('gate.decision');
      if (event.type === 'action.done') audit.push('action.executed');
      if (event.type === 'compensation.done') audit.push('action.compensated');
      if (next.status === 'done') audit.push('episode.outcome');
      const error = (event as unknown as { error?: { transient?: boolean } }).error;
      const resolution = (event as unknown as { resolution?: CaseResolution }).resolution;
      // An expiry lets every deadline of the case pass, from the tier it was opened at.
      const clockTo =
        event.type === 'case.resolved' && resolution?.outcome === 'expired' && stateName(prev) === 'awaitingReview'
          ? agentOracle!.now + expiryMs(model.config, Math.max(1, pc.decision?.tier ?? 1))
          : undefined;
      const { retry } = agentOracle!.step(event.type, {
        transient: event.type.endsWith('.failed') && !!error?.transient,
        ...(clockTo !== undefined ? { clockTo } : {}),
      });
      const armed = nc.timers.retry !== undefined;
      if (retry !== armed)
        disagree(
          `after ${describeAction(event.qa)} the machine ${armed ? 'retries' : 'gives up'}; ` +
            `with maxAttempts ${model.config.retry.maxAttempts} it must ${retry ? 'retry' : 'give up'}`,
        );
      else if (armed && nc.timers.retry! - (event.at as number) !== agentOracle!.timers.retry! - agentOracle!.now)
        disagree(
          `retry armed ${nc.timers.retry! - (event.at as number)} ms after ${describeAction(event.qa)}; ` +
            `the retry policy says ${agentOracle!.timers.retry! - agentOracle!.now} ms`,
        );
    } else {
      const pc = prev.context as CaseContext;
      const nc = next.context as CaseContext;
      const from = pc.history.length;
      for (const h of nc.history.slice(from)) audit.push(`case.${h.kind}`);
      const after = (event.qa as { after?: number }).after;
      if (after) caseOracle!.now += after;
      caseOracle!.step(event.type, stateName(next), next.status === 'done', nc.tier > pc.tier);
      const got = Object.fromEntries(
        Object.entries(nc.timers)
          .filter(([, v]) => v !== undefined)
          .sort(([a], [b]) => (a < b ? -1 : 1)),
      );
      if (
        JSON.stringify(got) !==
        JSON.stringify(
          caseOracle!.timers &&
            Object.fromEntries(Object.entries(caseOracle!.timers).sort(([a], [b]) => (a < b ? -1 : 1))),
        )
      )
        disagree(
          `after ${describeAction(event.qa)} the case's deadlines are ${JSON.stringify(got)}; ` +
            `model.json gives ${JSON.stringify(caseOracle!.timers)}`,
        );
    }
    for (const s of trace.states) if (states.at(-1) !== s) states.push(s);
    steps.push({
      action: event.qa,
      expect: {
        state: stateName(next),
        event: event.type,
        ...feat(next),
        ...values(),
        ...(adapter.kind === 'agent' ? { ledger: [...ledger].sort() } : {}),
        audit,
      },
    });
  });
  return { initial, steps, states };
}

export function choose(candidates: Replayed[], goal: Set<string>): Replayed[] {
  const chosen: Replayed[] = [];
  const left = new Set(goal);
  const pool = [...candidates];
  while (left.size > 0) {
    let best: Replayed | undefined;
    let bestGain = 0;
    for (const c of pool) {
      let gain = 0;
      for (const i of c.items) if (left.has(i)) gain++;
      if (
        gain > bestGain ||
        (gain === bestGain &&
          gain > 0 &&
          best &&
          (c.labels.length < best.labels.length ||
            (c.labels.length === best.labels.length && JSON.stringify(c.labels) < JSON.stringify(best.labels))))
      ) {
        best = c;
        bestGain = gain;
      }
    }
    if (!best) break;
    chosen.push(best);
    pool.splice(pool.indexOf(best), 1);
    for (const i of best.items) left.delete(i);
  }
  return chosen;
}

/** FNV-1a, hex. */
export function fnv(text: string): string {
  let h = 0x811c9dc5;
  for (const ch of text) h = Math.imul(h ^ ch.charCodeAt(0), 0x01000193) >>> 0;
  return h.toString(16).padStart(8, '0');
}

export function percent(covered: number, reachable: number): number {
  return reachable === 0 ? 100 : Math.round((covered / reachable) * 10_000) / 100;
}
