/**
 * docs/grafana/handoff-dashboard.json is built on exactly the metrics Handoff exports: every
 * `handoff_*` series its queries read must be an instrument that src/telemetry/metrics.ts declares
 * (Prometheus name: dots → underscores; counters add _total; histograms add _bucket, _sum and _count). A renamed metric
 * fails here instead of as an empty panel.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..', '..');

describe('the Grafana dashboard', () => {
  it('queries only metrics that Handoff declares, and sums counters and histograms (never averages gauges) for cluster times', async () => {
    const source = await readFile(join(ROOT, 'src/telemetry/metrics.ts'), 'utf8');
    const declared = new Map<string, string>();
    for (const m of source.matchAll(
      /create(Histogram|Counter|UpDownCounter|ObservableGauge|ObservableCounter)\('([a-z_.]+)'/g,
    ))
      declared.set(m[2]!.replace(/\./g, '_'), m[1]!);
    for (const m of source.matchAll(/gauge\('([a-z_.]+)'/g)) declared.set(m[1]!.replace(/\./g, '_'), 'ObservableGauge');
    expect(declared.size).toBeGreaterThan(10);
    const dash = JSON.parse(await readFile(join(ROOT, 'docs/grafana/handoff-dashboard.json'), 'utf8')) as {
      panels: { title: string; targets: { expr: string }[] }[];
    };
    const used = new Set<string>();
    for (const p of dash.panels)
      for (const t of p.targets) for (const m of t.expr.matchAll(/handoff_[a-z_]+/g)) used.add(m[0]);
    expect(used.size).toBeGreaterThan(8);
    for (const name of used) {
      const base = name.replace(/_(bucket|sum|count|total)$/, '');
      const kind = declared.get(base);
      expect(kind, `${name} is not a metric Handoff declares`).toBeDefined();
      // The exporter's names: counters end in _total, histograms are read through _bucket/_sum/_count.
      if (/Counter$/.test(kind!) && kind !== 'UpDownCounter')
        expect(name, `${name}: a counter is exported as ${base}_total`).toBe(`${base}_total`);
      else if (kind === 'Histogram')
        expect(name, `${name}: read a histogram through _bucket, _sum or _count`).toMatch(/_(bucket|sum|count)$/);
      else expect(name, `${name}: a gauge has no suffix`).toBe(base);
    }
    // Cluster times come from histograms; the per-node mean gauges are not on the dashboard.
    expect(used.has('handoff_case_mttr')).toBe(false);
    expect(used.has('handoff_case_mtta')).toBe(false);
  });
});
