/**
 * One cluster node for the `cluster` benchmark, in its own process: `ClusterNode.start` with the
 * benchmark's model (the refunds pilot with its simulated failures off, bench/lib/workload.ts), so
 * nodes do exactly the work the embedded runtime does in the same run: the model's own gate, as
 * bench/episodes.ts, or with `screened` the prompt-injection screen in front of it, as a node of
 * `handoff start --nats` has (the benchmark's `--screened` runs the embedded runtime with it too).
 * Prints `ready` on stdout, its status (with its NATS message counts and CPU time) as one JSON line
 * on SIGUSR2, and stops on SIGTERM.
 *
 *   node --import tsx bench/cluster-node.ts <nats-url> <node-name> <namespace> [screened]
 */
import pino from 'pino';
import { ClusterNode } from '../src/cluster/node.ts';
import { benchModel } from './lib/workload.ts';
import { tuneGc } from '../src/runtime/gc-tuning.ts';

// The V8 settings of `handoff start --nats` (src/cli/main.ts) and of the embedded run it is compared with.
tuneGc();

const [url, name, ns, gate] = process.argv.slice(2);
if (!url || !name || !ns) throw new Error('usage: cluster-node.ts <nats-url> <node-name> <namespace> [screened]');
const node = await ClusterNode.start({
  servers: url,
  node: name,
  namespace: ns,
  models: [await benchModel()],
  logger: pino({ level: 'silent' }),
  seed: 'bench',
  maxEpisodes: 100_000,
  maxInFlight: 100_000,
  // The embedded run it is compared with gates with the model's own gate (bench/episodes.ts); a node
  // screens every observation for prompt injection first (its reasoning layer), unless told the same.
  ...(gate === 'screened' ? {} : { runtime: { gateFor: (m) => m.gate } }),
});
process.stdout.write('ready\n');
// The data connection's message counts and the process's CPU time come with the status: the benchmark
// reads round trips and CPU per episode from them.
process.on('SIGUSR2', () =>
  process.stdout.write(
    `${JSON.stringify({ status: { ...node.status(), nats: node.transport.nc.stats(), cpu: process.cpuUsage() } })}\n`,
  ),
);
process.once('SIGTERM', () => {
  void node.stop().finally(() => process.exit(0));
});
