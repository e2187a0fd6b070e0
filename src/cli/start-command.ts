import { InvalidArgumentError, Option, type Command } from 'commander';
import { hashPassword } from '../httpkit/auth.ts';
import { startConsole } from '../app/embedded-console.ts';
import { paint, printJson } from './output.ts';
import { ProcessTelemetry } from '../telemetry/process.ts';
import { addClusterOptions, runClusterNode } from './node-command.ts';
import { dataKeyring } from './keys-command.ts';
import {
  addGatewayTlsOptions,
  checkListenAddress,
  gatewaySecurityFromOptions,
  type GatewayTlsCliOptions,
} from '../security/tls-options.ts';

const num = (name: string, min: number) => (v: string) => {
  const n = Number(v);
  if (!Number.isFinite(n) || n < min) throw new InvalidArgumentError(`${name} must be a number ≥ ${min}`);
  return n;
};
const collect = (v: string, prev: string[]) => [...prev, v];

interface StartOptions extends GatewayTlsCliOptions {
  port: number;
  host: string;
  data: string;
  model: string[];
  demoLoad: number;
  demoBurst?: number;
  demoSeed?: number;
  sessionIdle: number;
  sessionMax: number;
  secureCookies: boolean;
  allowOrigin: string[];
  json: boolean;
  nats?: string;
  namespace: string;
  node: string;
  timeScale: number;
  maxInFlight: number;
  maxEpisodes: number;
  seed?: string;
  events: boolean;
  console: boolean;
  gatewayConfig?: string;
  metrics?: string;
}

/** `handoff start` (the gateway and reviewer console) and `handoff users hash` (reviewer credentials). */
export function registerStart(program: Command): void {
  const start = program
    .command('start')
    .description(
      'Run the runtime with the reviewer console (HTTP + WebSocket gateway, login, queues, cases, dashboards): embedded, or with --nats as one node of a cluster.',
    )
    .option('--port <n>', 'port to listen on (0: any free port)', num('--port', 0), 7400)
    .option('--host <addr>', 'address to listen on', '127.0.0.1')
    .option('--data <dir>', 'data folder (LevelDB)', '.handoff/console')
    .addOption(
      new Option('--model <dir>', 'model folder; repeat for several')
        .argParser(collect)
        .default([], 'models/refunds and models/incidents'),
    )
    .option('--demo-load <n>', 'keep a background trickle of n synthetic episodes per minute', num('--demo-load', 0), 0)
    .option(
      '--demo-burst <n>',
      'synthetic episodes started at once with --demo-load (default: n)',
      num('--demo-burst', 0),
    )
    .option('--demo-seed <n>', 'seed of the synthetic episodes (same seed, same signals)', num('--demo-seed', 0))
    .option('--session-idle <minutes>', 'a session unused this long expires', num('--session-idle', 0.01), 30)
    .option('--session-max <hours>', 'a session expires this long after sign-in', num('--session-max', 0.01), 12)
    .option('--secure-cookies', 'mark the session cookie Secure (when served behind TLS)', false)
    .addOption(
      new Option('--allow-origin <origin>', 'another origin allowed to send commands (a TLS proxy); repeatable')
        .argParser(collect)
        .default([], 'none'),
    )
    .addOption(
      new Option(
        '--gateway-config <file>',
        'gateway config (JSON): single sign-on with an OpenID Connect provider, passwords on or off (docs/console.md)',
      ).env('HANDOFF_GATEWAY_CONFIG'),
    )
    .option(
      '--metrics <addr>',
      'serve Prometheus metrics at http://<addr>/metrics (host:port, :port or port; 0: any free port); off by default. Traces go over OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set',
    )
    .option('--json', 'print {"url": ...} as one JSON line once listening', false);
  addClusterOptions(addGatewayTlsOptions(start), 'node').action(async (o: StartOptions, cmd: Command) => {
    // An option that does nothing in the chosen mode is refused, not silently ignored.
    const given = (key: string) => cmd.getOptionValueSource(key) === 'cli';
    const embeddedOnly = ['data', 'demoLoad', 'demoBurst', 'demoSeed'].filter(given);
    const clusterOnly = ['namespace', 'node', 'maxInFlight', 'maxEpisodes', 'seed', 'events', 'console'].filter(given);
    const flag = (key: string) =>
      `--${key === 'console' ? 'no-console' : key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
    if (o.nats && embeddedOnly.length)
      throw new InvalidArgumentError(
        `${embeddedOnly.map(flag).join(', ')} ${embeddedOnly.length > 1 ? 'apply' : 'applies'} to the embedded runtime only; with --nats the data lives in JetStream and synthetic load comes from \`handoff demo --nats\``,
      );
    if (!o.nats && clusterOnly.length)
      throw new InvalidArgumentError(
        `${clusterOnly.map(flag).join(', ')} ${clusterOnly.length > 1 ? 'apply' : 'applies'} with --nats only (a cluster node)`,
      );
    const models = o.model.length ? o.model : ['models/refunds', 'models/incidents'];
    // Checked before anything opens: a refused plain-HTTP address or a bad certificate ends here.
    const security = gatewaySecurityFromOptions(o);
    await checkListenAddress(o.host, security);
    const tls = { tls: security.tls, allowPlaintext: security.allowPlaintext };
    const telemetry = new ProcessTelemetry({ metrics: o.metrics });
    if (o.nats) {
      await runClusterNode({
        ...o,
        nats: o.nats,
        models,
        telemetry,
        ...(o.gatewayConfig ? { gatewayConfig: o.gatewayConfig } : {}),
        gateway: {
          host: o.host,
          port: o.port,
          sessions: { idleMs: Math.round(o.sessionIdle * 60_000), absoluteMs: Math.round(o.sessionMax * 3600_000) },
          secureCookies: o.secureCookies,
          ...(o.allowOrigin.length ? { allowedOrigins: o.allowOrigin } : {}),
          ...tls,
        },
      });
      return;
    }
    const running = await startConsole({
      data: o.data,
      keyring: dataKeyring(),
      models,
      host: o.host,
      port: o.port,
      ...(given('timeScale') ? { timeScale: o.timeScale } : {}),
      telemetry,
      demoLoad: o.demoLoad,
      ...(o.gatewayConfig ? { gatewayConfig: o.gatewayConfig } : {}),
      ...(o.demoBurst !== undefined ? { demoBurst: o.demoBurst } : {}),
      ...(o.demoSeed !== undefined ? { demoSeed: o.demoSeed } : {}),
      sessions: { idleMs: Math.round(o.sessionIdle * 60_000), absoluteMs: Math.round(o.sessionMax * 3600_000) },
      secureCookies: o.secureCookies,
      ...(o.allowOrigin.length ? { allowedOrigins: o.allowOrigin } : {}),
      ...tls,
    });
    const names = [...running.runtime.models.keys()];
    const metricsUrl = await telemetry.start();
    if (o.json)
      process.stdout.write(
        `${JSON.stringify({ url: running.url, metrics: metricsUrl ?? null, tracing: !!telemetry.tracing, data: o.data, models: names, reviewers: running.gateway.directory.size, openCases: running.gateway.projection.size, notifications: { webhooks: running.notifier.status(), callbacks: running.gateway.callbacks.status() } })}\n`,
      );
    else {
      process.stdout.write(`${paint.bold('Handoff console')} ${running.url}\n`);
      process.stdout.write(
        `${paint.dim(`data ${o.data} · models ${names.join(', ')} · ${running.gateway.projection.size} open cases · ${running.gateway.directory.size} reviewer accounts${o.demoLoad ? ` · demo load ${o.demoLoad}/min` : ''}`)}\n`,
      );
      const hooks = [
        ...running.notifier.status().map((w) => ({ what: `webhook ${w.model}/${w.name}`, on: w.on, off: w.off })),
        ...running.gateway.callbacks
          .status()
          .map((c) => ({ what: `callbacks from ${c.source}`, on: c.on, off: c.off })),
      ];
      if (hooks.length)
        process.stdout.write(
          `${paint.dim(hooks.map((h) => `${h.what}: ${h.on ? 'on' : `off (${h.off})`}`).join(' · '))}\n`,
        );
      if (running.gateway.oidc)
        process.stdout.write(`${paint.dim(`single sign-on: ${running.gateway.oidc.config.issuer}`)}\n`);
      if (running.gateway.directory.size === 0 && !running.gateway.oidc)
        process.stdout.write(
          `${paint.yellow('warning')} no reviewers.json in the model folders: nobody can sign in (see docs/console.md)\n`,
        );
    }
    await new Promise<void>((resolve) => {
      const stop = () => {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
        void running
          .close()
          .then(() => telemetry.shutdown())
          .finally(resolve);
      };
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
      // A damaged database is not run on: say so once and stop (exit 2).
      running.store.onDamaged = (err) => {
        process.stderr.write(`${paint.red('error')} ${err.message}\n`);
        process.exitCode = 2;
        stop();
      };
    });
  });

  program
    .command('users')
    .description('Reviewer credentials for reviewers.json.')
    .command('hash')
    .description('Read a password from stdin and print a scrypt secret for a reviewer entry of reviewers.json.')
    .argument('<id>', 'reviewer id (as in model.json reviewers)')
    .action(async (id: string) => {
      const chunks: Buffer[] = [];
      for await (const c of process.stdin as AsyncIterable<Buffer>) chunks.push(c);
      const password = Buffer.concat(chunks)
        .toString('utf8')
        .replace(/\r?\n$/, '');
      if (!password)
        throw new InvalidArgumentError(
          'pipe the password on stdin, e.g. `printf %s "$PW" | handoff users hash r-jane`',
        );
      printJson({ id, secret: await hashPassword(password) });
    });
}
