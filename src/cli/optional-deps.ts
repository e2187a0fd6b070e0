/**
 * Optional peer dependencies, by the feature that needs them. The embedded runtime and `handoff demo`
 * need none of them; a feature whose package is missing fails with `dependency.missing` naming the
 * packages to install (see docs/packaging.md).
 */
import { createRequire } from 'node:module';

export const OPTIONAL_FEATURES: readonly { feature: string; packages: readonly string[] }[] = [
  {
    feature: 'the cluster (--nats, @handoff-hitl/runtime/cluster)',
    packages: ['@nats-io/transport-node', '@nats-io/jetstream', '@nats-io/kv'],
  },
  {
    feature: 'the reviewer console and inspector (handoff start, inspect --format json/stately)',
    packages: ['ws', 'uplot', 'elkjs', '@statelyai/inspect', 'openid-client'],
  },
  {
    feature: 'telemetry (OpenTelemetry traces and Prometheus metrics)',
    packages: [
      '@opentelemetry/sdk-trace-node',
      '@opentelemetry/sdk-metrics',
      '@opentelemetry/resources',
      '@opentelemetry/exporter-trace-otlp-http',
      '@opentelemetry/exporter-prometheus',
    ],
  },
  { feature: 'TypeScript model folders (handlers.ts)', packages: ['tsx'] },
  {
    feature: 'property-based sequences (handoff testgen --property, generated *.property.test.ts)',
    packages: ['fast-check'],
  },
];

/** Whether `pkg` resolves from this package (an ESM-only package without a `require` export still counts). */
export function installed(pkg: string): boolean {
  try {
    createRequire(import.meta.url).resolve(pkg);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== 'MODULE_NOT_FOUND';
  }
}

/** The package named by a module-not-found error, when it is a bare package name. */
export function missingPackage(err: unknown): string | undefined {
  const e = err as NodeJS.ErrnoException | undefined;
  if (e?.code !== 'ERR_MODULE_NOT_FOUND' && e?.code !== 'MODULE_NOT_FOUND') return undefined;
  return /Cannot find (?:package|module) '((?:@[^/']+\/)?[^/.'][^/']*)/.exec(e.message)?.[1];
}

/** "<feature> needs optional packages: npm install a b" for a missing package (all its feature's missing ones). */
export function missingPackageMessage(pkg: string): string {
  const group = OPTIONAL_FEATURES.find((g) => g.packages.includes(pkg));
  if (!group) return `the package '${pkg}' is not installed: npm install ${pkg}`;
  const missing = group.packages.filter((p) => p === pkg || !installed(p));
  return `${group.feature} needs optional packages that are not installed: npm install ${missing.join(' ')}`;
}
