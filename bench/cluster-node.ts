/**
 * One cluster node for the `cluster` benchmark, in its own process: `ClusterNode.start` with the
 * benchmark's model (the refunds pilot with its simulated failures off, bench/lib/workload.ts), so
 * nodes do exactly the work the embedded runtime does in the same run. Prints `ready` on stdout, its
 * status (with its NATS message counts and CPU time) as one JSON line on SIGUSR2, and stops on SIGTERM.
 *
 *   node --import tsx bench/cluster-node.ts <nats-url> <node-name> <namespace>
 */
import pino from 'pino';
import { ClusterNode } from '../src/cluster/node.ts';
import { benchModel } from './lib/workload.ts';

const [url, name, ns] = process.argv.slice(2);
if (!url || !name || !ns) throw new Error('usage: cluster-node.ts <nats-url> <node-name> <namespace>');
const node = await ClusterNode.start({
  servers: url,
  node: name,
  namespace: ns,
  models: [await benchModel()],
  logger: pino({ level: 'silent' }),
  seed: 'bench',
  maxEpisodes: 100_000,
  maxInFlight: 100_000,
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
