/**
 * Inspection overhead: `handoff demo` end to end (as bench/demo-throughput.ts), with the inspection
 * stream off and on, in alternating rounds; prints episodes per second of each and the ratio.
 *
 * "on" is the production setting: every actor hooked, records redacted and published on the
 * runtime's transport, a subscriber receiving them all (as a gateway's inspector does), and one
 * episode in focus (full records) the whole run, as if an engineer had it open. "on, everything in
 * full" is a Stately bridge of every actor: no sampling, for reference.
 *
 * Usage: node --import tsx bench/inspection-overhead.ts [cases=3000] [--rounds 3] [--model models/refunds] [--full] [--json]
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { InspectionStream, inspectAll } from '../src/inspect/stream.ts';
import { loadModel } from '../src/models/loader.ts';
import { runDemo } from '../src/app/demo.ts';
import type { Transport } from '../src/transport/transport.ts';

const arg = (name: string, dflt: string) => {
  const i = process.argv.indexOf(name);
  return i > 0 && process.argv[i + 1] ? process.argv[i + 1]! : dflt;
};
const cases = Number(process.argv.slice(2).find((a) => /^\d+$/.test(a)) ?? 3000);
const rounds = Number(arg('--rounds', '3'));
const modelDir = arg('--model', 'models/refunds');
const withFull = process.argv.includes('--full');
const json = process.argv.includes('--json');
const model = await loadModel(modelDir);

type Mode = 'off' | 'on' | 'full';
interface Run {
  mode: Mode;
  episodesPerSecond: number;
  /** Episodes per second of CPU time of this process (LevelDB's threads included): robust when other work shares the machine. */
  episodesPerCpuSecond: number;
  wallMs: number;
  recorded: number;
  published: number;
  dropped: number;
  received: number;
  workMs: number;
}

async function run(mode: Mode): Promise<Run> {
  const data = await mkdtemp(join(tmpdir(), 'handoff-bench-inspect-'));
  let stream: InspectionStream | null = null;
  let received = 0;
  try {
    const inspection =
      mode === 'off'
        ? undefined
        : (() => {
            const s = new InspectionStream({ models: [model], focusAll: mode === 'full' });
            stream = s;
            // An engineer watching one episode the whole run.
            s.focus(['demo-00001', 'demo-00001.case-1'], 3_600_000);
            return {
              inspect: s.inspect,
              attach: (t: Transport) => {
                s.attach(t);
                t.subscribe(inspectAll('default'), () => void received++);
              },
            };
          })();
    const cpu0 = process.cpuUsage();
    const summary = await runDemo({
      model: modelDir,
      cases,
      data,
      reviewers: 12,
      seed: 1,
      resume: false,
      ...(inspection ? { inspection } : {}),
    });
    if (summary.unfinished > 0 || summary.duplicateEffects > 0)
      throw new Error(`run ${mode}: ${summary.unfinished} unfinished, ${summary.duplicateEffects} duplicate effects`);
    const cpu = process.cpuUsage(cpu0);
    const cpuS = (cpu.user + cpu.system) / 1e6;
    const st = (stream as InspectionStream | null)?.stats;
    return {
      mode,
      episodesPerSecond: summary.episodesPerSecond,
      episodesPerCpuSecond: Math.round((cases / cpuS) * 10) / 10,
      wallMs: summary.wallMs,
      recorded: st?.recorded ?? 0,
      published: st?.published ?? 0,
      dropped: st?.dropped ?? 0,
      received,
      workMs: Math.round(st?.workMs ?? 0),
    };
  } finally {
    (stream as InspectionStream | null)?.close();
    await rm(data, { recursive: true, force: true });
  }
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

const modes: Mode[] = withFull ? ['off', 'on', 'full'] : ['off', 'on'];
const runs: Run[] = [];
// A warm-up run (JIT, file cache), not counted.
await run('off');
for (let r = 0; r < rounds; r++) {
  for (const mode of r % 2 === 0 ? modes : [...modes].reverse()) {
    const x = await run(mode);
    runs.push(x);
    process.stderr.write(
      `round ${r + 1}/${rounds} ${mode.padEnd(4)} ${x.episodesPerSecond} episodes/s, ${x.episodesPerCpuSecond} per CPU-second${mode === 'off' ? '' : ` · published ${x.published} of ${x.recorded} records, dropped ${x.dropped}, ${x.workMs} ms of stream work`}\n`,
    );
  }
}
const eps = (m: Mode) => median(runs.filter((x) => x.mode === m).map((x) => x.episodesPerSecond));
const cpuEps = (m: Mode) => median(runs.filter((x) => x.mode === m).map((x) => x.episodesPerCpuSecond));
const off = eps('off');
const on = eps('on');
const cpuRatio = Math.round((cpuEps('on') / cpuEps('off')) * 1000) / 1000;
// Each round runs off and on back to back: the ratio within a round cancels most of the drift of a
// shared machine; the median over rounds is the figure.
const paired: number[] = [];
const pairedCpu: number[] = [];
for (let r = 0; r < rounds; r++) {
  const inRound = runs.slice(r * modes.length, (r + 1) * modes.length);
  const a = inRound.find((x) => x.mode === 'off');
  const b = inRound.find((x) => x.mode === 'on');
  if (a && b) {
    paired.push(b.episodesPerSecond / a.episodesPerSecond);
    pairedCpu.push(b.episodesPerCpuSecond / a.episodesPerCpuSecond);
  }
}
const pairedRatio = Math.round(median(paired) * 1000) / 1000;
const pairedCpuRatio = Math.round(median(pairedCpu) * 1000) / 1000;
const onRuns = runs.filter((x) => x.mode === 'on');
const workShare =
  Math.round((onRuns.reduce((t, x) => t + x.workMs, 0) / onRuns.reduce((t, x) => t + x.wallMs, 0)) * 10000) / 100;
const machine = {
  cpu: cpus()[0]?.model,
  cores: cpus().length,
  node: process.version,
  date: new Date().toISOString().slice(0, 10),
};
const result = {
  machine,
  model: model.name,
  cases,
  rounds,
  offEpisodesPerSecond: off,
  onEpisodesPerSecond: on,
  ratio: Math.round((on / off) * 1000) / 1000,
  pairedRatio,
  pairedOverheadPercent: Math.round((1 - pairedRatio) * 1000) / 10,
  pairedCpuRatio,
  pairedCpuOverheadPercent: Math.round((1 - pairedCpuRatio) * 1000) / 10,
  streamWorkPercentOfWall: workShare,
  overheadPercent: Math.round((1 - on / off) * 1000) / 10,
  offEpisodesPerCpuSecond: cpuEps('off'),
  onEpisodesPerCpuSecond: cpuEps('on'),
  cpuRatio,
  cpuOverheadPercent: Math.round((1 - cpuRatio) * 1000) / 10,
  ...(withFull
    ? {
        fullEpisodesPerSecond: eps('full'),
        fullRatio: Math.round((eps('full') / off) * 1000) / 1000,
        fullCpuRatio: Math.round((cpuEps('full') / cpuEps('off')) * 1000) / 1000,
      }
    : {}),
  runs,
};
if (json) console.log(JSON.stringify(result, null, 2));
else {
  console.log(
    `inspection overhead · ${machine.date} · ${machine.cpu} × ${machine.cores} · node ${machine.node} · ${model.name} · ${cases} episodes × ${rounds} rounds (median)`,
  );
  console.log(`inspection off  ${off.toFixed(1)} episodes/s   ${cpuEps('off').toFixed(1)} episodes per CPU-second`);
  console.log(`inspection on   ${on.toFixed(1)} episodes/s   ${cpuEps('on').toFixed(1)} episodes per CPU-second`);
  console.log(
    `ratio on/off    ${pairedRatio.toFixed(3)} episodes/s (median of the rounds' ratios; overhead ${result.pairedOverheadPercent.toFixed(1)}%)`,
  );
  console.log(
    `                ${pairedCpuRatio.toFixed(3)} episodes per CPU-second (overhead ${result.pairedCpuOverheadPercent.toFixed(1)}%; steadier when other work shares the machine)`,
  );
  console.log(
    `stream work     ${workShare.toFixed(2)}% of wall time (redaction, cloning, publishing, measured in the stream)`,
  );
  if (withFull)
    console.log(
      `everything full ${eps('full').toFixed(1)} episodes/s   ratio ${result.fullRatio!.toFixed(3)} wall, ${result.fullCpuRatio!.toFixed(3)} CPU   (no sampling, for reference)`,
    );
}
