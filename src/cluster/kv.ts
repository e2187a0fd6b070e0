import { Kvm, type KV, type KvOptions } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';

/**
 * Creates a KV bucket, or binds to it if it exists. Nodes that start together race to create the
 * bucket's stream; the loser's create fails (`subjects overlap with an existing stream`, or
 * `stream name already in use`) although the bucket it wants now exists: it binds to that bucket
 * instead (a real misconfiguration still fails, with the first error).
 */
export async function openBucket(nc: NatsConnection, name: string, opts: Partial<KvOptions>): Promise<KV> {
  try {
    return await new Kvm(nc).create(name, opts);
  } catch (err) {
    return new Kvm(nc).create(name, opts).catch(() => {
      throw err;
    });
  }
}
