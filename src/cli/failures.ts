/**
 * CLI failures as typed messages: a `HandoffError` as it is, and the system errors a command meets
 * at its edges (a port in use, a folder it may not write, a full disk, LevelDB's own errors) as one
 * line naming what failed, without a stack trace. Anything else is a bug and keeps its stack.
 */
import { InvalidArgumentError } from 'commander';
import { HandoffError } from '../contracts/errors.ts';
import { missingPackage, missingPackageMessage } from './optional-deps.ts';

export function cliError(err: unknown): HandoffError | undefined {
  if (err instanceof HandoffError) return err;
  if (err instanceof InvalidArgumentError) return new HandoffError('usage.invalid', err.message);
  const pkg = missingPackage(err);
  if (pkg) return new HandoffError('dependency.missing', missingPackageMessage(pkg), { package: pkg });
  const e = err as NodeJS.ErrnoException & {
    cause?: NodeJS.ErrnoException & { code?: string };
    address?: string;
    port?: number;
  };
  const code = e?.code ?? e?.cause?.code;
  if (typeof code !== 'string') return undefined;
  const message = e.cause?.message ?? e.message;
  switch (code) {
    case 'EADDRINUSE':
      return new HandoffError(
        'net.port_in_use',
        `port ${e.port ?? ''} on ${e.address ?? 'this host'} is already in use: choose another --port or stop what listens there`.replace(
          'port  ',
          'port ',
        ),
        { port: e.port, address: e.address },
      );
    case 'EADDRNOTAVAIL':
      return new HandoffError(
        'net.address_unavailable',
        `address ${e.address ?? ''} is not available on this host: check --host`,
        { address: e.address },
      );
    case 'EACCES':
    case 'EPERM':
    case 'EROFS':
      return new HandoffError('fs.denied', `permission denied: ${message}`, { path: e.path });
    case 'ENOSPC':
      return new HandoffError('fs.no_space', `no space left on device: ${message}`, { path: e.path });
    case 'LEVEL_CORRUPTION':
      return new HandoffError('store.corrupt', `LevelDB reports ${message}: run \`handoff doctor --data DIR\``);
    case 'LEVEL_IO_ERROR':
      return new HandoffError('store.io_error', `LevelDB could not read or write its files: ${message}`);
    case 'LEVEL_LOCKED':
      return new HandoffError('store.locked', `the data folder is in use by another process: ${message}`);
    default:
      return undefined;
  }
}
