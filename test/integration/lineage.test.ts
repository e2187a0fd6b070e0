/**
 * Lineage and audit queries on a real LevelStore with the refunds model: an episode reviewed and
 * approved, one whose approval came after its data went stale (freshness on the real runtime), the
 * `handoff lineage` and `handoff audit query` commands, and their typed errors.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { AuditIndex } from '../../src/lineage/audit-index.ts';
import { embeddedBackend } from '../../src/gateway/backend.ts';
import { Gateway } from '../../src/gateway/server.ts';
import { maskLineage } from '../../src/lineage/mask.ts';
import { buildLineage, LineageNotFoundError, withCompensationTypes, type Lineage } from '../../src/lineage/lineage.ts';
import { renderLineage } from '../../src/lineage/render.ts';
import { storeLineageSource } from '../../src/lineage/source.ts';
import type { LoadedModel } from '../../src/models/loader.ts';
import { verifyAudit } from '../../src/base/audit-log.ts';
import { runCli } from './cli.ts';
import {
  LEAD,
  LEAD2,
  START,
  agentCtx,
  caseCtx,
  cleanup,
  closeEnv,
  cmd,
  collect,
  drive,
  driveUntilDone,
  openEnv,
  refunds,
  reviewSignals,
  type Env,
} from './helpers.ts';

afterEach(cleanup);

const MIN = 60_000;

async function toCase(env: Env, episodeId: string, caseId = `${episodeId}.case-1`): Promise<string> {
  const opened = await drive(env.rt, env.clock, async () => {
    const ep = await env.rt.get(episodeId);
    return !!ep && agentCtx(ep).caseIds.includes(caseId) && !!(await env.rt.get(caseId));
  });
  expect(opened, `case ${caseId} did not open`).toBe(true);
  return caseId;
}

const lineageOf = (env: Env, id: string): Promise<Lineage> =>
  buildLineage(id, storeLineageSource(env.store, { effect: (key) => env.world.lookup(key) })).then((l) =>
    withCompensationTypes(l, env.model.config.actions),
  );

describe('lineage of a reviewed episode', () => {
  it('goes from the source through plan, gate, review and actions to the effects, with audit entry numbers', async () => {
    const env = await openEnv();
    const [c] = await reviewSignals({ tier: 1 });
    await env.rt.startEpisode('refunds', c!.signal, { episodeId: 'ep-lin' });
    const caseId = await toCase(env, 'ep-lin');
    env.clock.advanceTo(env.clock.now() + 2 * MIN);
    await env.rt.command(cmd('claim', caseId, LEAD));
    await env.rt.command(cmd('approve', caseId, LEAD, { comment: 'order checked' }));
    const done = await driveUntilDone(env, 'ep-lin');
    expect(agentCtx(done).outcome).toBe('approved');

    const l = await lineageOf(env, 'ep-lin');
    expect(l).toMatchObject({
      id: 'ep-lin',
      episodeId: 'ep-lin',
      model: 'refunds',
      state: 'done',
      outcome: 'approved',
      history: { journal: 'kept' },
      hold: null,
    });
    // Sources: the observation's provenance, with its transforms.
    expect(l.observations).toHaveLength(1);
    expect(l.observations[0]).toMatchObject({
      id: 'ep-lin.obs',
      source: 'shop-orders',
      observedAt: new Date(START).toISOString(),
    });
    expect(l.observations[0]!.transforms.map((t) => t.name)).toContain('validated');
    // Plan: planner, rationale, cited inputs.
    expect(l.plans).toHaveLength(1);
    expect(l.plans[0]).toMatchObject({
      origin: 'planner',
      planner: c!.plan.planner,
      rationale: c!.plan.rationale,
      citedInputs: c!.plan.citedInputs,
    });
    // Gate: rule, reasons, policy version, and the freshness rule beside the others.
    expect(l.decisions).toHaveLength(1);
    expect(l.decisions[0]).toMatchObject({
      outcome: 'review',
      tier: 1,
      ruleId: c!.decision.ruleId,
      policyVersion: 'refunds-policy-2025.1',
      inputs: { source: 'shop-orders' },
    });
    // Review: tiers, claim, decision, reviewers.
    expect(l.reviews).toHaveLength(1);
    const r = l.reviews[0]!;
    expect(r).toMatchObject({
      caseId,
      kind: 'review',
      state: 'approved',
      openedTier: 1,
      reviewers: [LEAD.id],
      resolution: { outcome: 'approved', decidedBy: [LEAD.id] },
    });
    expect(r.tiers.map((t) => t.name)).toEqual(['Support lead', 'Refunds manager', 'Finance controller']);
    expect(r.events.map((e) => e.kind)).toEqual(['opened', 'claimed', 'approved']);
    expect(r.claims).toEqual([{ by: LEAD.id, at: expect.any(Number), auditSeq: r.events[1]!.auditSeq }]);
    // Actions → effects: every step executed once, its ledger entry and audit entry named.
    expect(l.actions.map((a) => a.type)).toEqual(c!.plan.actions.map((a) => a.type));
    for (const a of l.actions) {
      expect(a.executed?.auditSeq, a.key).toBeGreaterThan(r.events.at(-1)!.auditSeq);
      expect(a.effect).toMatchObject({ key: a.key, action: a.type, applications: 1 });
      expect(a.compensation.compensated).toBeNull();
      expect(a.compensation.type).toBe(env.model.config.actions[a.type]!.compensation);
    }
    expect(l.outcomeEntry).toMatchObject({ outcome: 'approved' });
    // Every audit entry of the episode and its case, in chain order, and nothing else.
    const all = await collect(env.store.audit());
    expect(l.auditSeqs).toEqual(all.filter((e) => e.actor === 'ep-lin' || e.actor === caseId).map((e) => e.seq));

    // Asked by the case id: the same lineage.
    const byCase = await lineageOf(env, caseId);
    expect({ ...byCase, id: 'ep-lin' }).toEqual(l);
    const text = renderLineage(l);
    for (const s of [
      'Observations (sources)',
      'source shop-orders',
      'Gate decisions',
      `rule ${c!.decision.ruleId}`,
      'Reviews',
      `claimed by ${LEAD.id}`,
      'Actions → effects',
      'effect applied 1×',
      'Outcome',
    ])
      expect(text).toContain(s);
    await expect(buildLineage('nope', storeLineageSource(env.store))).rejects.toBeInstanceOf(LineageNotFoundError);
  });
});

describe('freshness on the runtime: an approval after the data went stale', () => {
  it('is gated again at its own time; the new case shows why (freshness.stale); its approval acts; lineage and audit query show both', async () => {
    const base = await refunds();
    // Refunds data stale after 10 minutes, for this test (the shipped limit is a day).
    const model: LoadedModel = {
      ...base,
      config: {
        ...base.config,
        freshness: { sources: { 'shop-orders': { maxAgeMs: 10 * MIN } }, onStale: 'review', maxReperceives: 0 },
      },
    };
    const env = await openEnv({ runtime: { models: [model] } });
    const [c] = await reviewSignals({ tier: 1 });
    await env.rt.startEpisode('refunds', c!.signal, { episodeId: 'ep-stale' });
    const first = await toCase(env, 'ep-stale');
    env.clock.advanceTo(env.clock.now() + 5 * MIN);
    await env.rt.command(cmd('claim', first, LEAD));
    env.clock.advanceTo(env.clock.now() + 25 * MIN);
    await env.rt.command(cmd('approve', first, LEAD));
    const second = await toCase(env, 'ep-stale', 'ep-stale.case-2');
    const c2 = caseCtx(await env.rt.get(second));
    expect(c2.decision.ruleId).toBe('freshness.stale');
    expect(c2.decision.reasons[0]).toMatch(
      /^stale data: the observation from 'shop-orders' \(observed .*\) is 3\dm \d\ds old at .*, above its limit 10m 00s; a reviewer decides whether to act on it$/,
    );
    // Nothing ran on the stale approval.
    expect(await env.world.lookup('ep-stale/0')).toBeUndefined();
    await env.rt.command(cmd('claim', second, LEAD2));
    await env.rt.command(cmd('approve', second, LEAD2, { comment: 'checked the order again: still lost' }));
    const done = await driveUntilDone(env, 'ep-stale');
    expect(agentCtx(done)).toMatchObject({ outcome: 'approved', caseIds: [first, second], staleAccepted: true });

    const l = await lineageOf(env, 'ep-stale');
    expect(l.decisions.map((d) => d.ruleId)).toEqual([c!.decision.ruleId, 'freshness.stale']);
    expect(l.reviews.map((r) => r.caseId)).toEqual([first, second]);
    expect(l.reviews[1]!.decision?.ruleId).toBe('freshness.stale');
    const stale = await new AuditIndex(env.store).query({ rule: 'freshness.stale' });
    expect(stale.map((e) => [e.kind, e.actor])).toEqual([['gate.decision', 'ep-stale']]);
    expect((await verifyAudit(env.store.audit())).ok).toBe(true);
  });
});

describe('handoff lineage and handoff audit query', () => {
  it('print the lineage (text and one JSON object) and query the log by actor, reviewer, rule and time; bad input names the field', async () => {
    const env = await openEnv();
    const [c, d] = await reviewSignals({ tier: 1 });
    for (const [id, s, reviewer] of [
      ['ep-a', c!, LEAD],
      ['ep-b', d!, LEAD2],
    ] as const) {
      await env.rt.startEpisode('refunds', s.signal, { episodeId: id });
      const caseId = await toCase(env, id);
      await env.rt.command(cmd('claim', caseId, reviewer));
      await env.rt.command(cmd('approve', caseId, reviewer));
      await driveUntilDone(env, id);
      env.clock.advanceTo(env.clock.now() + 3600_000);
    }
    const expected = await lineageOf(env, 'ep-a');
    const all = await collect(env.store.audit());
    await closeEnv(env);

    const json = await runCli(['lineage', 'ep-a.case-1', '--data', env.dir, '--json']);
    expect(json.code, json.stderr).toBe(0);
    expect(JSON.parse(json.stdout)).toEqual({ ...expected, id: 'ep-a.case-1' });
    const text = await runCli(['lineage', 'ep-a', '--data', env.dir]);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toContain('Lineage of ep-a · model refunds · done · outcome approved');
    expect(text.stdout).toContain(`claimed by ${LEAD.id}`);

    const q = async (...args: string[]) => {
      const r = await runCli(['audit', 'query', '--data', env.dir, '--json', ...args]);
      expect(r.code, r.stderr).toBe(0);
      return (JSON.parse(r.stdout) as { count: number; entries: { seq: number }[] }).entries.map((e) => e.seq);
    };
    const seqs = (f: (e: (typeof all)[number]) => boolean) => all.filter(f).map((e) => e.seq);
    expect(await q('--actor', 'ep-a')).toEqual(seqs((e) => e.actor === 'ep-a' || e.actor === 'ep-a.case-1'));
    expect(await q('--actor', 'ep-a.case-1')).toEqual(seqs((e) => e.actor === 'ep-a.case-1'));
    expect(await q('--reviewer', LEAD2.id)).toEqual(seqs((e) => e.by === LEAD2.id));
    expect(await q('--reviewer', LEAD2.id, '--actor', 'ep-a')).toEqual([]);
    expect(await q('--rule', c!.decision.ruleId)).toEqual(
      seqs((e) => e.kind === 'gate.decision' && e.data.ruleId === c!.decision.ruleId),
    );
    const firstB = all.find((e) => e.actor === 'ep-b')!;
    expect(await q('--since', new Date(firstB.at).toISOString())).toEqual(seqs((e) => e.at >= firstB.at));
    expect(await q('--until', new Date(firstB.at - 1).toISOString())).toEqual(seqs((e) => e.at < firstB.at));

    const table = await runCli(['audit', 'query', '--data', env.dir, '--reviewer', LEAD.id]);
    expect(table.stdout).toMatch(/case\.claimed\s+ep-a\.case-1\s+r-sofia/);

    const bad = await runCli(['audit', 'query', '--data', env.dir, '--since', 'yesterday', '--json']);
    expect(bad.code).toBe(2);
    expect(JSON.parse(bad.stdout)).toMatchObject({
      ok: false,
      error: { code: 'contract.invalid', details: { issues: [{ path: 'since' }] } },
    });
    const missing = await runCli(['lineage', 'ep-zzz', '--data', env.dir, '--json']);
    expect(missing.code).toBe(2);
    expect(JSON.parse(missing.stdout)).toMatchObject({
      ok: false,
      error: { code: 'lineage.not_found', details: { id: 'ep-zzz' } },
    });
  }, 60_000);
});

describe('the console: GET /api/cases/<id>/lineage', () => {
  it("serves the lineage of the case's episode to those who may open the case, and nobody else", async () => {
    const env = await openEnv();
    const [c] = await reviewSignals({ tier: 1 });
    await env.rt.startEpisode('refunds', c!.signal, { episodeId: 'ep-gw' });
    const caseId = await toCase(env, 'ep-gw');
    const gw = await Gateway.start({ backend: embeddedBackend(env.rt), port: 0 });
    try {
      const login = async (id: string) => {
        const res = await fetch(`${gw.url}/api/login`, {
          method: 'POST',
          headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify({ id, password: `demo-${id.replace(/^r-/, '')}` }),
        });
        expect(res.status).toBe(200);
        return res.headers.get('set-cookie')!.split(';')[0]!;
      };
      const get = (cookie: string | null) =>
        fetch(`${gw.url}/api/cases/${encodeURIComponent(caseId)}/lineage`, {
          headers: cookie ? { Cookie: cookie } : {},
        });
      const lead = await get(await login(LEAD.id));
      expect(lead.status).toBe(200);
      const body = (await lead.json()) as { lineage: Lineage };
      expect(body.lineage).toMatchObject({
        id: caseId,
        episodeId: 'ep-gw',
        state: 'awaitingReview',
        history: { journal: 'kept' },
      });
      expect(body.lineage.reviews.map((r) => r.caseId)).toEqual([caseId]);
      expect(body.lineage.decisions[0]).toMatchObject({ outcome: 'review', ruleId: c!.decision.ruleId });
      expect(body.lineage.actions.every((a) => a.executed === null && a.compensation.type !== undefined)).toBe(true);
      // An engineer holds no role of the case's tier: refused, as the case itself is.
      expect((await get(await login('r-kai'))).status).toBe(403);
      expect((await get(null)).status).toBe(401);
    } finally {
      await gw.close();
    }
  });

  it('masks effect results named like a sensitive argument for viewers without access to personal data', () => {
    const l = {
      actions: [
        {
          step: 0,
          type: 'pay',
          key: 'e/0',
          executed: null,
          effect: { key: 'e/0', action: 'pay', at: 1, applications: 1, result: { iban: 'DE00', status: 'ok' } },
          compensation: { type: null, key: 'e/0/compensate', compensated: null, effect: null },
        },
      ],
    } as unknown as Lineage;
    const masked = maskLineage(l, (t) => new Set(t === 'pay' ? ['iban'] : []), '••');
    expect(masked.actions[0]!.effect!.result).toEqual({ iban: '••', status: 'ok' });
    expect(l.actions[0]!.effect!.result).toEqual({ iban: 'DE00', status: 'ok' });
  });
});
