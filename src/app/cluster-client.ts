import type { Ack } from '../contracts/ack.ts';
import { parseContract } from '../contracts/parse.ts';
import { ReviewerCommand } from '../contracts/reviewer-command.ts';
import { Leases } from '../cluster/leases.ts';
import { NatsTransport } from '../cluster/nats-transport.ts';
import type { NatsSecurityOptions } from '../security/nats-auth.ts';
import { RetryingClient } from './cluster-demo.ts';

export interface ClusterReviewerClientOptions {
  /** @default 'default' */
  namespace?: string;
  /** TLS and credentials for the client's NATS connection (docs/security.md). */
  security?: NatsSecurityOptions;
  /** The connection's name, as nats-server shows it. @default 'handoff-reviewer-client' */
  name?: string;
  /** Per attempt. @default 10 s */
  timeoutMs?: number;
  /** Attempts for a retryable refusal (overload, a takeover in progress, a timeout). @default 10 */
  attempts?: number;
}

/**
 * Reviewer commands from outside a cluster's nodes (a team's own service, a script), each sent
 * straight to the node that owns the case: the client watches the namespace's leases bucket, as the
 * nodes do, so it knows every group's holder. Without a known holder, or when the holder no longer
 * has the case, a command goes to the case's public subject, where any node takes it and forwards
 * it. A command is checked against the `ReviewerCommand` contract before it is sent (a bad field is a
 * `contract.invalid` error naming it, and nothing is sent); the nodes check it again. Retryable
 * refusals are retried with the same `commandId`, so a retry of an applied command is answered as
 * done, never applied twice. (`HandoffClient` knows only a transport and always takes the public
 * subject.)
 *
 * Opening it opens the leases bucket (created with one replica if no node has created it yet).
 */
export class ClusterReviewerClient {
  readonly #transport: NatsTransport;
  readonly #leases: Leases;
  readonly #client: RetryingClient;

  private constructor(transport: NatsTransport, leases: Leases, client: RetryingClient) {
    this.#transport = transport;
    this.#leases = leases;
    this.#client = client;
  }

  static async connect(
    servers: string | string[],
    opts: ClusterReviewerClientOptions = {},
  ): Promise<ClusterReviewerClient> {
    const namespace = opts.namespace ?? 'default';
    const transport = await NatsTransport.connect(servers, {
      name: opts.name ?? 'handoff-reviewer-client',
      ...(opts.security ? { security: opts.security } : {}),
    });
    try {
      const leases = await Leases.open(transport.nc, { namespace });
      const client = new RetryingClient(transport, {
        namespace,
        timeoutMs: opts.timeoutMs ?? 10_000,
        attempts: opts.attempts ?? 10,
        owner: (group) => leases.ownerOf(group),
      });
      return new ClusterReviewerClient(transport, leases, client);
    } catch (err) {
      await transport.close();
      throw err;
    }
  }

  /** Resolves with the durable acknowledgement, or rejects with the typed error (its `code` kept). */
  async command(cmd: unknown): Promise<Ack> {
    const parsed = parseContract(ReviewerCommand, cmd, 'ReviewerCommand');
    return (await this.#client.command(parsed)) as Ack;
  }

  /** Commands sent, how many went straight to the owner, and retries. */
  get stats(): RetryingClient['stats'] {
    return this.#client.stats;
  }

  async close(): Promise<void> {
    this.#leases.close();
    await this.#transport.close();
  }
}
