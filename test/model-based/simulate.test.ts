/**
 * Acceptance (d): `handoff simulate` is deterministic for a seed (two runs give the same report apart
 * from wall time, in-process and through the CLI) and a faulty run breaks no invariant.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { loadModel } from '../../src/models/loader.ts';
import { parseFaults } from '../../src/base/faults.ts';
import { parseReviewers, runSimulation, type SimulationReport } from '../../src/sim/simulate.ts';
import { REPO } from './support.ts';

const FAULTS = 'perceive=0.05,plan=0.05,execute=0.08,compensate=0.1';
const stable = ({ wallMs: _wall, ...rest }: SimulationReport) => rest;

describe('handoff simulate', () => {
  it('parses reviewer specs', () => {
    expect(parseReviewers('12')).toBe(12);
    expect(parseReviewers('support-lead=4,refunds-manager=2,finance-controller=2')).toEqual({
      'support-lead': 4,
      'refunds-manager': 2,
      'finance-controller': 2,
    });
    expect(() => parseReviewers('support-lead=x')).toThrow(/role=count/);
  });

  it('same seed, same report (refunds, by role, with faults); no invariant violated', async () => {
    const model = await loadModel(join(REPO, 'models/refunds'));
    const opts = {
      model,
      cases: 80,
      reviewers: parseReviewers('support-lead=3,refunds-manager=2,finance-controller=2,operator=1'),
      faults: parseFaults(FAULTS),
      seed: 5,
    };
    const a = await runSimulation(opts);
    const b = await runSimulation(opts);
    expect(stable(b)).toEqual(stable(a));
    expect(a.invariants.violations, a.invariants.details.join('\n')).toBe(0);
    expect(a.episodes).toBe(80);
    expect(a.unfinished).toBe(0);
    expect(a.duplicateEffects).toBe(0);
    expect(Object.values(a.injected).reduce((x, y) => x + y, 0)).toBeGreaterThan(0);
    expect(a.cases).toBeGreaterThan(0);
    expect(Object.keys(a.escalations)).toEqual(['tier1', 'tier2', 'tier3']);
    expect(a.slaAttainment).toBeGreaterThan(0);
    expect(a.mttaMs).toBeGreaterThan(0);
    expect(a.reviewers.byRole).toEqual({
      'finance-controller': 2,
      operator: 1,
      'refunds-manager': 2,
      'support-lead': 3,
    });
    console.log(
      `[simulate] refunds 80 episodes: SLA ${a.slaAttainment}, MTTA ${a.mttaMs} ms, MTTR ${a.mttrMs} ms, escalations ${JSON.stringify(a.escalations)}, faults ${JSON.stringify(a.injected)}, violations ${a.invariants.violations}, ${a.wallMs} ms`,
    );
  });

  it('the CLI prints the same report as a run in this process (incidents)', async () => {
    const args = [
      'simulate',
      'models/incidents',
      '--cases',
      '60',
      '--reviewers',
      '10',
      '--faults',
      FAULTS,
      '--seed',
      '9',
      '--json',
    ];
    const { stdout } = await promisify(execFile)(process.execPath, [join(REPO, 'bin/handoff.js'), ...args], {
      cwd: REPO,
    });
    const cli = JSON.parse(stdout) as SimulationReport;
    const here = await runSimulation({
      model: join(REPO, 'models/incidents'),
      cases: 60,
      reviewers: 10,
      faults: parseFaults(FAULTS),
      seed: 9,
    });
    expect(stable(cli)).toEqual(stable(here));
    expect(cli.invariants.violations, cli.invariants.details.join('\n')).toBe(0);
    expect(cli.unfinished).toBe(0);
  });
});
