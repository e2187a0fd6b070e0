import { InvalidArgumentError, Option, type Command } from 'commander';
import { loadModel } from '../models/loader.ts';
import { ClusterNode, type NodeEvent } from '../cluster/node.ts';
import { runClusterDemo, type ClusterDemoSummary } from '../cluster/demo.ts';
import { paint, printJson, progressBar, type ProgressMode } from './output.ts';

const num = (name: string, min: number) => (v: string) => {
  const n = Number(v);
  if (!Number.isFinite(n) || n < min) throw new InvalidArgumentError(`${name} must be a number ≥ ${min}`);
  return n;
};
const collect = (v: string, prev: string[]) => [...prev, v];

interface NodeOptions {
  nats: string;
  node: string;
  namespace: string;
  model: string[];
  timeScale: number;
  maxInFlight: number;
  maxEpisodes: number;
  seed?: string;
  events: boolean;
  json: boolean;
}

/**
 * `handoff node` runs one node of a cluster on NATS; `handoff cluster-demo` drives demo episodes
 * against a running cluster. See docs/distribution.md.
 */
export function registerNode(program: Command): void {
  program
    .command('node')
    .description('Run one node of a Handoff cluster on NATS (JetStream persistence, leases, failover).')
    .requiredOption('--nats <url>', 'NATS server URL(s), comma-separated, e.g. nats://127.0.0.1:4222')
    .requiredOption('--node <name>', 'this node\'s name, unique in the cluster')
    .option('--namespace <ns>', 'namespace of subjects, streams and buckets', 'default')
    .addOption(new Option('--model <dir>', 'model folder; repeat for several').argParser(collect).default([], 'models/refunds'))
    .option('--time-scale <n>', 'simulated ms per wall ms of the cluster clock (demos: 3600 runs an hour in a second); the first node fixes it', num('--time-scale', 0.001), 1)
    .option('--max-in-flight <n>', 'backpressure: operations in flight before commands are refused as overloaded', num('--max-in-flight', 1), 2000)
    .option('--max-episodes <n>', 'backpressure: episodes this node hosts at most', num('--max-episodes', 1), 2000)
    .option('--seed <s>', 'seed of the stable draws handed to models')
    .option('--events', 'print adoptions, lost leases and membership changes as JSON lines on stdout', false)
    .option('--json', 'print {"node", "member", ...} as one JSON line once running', false)
    .action(async (o: NodeOptions) => {
      const models = await Promise.all((o.model.length ? o.model : ['models/refunds']).map((m) => loadModel(m)));
      const onEvent = o.events ? (e: NodeEvent) => process.stdout.write(`${JSON.stringify({ event: e.type, node: o.node, ...e })}\n`) : undefined;
      const node = await ClusterNode.start({
        servers: o.nats.split(','),
        node: o.node,
        namespace: o.namespace,
        models,
        timeScale: o.timeScale,
        maxInFlight: o.maxInFlight,
        maxEpisodes: o.maxEpisodes,
        ...(o.seed ? { seed: o.seed } : {}),
        ...(onEvent ? { onEvent } : {}),
      });
      const ready = { event: 'ready', node: o.node, member: node.memberId, namespace: o.namespace, nats: o.nats, models: models.map((m) => m.name), pid: process.pid };
      if (o.json || o.events) process.stdout.write(`${JSON.stringify(ready)}\n`);
      else process.stdout.write(`${paint.bold('Handoff node')} ${o.node} (${node.memberId}) on ${o.nats} · namespace ${o.namespace} · models ${ready.models.join(', ')}\n`);
      await new Promise<void>((resolve) => {
        const stop = () => {
          process.off('SIGINT', stop);
          process.off('SIGTERM', stop);
          void node
            .stop()
            .catch(() => undefined)
            .finally(resolve);
        };
        process.on('SIGINT', stop);
        process.on('SIGTERM', stop);
      });
      if (o.json || o.events) process.stdout.write(`${JSON.stringify({ event: 'stopped', ...node.status() })}\n`);
    });

  program
    .command('cluster-demo')
    .description('Drive demo episodes against a running cluster (`handoff node ...`) and print the summary.')
    .requiredOption('--nats <url>', 'NATS server URL(s), comma-separated')
    .option('--namespace <ns>', 'namespace of the cluster', 'default')
    .option('--model <dir>', 'model folder', 'models/refunds')
    .option('--cases <n>', 'episodes to run', num('--cases', 1), 1000)
    .option('--reviewers <n>', 'simulated reviewers', num('--reviewers', 1), 12)
    .option('--seed <n>', 'seed: same seed, same signals', num('--seed', 0), 1)
    .option('--arrival-ms <ms>', 'mean simulated time between arriving episodes', num('--arrival-ms', 1), 90_000)
    .option('--time-scale <n>', 'simulated ms per wall ms (must match the nodes)', num('--time-scale', 0.001), 3600)
    .option('--timeout <s>', 'give up after this many seconds', num('--timeout', 1), 600)
    .addOption(new Option('--progress <mode>', 'progress display on stderr').choices(['auto', 'lines', 'off']).default('auto'))
    .option('--json', 'print the summary as JSON on stdout', false)
    .action(async (o: { nats: string; namespace: string; model: string; cases: number; reviewers: number; seed: number; arrivalMs: number; timeScale: number; timeout: number; progress: ProgressMode; json: boolean }) => {
      const bar = progressBar(o.progress, 'episodes');
      const s = await runClusterDemo({
        servers: o.nats.split(','),
        namespace: o.namespace,
        model: o.model,
        cases: o.cases,
        reviewers: o.reviewers,
        seed: o.seed,
        arrivalMs: o.arrivalMs,
        timeScale: o.timeScale,
        timeoutMs: o.timeout * 1000,
        onProgress: (p) => bar.update(p.finished, p.total, `· ${p.submitted} submitted`),
      });
      bar.done();
      if (o.json) printJson(s);
      else printSummary(s);
      const violations = Object.values(s.invariantViolations).reduce((a, b) => a + b, 0);
      if (s.unfinished > 0 || s.duplicateEffects > 0 || violations > 0 || s.outcomeAuditMismatch > 0 || !s.auditChain.ok) process.exitCode = 1;
    });
}

function printSummary(s: ClusterDemoSummary): void {
  const out = process.stdout;
  out.write(`\n${paint.bold(`Handoff cluster demo · namespace ${s.namespace} · model ${s.model} · ${s.episodes} episodes · ${s.reviewers} reviewers`)}\n`);
  out.write(`outcomes ${JSON.stringify(s.outcomes)}\n`);
  out.write(`unfinished ${s.unfinished} · effects ${s.effects} · duplicate effects ${s.duplicateEffects} · outcome audit mismatches ${s.outcomeAuditMismatch}\n`);
  out.write(`audit chain ${s.auditChain.ok ? paint.green('intact') : paint.red(`broken: ${s.auditChain.reason}`)} (${s.auditChain.entries} entries) · violations ${JSON.stringify(s.invariantViolations)}\n`);
  out.write(`${paint.dim(`${s.episodesPerSecond} episodes/s · ${(s.wallMs / 1000).toFixed(1)} s wall · client ${JSON.stringify(s.client)}`)}\n`);
}
