/**
 * Demo throughput: `handoff demo` end to end (simulated reviewers, every step persisted to LevelDB),
 * episodes per wall-clock second. Usage: node --import tsx bench/demo-throughput.ts [cases] [--json]
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { runDemo } from '../src/app/demo.ts';

const cases = Number(process.argv.find((a) => /^\d+$/.test(a)) ?? 10_000);
const json = process.argv.includes('--json');
const results = [];
for (const model of ['models/refunds', 'models/incidents']) {
  const data = await mkdtemp(join(tmpdir(), 'handoff-bench-'));
  try {
    const s = await runDemo({
      model,
      cases,
      data,
      reviewers: 12,
      seed: 1,
      resume: false,
      onProgress: (p) => process.stderr.write(`\r${model} ${p.finished}/${p.total}`),
    });
    process.stderr.write('\n');
    results.push({
      model: s.model,
      cases,
      wallMs: s.wallMs,
      episodesPerSecond: s.episodesPerSecond,
      duplicateEffects: s.duplicateEffects,
      unfinished: s.unfinished,
    });
  } finally {
    await rm(data, { recursive: true, force: true });
  }
}
const machine = {
  cpu: cpus()[0]?.model,
  cores: cpus().length,
  node: process.version,
  date: new Date().toISOString().slice(0, 10),
};
if (json) console.log(JSON.stringify({ machine, results }, null, 2));
else {
  console.log(`demo throughput · ${machine.date} · ${machine.cpu} × ${machine.cores} · node ${machine.node}`);
  for (const r of results)
    console.log(
      `${r.model.padEnd(10)} ${r.cases} episodes  ${(r.wallMs / 1000).toFixed(1)} s  ${r.episodesPerSecond} episodes/s  duplicates ${r.duplicateEffects}  unfinished ${r.unfinished}`,
    );
}
