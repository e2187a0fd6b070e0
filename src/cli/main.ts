import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ModelError } from '../contracts/errors.ts';
import { loadModel } from '../models/loader.ts';
import type { DemoSummary } from '../app/demo.ts';
import { duration, paint, paintErr, printJson, progressBar, table, type ProgressMode } from './output.ts';
import { tuneGc } from '../runtime/gc-tuning.ts';
import { cliError } from './failures.ts';
import { packageInfo } from './package-info.ts';
import { missingPackage } from './optional-deps.ts';
import { registerModelsInit } from './models-init-command.ts';

tuneGc();

// Piped into `head`, the reader goes away early: stop quietly, as Unix tools do.
for (const stream of [process.stdout, process.stderr])
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') throw err;
    process.exit(typeof process.exitCode === 'number' ? process.exitCode : 0);
  });

// Commands load lazily: only the modules of the command being run are imported (all of them for
// `--help` or an unknown command), so `handoff --version` starts without the runtime, LevelDB or NATS.
const argv = process.argv.slice(2);
const commandName = argv.find((a) => !a.startsWith('-'));
const lazy: Record<string, () => Promise<(program: Command) => void>> = {
  testgen: async () => (await import('./testgen-command.ts')).registerQaCommands,
  start: async () => (await import('./start-command.ts')).registerStart,
  drift: async () => (await import('./drift-command.ts')).registerDrift,
  bench: async () => (await import('./bench-command.ts')).registerBench,
  inspect: async () => (await import('./inspect-command.ts')).registerInspect,
  notifications: async () => (await import('./notifications-command.ts')).registerNotifications,
  keys: async () => (await import('./keys-command.ts')).registerKeys,
  lineage: async () => (await import('./lineage-command.ts')).registerLineage,
  retention: async () => (await import('./retention-command.ts')).registerRetention,
  doctor: async () => (await import('./doctor-command.ts')).registerDoctor,
  accounts: async () => (await import('./accounts-command.ts')).registerAccounts,
};
/** Command names → the lazy registrations that define them (some register several, or extend one). */
const registersOf: Record<string, string[]> = {
  simulate: ['testgen'],
  users: ['start'],
  hold: ['retention'],
  audit: ['lineage'],
  ...Object.fromEntries(Object.keys(lazy).map((k) => [k, [k]])),
};
const builtin = ['demo', 'models', 'contracts', 'audit', 'deadletters', 'dead-letters'];
const versionOnly = !commandName && (argv.includes('-V') || argv.includes('--version'));
const loadAll =
  !versionOnly &&
  (!commandName || commandName === 'help' || !(commandName in registersOf || builtin.includes(commandName)));
const wanted = (name: string) => loadAll || commandName === name;
// Without the optional NATS packages, `demo` still runs embedded; `--nats` then names what to install.
let clusterMissing: unknown;
const cluster = wanted('demo')
  ? await import('./node-command.ts').catch((err: unknown) => {
      if (!missingPackage(err)) throw err;
      clusterMissing = err;
      return undefined;
    })
  : undefined;

const int =
  (name: string, min = 0) =>
  (v: string) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`${name} must be an integer ≥ ${min}`);
    return n;
  };

/**
 * The largest demo run. A run is a simulation on one process (about 300 episodes a second: an hour for
 * a million); past this a typo such as `--cases 100000000` would run for days.
 */
const MAX_DEMO_CASES = 1_000_000;
function casesOption(v: string): number {
  const n = int('--cases', 1)(v);
  if (n > MAX_DEMO_CASES)
    throw new InvalidArgumentError(
      `--cases must be at most ${MAX_DEMO_CASES.toLocaleString('en')} (a demo run at about 300 episodes/s takes an hour per million); got ${n}`,
    );
  return n;
}

/** Exit codes: 0 success, 1 a check failed (audit broken, model invalid), 2 usage or runtime error. */
const program = new Command('handoff')
  .description('Handoff: AI agents and their human reviewers as actors on statecharts.')
  .version(packageInfo().version)
  // Usage errors exit 2 (commander's own is 1, which this CLI keeps for failed checks).
  .exitOverride()
  .configureOutput({
    writeErr: (s) => process.stderr.write(s),
    outputError: (s, write) => write(s.replace(/^error:/, paintErr.red('error'))),
  });

const demo = program
  .command('demo')
  .description(
    'Run episodes of a model with simulated reviewers, then print a summary: on the embedded runtime, or with --nats against a running cluster.',
  )
  .option('--model <dir>', 'model folder, or the name of a shipped model (refunds, incidents)', 'refunds')
  .option('--cases <n>', `episodes to run (at most ${MAX_DEMO_CASES.toLocaleString('en')})`, casesOption, 1000)
  .option('--data <dir>', 'data folder (LevelDB); must be empty unless --resume', '.handoff/demo')
  .option('--reviewers <n>', 'simulated reviewers', int('--reviewers', 1), 12)
  .option('--seed <n>', 'seed: same seed, same run', int('--seed'), 1)
  .option('--resume', 'continue the unfinished run in --data and report the totals of the whole run', false)
  .option(
    '--fresh',
    'empty --data first (start a new run); only a Handoff data folder no process is using, and one other than the default demo folder only with --yes',
    false,
  )
  .option('--yes', 'with --fresh: delete without asking', false)
  .option(
    '--sync',
    'fsync every batch before acknowledging it (survives power loss; default $HANDOFF_STORE_SYNC, else off)',
  )
  .option(
    '--faults <spec>',
    'inject transient failures: RATE for every step, or perceive=P,plan=P,execute=P,compensate=P,store=P',
  )
  .option('--drift', 'drift-aware gating (off in the demo: its reviewers override at random)', false)
  .option('--arrival-ms <ms>', 'mean simulated time between arriving episodes', int('--arrival-ms', 1), 90_000)
  .addOption(
    new Option('--progress <mode>', 'progress display on stderr').choices(['auto', 'lines', 'off']).default('auto'),
  )
  .option(
    '--metrics <addr>',
    'serve Prometheus metrics at http://<addr>/metrics while the run lasts (host:port, :port or port); traces go over OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set',
  )
  .option(
    '--live-http',
    "let the model's HTTP actions call their services for real (without it, a model with HTTP actions is refused)",
    false,
  )
  .option('--json', 'print the summary as JSON on stdout', false);
(cluster ? cluster.addClusterOptions(demo, 'driver') : demo).action(
  async (
    o: {
      model: string;
      cases: number;
      data: string;
      reviewers: number;
      seed: number;
      resume: boolean;
      fresh: boolean;
      yes: boolean;
      sync?: boolean;
      faults?: string;
      drift: boolean;
      arrivalMs: number;
      progress: ProgressMode;
      json: boolean;
      nats?: string;
      namespace: string;
      timeScale: number;
      metrics?: string;
      liveHttp: boolean;
    },
    cmd: Command,
  ) => {
    if (o.nats) {
      if (o.resume || o.faults || o.drift)
        throw new InvalidArgumentError(
          '--resume, --faults and --drift are options of the embedded demo; with --nats, start the nodes with the options you need',
        );
      await cluster!.runClusterDemoCli({ ...o, nats: o.nats });
      return;
    }
    const [{ runDemo }, { parseFaults }, { clearDataFolder }, { dataKeyring }] = await Promise.all([
      import('../app/demo.ts'),
      import('../base/faults.ts'),
      import('./fresh.ts'),
      import('./keys-command.ts'),
    ]);
    // HTTP actions call real services: only with --live-http (a typed error, --json too).
    const { refuseDemoLiveHttp } = await import('../sim/simulate.ts');
    await refuseDemoLiveHttp({ ...o, live: o.liveHttp, keyring: dataKeyring() });
    if (o.fresh && !o.resume) await clearDataFolder(o.data, { yes: o.yes });
    const telemetry = await (await import('./telemetry-option.ts')).processTelemetry(o.metrics);
    const bar = progressBar(o.progress, 'episodes');
    const summary = await runDemo({
      model: o.model,
      ...(telemetry ? { telemetry } : {}),
      keyring: dataKeyring(),
      cases: o.cases,
      data: o.data,
      reviewers: o.reviewers,
      seed: o.seed,
      resume: o.resume,
      given: (['model', 'cases', 'seed', 'reviewers', 'arrivalMs'] as const).filter(
        (k) => cmd.getOptionValueSource(k) === 'cli',
      ),
      ...(o.sync !== undefined ? { sync: o.sync } : {}),
      arrivalMs: o.arrivalMs,
      drift: o.drift,
      ...(o.faults ? { faults: parseFaults(o.faults) } : {}),
      onProgress: (p) =>
        bar.update(
          p.finished,
          p.total,
          `· ${p.openCases} open cases · ${new Date(p.simulatedAt).toISOString().slice(0, 16).replace('T', ' ')} simulated`,
        ),
    });
    bar.done();
    await telemetry?.shutdown();
    if (o.json) printJson(summary);
    else printDemo(summary);
    const violations = Object.values(summary.invariantViolations).reduce((a, b) => a + b, 0);
    if (summary.unfinished > 0 || summary.duplicateEffects > 0 || violations > 0) process.exitCode = 1;
  },
);

function printDemo(s: DemoSummary): void {
  const o = s.outcomes;
  const pct = (n: number) => `${((n / Math.max(1, s.episodes)) * 100).toFixed(1)}%`;
  const rows: (string | number)[][] = [
    ['outcome', 'episodes', 'share'],
    ['auto-acted', o.autoActed, pct(o.autoActed)],
    ['approved', o.approved, pct(o.approved)],
    ['modified', o.modified, pct(o.modified)],
    ['rejected', o.rejected, pct(o.rejected)],
    ['denied', o.denied, pct(o.denied)],
    ['expired', o.expired, pct(o.expired)],
    ['compensated', o.compensated, pct(o.compensated)],
    ['failed', o.failed, pct(o.failed)],
    ['total', s.episodes - s.unfinished, pct(s.episodes - s.unfinished)],
  ];
  const out = process.stdout;
  out.write(
    `\n${paint.bold(`Handoff demo · model ${s.model} · ${s.episodes} episodes · ${s.reviewers} reviewers · seed ${s.seed}${s.resumed ? ' · resumed' : ''}`)}\n\n`,
  );
  out.write(`${table(rows, { header: true })}\n\n`);
  const review: (string | number)[][] = [
    ['review', ''],
    ['cases opened', s.cases],
    ['MTTA (open → claim)', duration(s.mttaMs)],
    ['MTTR (open → decision)', duration(s.mttrMs)],
    ['SLA attainment', `${(s.slaAttainment * 100).toFixed(1)}%`],
    ...Object.entries(s.escalations).map(([k, v]) => [`escalations from ${k}`, v]),
  ];
  out.write(`${table(review, { header: true })}\n\n`);
  const integrity: (string | number)[][] = [
    ['integrity', ''],
    ['effects in ledger', s.effects],
    ['duplicate effects', s.duplicateEffects === 0 ? paint.green('0') : paint.red(String(s.duplicateEffects))],
    ['unfinished episodes', s.unfinished === 0 ? paint.green('0') : paint.red(String(s.unfinished))],
    ...Object.entries(s.invariantViolations).map(([k, v]) => [
      k.replace(/[A-Z]/g, (c) => ` ${c.toLowerCase()}`),
      v === 0 ? paint.green('0') : paint.red(String(v)),
    ]),
    ['audit entries', s.auditEntries],
  ];
  out.write(`${table(integrity, { header: true })}\n\n`);
  out.write(
    `${paint.dim(`${s.episodesPerSecond} episodes/s · ${duration(s.wallMs)} wall · ${duration(s.simulatedMs)} simulated · reviewers ${JSON.stringify(s.reviewerActivity)}`)}\n`,
  );
}

const models = program.command('models').description('Work with model folders.');
models
  .command('check')
  .description('Validate model folders; every problem is reported with its file and path.')
  .argument('<dirs...>', 'model folders')
  .option('--json', 'print the result as JSON', false)
  .action(async (dirs: string[], o: { json: boolean }) => {
    const results = [];
    for (const dir of dirs) {
      try {
        const m = await loadModel(dir);
        // The model's own code on its own signals: a perceiver that always throws, plans or fields that break their schema.
        const { probeModel } = await import('../actors/probe.ts');
        const behaviour = await probeModel(m);
        if (behaviour.length > 0) {
          results.push({ dir, ok: false, problems: behaviour });
          continue;
        }
        results.push({
          dir,
          ok: true,
          name: m.name,
          version: m.config.version,
          actions: Object.keys(m.config.actions).length,
          tiers: m.config.review.tiers.length,
          sensitiveFields: m.sensitiveFields,
        });
      } catch (err) {
        if (!(err instanceof ModelError)) throw err;
        results.push({ dir, ok: false, problems: err.problems });
      }
    }
    if (o.json) printJson({ ok: results.every((r) => r.ok), models: results });
    else
      for (const r of results) {
        if (r.ok)
          process.stdout.write(
            `${paint.green('ok')}   ${r.dir}: ${r.name}@${r.version}, ${r.actions} actions, ${r.tiers} review tiers, sensitive: ${r.sensitiveFields?.join(', ') || 'none'}\n`,
          );
        else {
          process.stdout.write(`${paint.red('fail')} ${r.dir}\n`);
          for (const p of r.problems ?? [])
            process.stdout.write(`     ${p.file}: ${p.path || '(root)'}: ${p.message}\n`);
        }
      }
    if (!results.every((r) => r.ok)) process.exitCode = 1;
  });

registerModelsInit(models);

const contracts = program.command('contracts').description('The wire contracts.');
contracts
  .command('export')
  .description('Export every contract as JSON Schema (draft 2020-12).')
  .option('--out <dir>', 'write one <Contract>.schema.json per contract into this folder')
  .option('--json', 'print all schemas as one JSON object', false)
  .action(async (o: { out?: string; json: boolean }) => {
    const { exportJsonSchemas } = await import('../contracts/json-schema.ts');
    const schemas = exportJsonSchemas();
    if (o.out) {
      await mkdir(o.out, { recursive: true });
      for (const [name, schema] of Object.entries(schemas))
        await writeFile(join(o.out, `${name}.schema.json`), `${JSON.stringify(schema, null, 2)}\n`);
    }
    if (o.json || !o.out) printJson(schemas);
    else process.stdout.write(`wrote ${Object.keys(schemas).length} schemas to ${o.out}\n`);
  });

const audit = program.command('audit').description('The tamper-evident audit log.');
audit
  .command('verify')
  .description(
    'Check the hash chain of the audit log and point at the first broken entry; a chain that ends before the head the store last wrote (HANDOFF-HEAD: lost writes) is broken too.',
  )
  .option('--data <dir>', 'data folder', '.handoff/demo')
  .option('--json', 'print the result as JSON', false)
  .action(async (o: { data: string; json: boolean }) => {
    const { openForVerify } = await import('./doctor-command.ts');
    const { verifyAudit } = await import('../base/audit-log.ts');
    const store = await openForVerify(o.data);
    try {
      const chain = await verifyAudit(store.audit());
      const lost = store.headCheck.problem;
      const result =
        chain.ok && lost
          ? { ok: false as const, entries: chain.entries, firstBroken: store.headCheck.lastAudit + 1, reason: lost }
          : chain;
      if (o.json)
        printJson(
          result.ok
            ? { ok: true, entries: result.entries }
            : { ok: false, firstBroken: result.firstBroken, reason: result.reason, entries: result.entries },
        );
      else if (result.ok) process.stdout.write(`${paint.green('ok')} ${result.entries} audit entries, chain intact\n`);
      else process.stdout.write(`${paint.red('broken')} at entry ${result.firstBroken}: ${result.reason}\n`);
      process.exitCode = result.ok ? 0 : 1;
    } finally {
      await store.close();
    }
  });
audit
  .command('export')
  .description('Print every audit entry (for compliance archives).')
  .option('--data <dir>', 'data folder', '.handoff/demo')
  .option('--json', 'print as one JSON array (default: one JSON object per line)', false)
  .action(async (o: { data: string; json: boolean }) => {
    const { openDataStore } = await import('./keys-command.ts');
    const store = await openDataStore(o.data);
    try {
      const entries = [];
      for await (const e of store.audit()) {
        if (o.json) entries.push(e);
        else process.stdout.write(`${JSON.stringify(e)}\n`);
      }
      if (o.json) printJson(entries);
    } finally {
      await store.close();
    }
  });

const deadletters = program
  .command('deadletters')
  .alias('dead-letters')
  .description('What could not be delivered (events, webhook deliveries): list and replay.');
deadletters
  .command('list')
  .description('List dead letters (events that crashed an actor or reached a suspended or missing one).')
  .option('--data <dir>', 'data folder', '.handoff/demo')
  .option('--json', 'print as JSON', false)
  .action(async (o: { data: string; json: boolean }) => {
    const { openDataStore } = await import('./keys-command.ts');
    const store = await openDataStore(o.data);
    try {
      const letters = [];
      for await (const d of store.deadLetters()) letters.push(d);
      if (o.json) printJson({ count: letters.length, deadLetters: letters });
      else if (letters.length === 0) process.stdout.write('no dead letters\n');
      else {
        const rows: (string | number)[][] = [['id', 'actor', 'event', 'code', 'reason']];
        for (const d of letters) rows.push([d.id, d.actorId, d.event.type, d.code, d.reason.slice(0, 80)]);
        process.stdout.write(`${table(rows, { header: true, align: ['l', 'l', 'l', 'l', 'l'] })}\n`);
      }
    } finally {
      await store.close();
    }
  });
deadletters
  .command('replay')
  .description('Send dead letters again (all, or the ids given); delivered ones are removed.')
  .argument('[ids...]', 'dead letter ids (default: all)')
  .option('--data <dir>', 'data folder', '.handoff/demo')
  .option('--model <dirs...>', 'model folders the actors belong to', ['models/refunds', 'models/incidents'])
  .option('--json', 'print the result as JSON', false)
  .action(async (ids: string[], o: { data: string; model: string[]; json: boolean }) => {
    const { Runtime } = await import('../runtime/runtime.ts');
    const { LevelWorld } = await import('../runtime/world.ts');
    const { openDataStore } = await import('./keys-command.ts');
    const store = await openDataStore(o.data);
    try {
      const models = await Promise.all(o.model.map((m) => loadModel(m)));
      const { WebhookNotifier } = await import('../notify/webhooks.ts');
      // Webhook dead letters are replayed through the webhook's URL and secret from the environment.
      const notifier = new WebhookNotifier({ store, models });
      const rt = await Runtime.open({ store, world: new LevelWorld(store), models, channels: [notifier] });
      const result = await rt.replayDeadLetters((id) => ids.length === 0 || ids.includes(id));
      await rt.whenIdle();
      // Webhook messages still in the outbox are sent by the next `handoff start`, not by this command.
      await notifier.close();
      await rt.close();
      if (o.json) printJson(result);
      else
        process.stdout.write(
          `replayed ${result.delivered}; ${result.failed.length} failed${result.failed.map((f) => `\n  ${f.id}: ${f.error}`).join('')}\n`,
        );
      if (result.failed.length > 0) process.exitCode = 1;
    } finally {
      await store.close();
    }
  });

// Feature commands register themselves (lazily: see `lazy` above).
for (const [name, load] of Object.entries(lazy))
  if (loadAll || registersOf[commandName ?? '']?.includes(name)) (await load())(program);

// Node ends a process whose top-level await can never settle (everything it waits for is gone) with
// code 13 and a bare warning: say what that means, as a runtime error.
process.on('exit', (code) => {
  if (code !== 13) return;
  process.stderr.write(
    `${paintErr.red('error')} the command stopped with work it was waiting for that can never finish (a promise nothing will settle: an action or an external call without a timeout?)\n`,
  );
  process.exitCode = 2;
});

try {
  if (clusterMissing && commandName === 'demo' && argv.some((a) => a === '--nats' || a.startsWith('--nats=')))
    throw clusterMissing;
  await program.parseAsync(process.argv);
} catch (err) {
  process.exitCode = 2;
  const json = process.argv.includes('--json');
  const typed = cliError(err);
  if (err instanceof CommanderError && !(err instanceof InvalidArgumentError)) {
    // Help and version exit 0; a usage error was printed by commander as one line: add a hint (and
    // the JSON error with --json), not the whole help.
    if (
      err.exitCode === 0 ||
      err.code === 'commander.helpDisplayed' ||
      err.code === 'commander.version' ||
      err.code === 'commander.help'
    )
      process.exitCode = 0;
    else {
      const sub = program.commands.find((c) => c.name() === commandName || c.aliases().includes(commandName ?? ''));
      const subsub = sub?.commands.find((c) => c.name() === argv.filter((a) => !a.startsWith('-'))[1]);
      const path = [sub?.name(), subsub?.name()].filter(Boolean);
      if (json)
        printJson({
          ok: false,
          error: {
            code: 'usage.invalid',
            message: err.message.replace(/^error: /, ''),
            details: { commander: err.code },
          },
        });
      process.stderr.write(`${paintErr.dim(`hint: run 'handoff ${[...path, '--help'].join(' ')}' for usage`)}\n`);
    }
  } else if (typed) {
    if (json) printJson({ ok: false, error: { code: typed.code, message: typed.message, details: typed.details } });
    process.stderr.write(`${paintErr.red('error')} ${typed.message}\n`);
  } else {
    if (json)
      printJson({ ok: false, error: { code: 'internal', message: err instanceof Error ? err.message : String(err) } });
    process.stderr.write(
      `${paintErr.red('error')} ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
  }
}
