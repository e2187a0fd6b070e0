import { describe, expect, it } from 'vitest';
import { checkLayers, cycles, layerViolation, unitOf } from '../../scripts/layers.ts';

describe('layers (scripts/layers.ts, docs/architecture.md "Layers as they are")', () => {
  it('no import goes up or sideways, no import cycle, beyond the baseline; the baseline has no stale entry', () => {
    const started = performance.now();
    const { problems, edges } = checkLayers();
    expect(problems.join('\n')).toBe('');
    expect(edges.length).toBeGreaterThan(500);
    // About 2 s on a quiet machine; the bound only catches a check that stopped scaling (11 s seen under load).
    expect(performance.now() - started).toBeLessThan(60_000);
  });

  it('a new upward import fails, naming file and line', () => {
    const result = checkLayers({ imports: [], cycles: [] });
    for (const v of result.violations)
      expect(
        result.problems.some((p) => p.startsWith(`${v.from}:${v.line} imports ${v.to}`) && p.includes(v.why)),
      ).toBe(true);
    expect(layerViolation('src/contracts/plan.ts', 'src/runtime/runtime.ts')).toMatch(/contracts → runtime: upward/);
    expect(layerViolation('src/machines/agent.ts', 'src/models/define.ts')).toMatch(/same floor/);
    expect(layerViolation('src/runtime/runtime.ts', 'src/machines/agent.ts')).toBeUndefined();
  });

  it('a baseline entry that no longer occurs fails', () => {
    const { problems } = checkLayers({
      imports: [{ import: 'src/contracts/plan.ts -> src/cli/main.ts', reason: 'test' }],
      cycles: [{ cycle: 'src/a.ts | src/b.ts', reason: 'test' }],
    });
    expect(problems).toContain(
      'baseline entry no longer occurs, remove it from scripts/layers-baseline.json: src/contracts/plan.ts -> src/cli/main.ts',
    );
    expect(problems).toContain(
      'baseline cycle no longer occurs, remove it from scripts/layers-baseline.json: src/a.ts | src/b.ts',
    );
  });

  it('units are folders: leaf utilities in base, composition roots in app, the faces at the top', () => {
    expect(unitOf('src/base/clock.ts')).toBe('base');
    expect(unitOf('src/runtime/runtime.ts')).toBe('runtime');
    expect(unitOf('src/app/embedded-console.ts')).toBe('app');
    expect(unitOf('src/cluster.ts')).toBe('entry');
    expect(unitOf('src/index.ts')).toBe('entry');
  });

  it('finds cycles, self-loops included', () => {
    expect(
      cycles(
        ['a', 'b', 'c', 'd'],
        [
          { from: 'a', to: 'b' },
          { from: 'b', to: 'a' },
          { from: 'c', to: 'd' },
          { from: 'd', to: 'd' },
        ],
      ),
    ).toEqual([['a', 'b'], ['d']]);
  });
});
