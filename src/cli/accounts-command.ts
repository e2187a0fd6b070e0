import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { LevelStore } from '../runtime/level-store.ts';
import { ensureFolder } from '../base/data-folder.ts';
import { ServiceAccounts, parseScopes } from '../gateway/service-accounts.ts';
import { dataKeyring, openDataStore } from './keys-command.ts';
import { paint, printJson, table } from './output.ts';
import { natsServers } from './node-command.ts';
import { addNatsSecurityOptions, natsSecurityFromOptions, type NatsSecurityCliOptions } from '../security/nats-auth.ts';

interface StoreOptions extends NatsSecurityCliOptions {
  /** A cluster: the accounts live in the namespace's JetStream store instead of a data folder. */
  nats?: string;
  namespace: string;
  data: string;
  dataKeyFile?: string;
  dataKeyId?: string;
  json: boolean;
}

function storeOptions(cmd: Command): Command {
  cmd
    .option('--data <dir>', 'data folder (LevelDB) of the handoff start that serves the API', '.handoff/console')
    .option(
      '--data-key-file <path>',
      'file of kid:base64key lines, when the folder is encrypted (default: $HANDOFF_DATA_KEY_FILE)',
    )
    .option('--data-key-id <kid>', 'the active data key (default: $HANDOFF_DATA_KEY_ID, or the only key)')
    .option('--json', 'print as JSON', false);
  cmd
    .option(
      '--nats <url>',
      "a cluster's NATS server URL(s), comma-separated: its accounts, shared by every node (instead of --data)",
      natsServers,
    )
    .option('--namespace <ns>', 'with --nats: the namespace of the cluster', 'default');
  return addNatsSecurityOptions(cmd);
}

async function withAccounts<T>(
  o: StoreOptions,
  create: boolean,
  fn: (accounts: ServiceAccounts) => Promise<T>,
): Promise<T> {
  const keyring = dataKeyring(o);
  if (o.nats) {
    // The NATS packages are optional: loaded only for a cluster.
    const { openClusterAccounts } = await import('../app/cluster-console.ts');
    const security = natsSecurityFromOptions(o);
    const cluster = await openClusterAccounts(o.nats.split(','), { namespace: o.namespace, security, keyring });
    try {
      return await fn(cluster.accounts);
    } finally {
      await cluster.close();
    }
  }
  let store: LevelStore;
  if (create && !existsSync(join(o.data, 'CURRENT'))) {
    // An account may be created before the first `handoff start` on a new folder.
    await ensureFolder(o.data);
    store = await LevelStore.open(o.data, { keyring });
  } else store = await openDataStore(o.data, keyring);
  try {
    return await fn(new ServiceAccounts(store));
  } finally {
    await store.close();
  }
}

const collect = (v: string, prev: string[]) => [...prev, v];

/**
 * `handoff accounts create | list | revoke`: service accounts of the `/api/v1` API (docs/api.md).
 * They open the data folder, so they run while its `handoff start` is stopped (LevelDB allows one
 * process): the running gateway reads the accounts from the folder on every request.
 */
export function registerAccounts(program: Command): void {
  const accounts = program
    .command('accounts')
    .description(
      'Service accounts of the /api/v1 API: keys for programs, scoped per model and operation (docs/api.md).',
    );

  storeOptions(
    accounts
      .command('create')
      .description('Create a service account and print its key (once: only its hash is stored).')
      .requiredOption('--name <name>', 'who uses the key (a system or team name)')
      .option(
        '--scope <model:operation>',
        'an operation on a model, e.g. refunds:signals:submit, refunds:episodes:read, or refunds:* (repeat)',
        collect,
        [],
      ),
  ).action(async (o: StoreOptions & { name: string; scope: string[] }) => {
    const scopes = parseScopes(o.scope);
    const { account, key } = await withAccounts(o, true, (a) => a.create(o.name, scopes));
    if (o.json) printJson({ ...account, key });
    else {
      process.stdout.write(`${paint.green('created')} ${account.id} (${account.name})\n`);
      process.stdout.write(
        `scopes: ${Object.entries(account.scopes)
          .map(([m, ops]) => `${m}: ${ops.join(', ')}`)
          .join('; ')}\n`,
      );
      process.stdout.write(`key (shown once; store it as a secret): ${key}\n`);
    }
  });

  storeOptions(
    accounts
      .command('list')
      .description('List the service accounts (ids, names, scopes, revoked or not); never their keys.'),
  ).action(async (o: StoreOptions) => {
    const list = await withAccounts(o, false, (a) => a.list());
    if (o.json) printJson({ accounts: list });
    else if (list.length === 0) process.stdout.write('no service accounts\n');
    else {
      const rows: (string | number)[][] = [['id', 'name', 'scopes', 'created', 'revoked']];
      for (const a of list)
        rows.push([
          a.id,
          a.name,
          Object.entries(a.scopes)
            .map(([m, ops]) => `${m}:${ops.join(',')}`)
            .join(' '),
          new Date(a.createdAt).toISOString(),
          a.revokedAt === null ? '' : paint.red(new Date(a.revokedAt).toISOString()),
        ]);
      process.stdout.write(`${table(rows, { header: true, align: ['l', 'l', 'l', 'l', 'l'] })}\n`);
    }
  });

  storeOptions(
    accounts
      .command('revoke')
      .description('Revoke a service account: its key is refused (401) from then on.')
      .argument('<id>', 'account id (sa-…)'),
  ).action(async (id: string, o: StoreOptions) => {
    const account = await withAccounts(o, false, (a) => a.revoke(id));
    if (o.json) printJson(account);
    else process.stdout.write(`${paint.yellow('revoked')} ${account.id} (${account.name})\n`);
  });
}
