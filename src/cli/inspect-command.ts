import { InvalidArgumentError, Option, type Command } from 'commander';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { HandoffError } from '../contracts/errors.ts';
import { chartOf, toDot, toMermaid } from '../inspect/graph.ts';
import { layoutChart } from '../inspect/layout.ts';
import { Redactor } from '../inspect/redact.ts';
import { machineFor, replayJournal } from '../inspect/replay.ts';
import { StatelyBridge, statelyEvents } from '../inspect/stately.ts';
import { loadModel, type LoadedModel } from '../models/loader.ts';
import type { JournalEntry } from '../runtime/store.ts';
import { paint, printJson, table } from './output.ts';
import { openDataStore } from './keys-command.ts';

const collect = (v: string, prev: string[]) => [...prev, v];

/** A model folder, or the name of a shipped one (`refunds` → `models/refunds`). */
async function modelFrom(arg: string): Promise<LoadedModel> {
  const isDir = await stat(arg).then(
    (s) => s.isDirectory(),
    () => false,
  );
  if (isDir) return loadModel(arg);
  const shipped = join('models', arg);
  if (
    await stat(shipped).then(
      () => true,
      () => false,
    )
  )
    return loadModel(shipped);
  throw new HandoffError('model.unknown', `no model folder '${arg}' (nor ${shipped})`, { model: arg });
}

interface InspectOptions {
  data: string;
  model: string[];
  events: number;
  graph?: string;
  kind: 'agent' | 'case';
  format: 'mermaid' | 'dot' | 'json' | 'stately';
  layout: boolean;
  stately?: string;
  json: boolean;
}

/**
 * `handoff inspect <actorId>`: an actor's current state, context and last events, from the data
 * folder (live, passivated or finished; sensitive fields redacted), and `handoff inspect --graph
 * <model>`: a machine's statechart as Mermaid, Graphviz dot or JSON, for docs.
 */
export function registerInspect(program: Command): void {
  program
    .command('inspect')
    .description(
      "Inspect an actor (state, context, last events; from the journal) or print a model's statechart (--graph).",
    )
    .argument('[actorId]', 'an episode or case id')
    .option('--data <dir>', 'data folder (LevelDB) of a stopped node', '.handoff/console')
    .addOption(
      new Option('--model <dir>', 'model folder; repeat for several')
        .argParser(collect)
        .default([], 'models/refunds and models/incidents'),
    )
    .option(
      '--events <n>',
      'last events to print',
      (v) => {
        const n = Number(v);
        if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('--events must be an integer ≥ 0');
        return n;
      },
      10,
    )
    .option('--graph <model>', "print this model's statechart (a model folder, or the name of a shipped model)")
    .addOption(
      new Option('--kind <kind>', 'with --graph: the agent episode or the review case')
        .choices(['agent', 'case'])
        .default('agent'),
    )
    .addOption(
      new Option(
        '--format <format>',
        'with --graph: mermaid, dot or json; with an actor: json or stately (its journal as @statelyai/inspect events)',
      )
        .choices(['mermaid', 'dot', 'json', 'stately'])
        .default('mermaid'),
    )
    .option('--layout', 'with --graph --format json: add the elkjs layout the inspector draws', false)
    .option('--stately <url>', "send the actor's journal to a Stately WebSocket inspector (e.g. ws://127.0.0.1:8080)")
    .option('--json', 'print as JSON', false)
    .action(async (actorId: string | undefined, o: InspectOptions) => {
      if (o.graph) {
        const model = await modelFrom(o.graph);
        const chart = chartOf(machineFor(model, o.kind));
        if (o.format === 'json' || o.json) printJson(o.layout ? await layoutChart(chart) : chart);
        else if (o.format === 'dot') process.stdout.write(toDot(chart));
        else if (o.format === 'mermaid') process.stdout.write(toMermaid(chart));
        else throw new InvalidArgumentError('--graph prints mermaid, dot or json');
        return;
      }
      if (!actorId) throw new InvalidArgumentError('name an actor id, or use --graph <model>');
      const models = await Promise.all(
        (o.model.length ? o.model : ['models/refunds', 'models/incidents']).map((m) => loadModel(m)),
      );
      const store = await openDataStore(o.data).catch((err: unknown) => {
        // A running node holds the folder: its live actors are in its console's inspector.
        if (err instanceof HandoffError && err.code === 'store.locked')
          throw new HandoffError(
            err.code,
            `${err.message}, or inspect its actors live on the /inspector page of its console`,
            err.details,
          );
        throw err;
      });
      try {
        const rec = await store.load(actorId);
        if (!rec) throw new HandoffError('actor.not_found', `no actor '${actorId}' in ${o.data}`, { actorId });
        const model = models.find((m) => m.name === rec.model);
        if (!model)
          throw new HandoffError(
            'model.unknown',
            `${actorId} belongs to model '${rec.model}'; pass its folder with --model`,
            { model: rec.model },
          );
        const entries: JournalEntry[] = [];
        for await (const e of store.journal(actorId)) entries.push(e);
        const redactor = new Redactor(models);
        const replay = replayJournal({ id: actorId, kind: rec.kind, model, entries, record: rec, redactor });
        if (o.stately) {
          const bridge = StatelyBridge.webSocket(models, o.stately);
          bridge.pushReplay(replay);
          // The adapter sends once connected; give it a moment, then close.
          await new Promise((r) => setTimeout(r, 1500));
          bridge.stop();
          process.stderr.write(`sent ${replay.steps.length} steps of ${actorId} to ${o.stately}\n`);
          return;
        }
        if (o.format === 'stately') {
          printJson(statelyEvents(models, replay));
          return;
        }
        const context = redactor.redact(
          model.name,
          (rec.snapshot as { context?: unknown } | undefined)?.context ?? null,
        );
        const last = replay.steps
          .slice(-o.events)
          .map((s) => ({ seq: s.seq, at: new Date(s.at).toISOString(), event: s.event, state: s.state }));
        const ctx = context as { episodeId?: string; caseIds?: string[] } | null;
        const out = {
          id: rec.id,
          kind: rec.kind,
          model: rec.model,
          state: rec.state,
          status: rec.status,
          version: rec.seq,
          updatedAt: new Date(rec.updatedAt).toISOString(),
          links: rec.kind === 'case' ? { episode: ctx?.episodeId ?? null } : { cases: ctx?.caseIds ?? [] },
          context,
          events: last,
          steps: replay.steps.length,
          replay: { exact: replay.exact, note: replay.note },
        };
        if (o.json || o.format === 'json') {
          printJson(out);
          return;
        }
        const w = process.stdout;
        w.write(
          `${paint.bold(rec.id)}  ${rec.kind} of ${rec.model} · ${paint.bold(rec.state)} (${rec.status}) · version ${rec.seq} · ${out.updatedAt}\n`,
        );
        if (rec.kind === 'case') w.write(`episode ${ctx?.episodeId ?? '?'}\n`);
        else if (ctx?.caseIds?.length) w.write(`cases ${ctx.caseIds.join(', ')}\n`);
        w.write(
          `\n${table([['seq', 'at', 'event', 'state'], ...last.map((s) => [s.seq, s.at.slice(11, 23), s.event.type, s.state])], { header: true, align: ['r', 'l', 'l', 'l'] })}\n`,
        );
        if (!replay.exact)
          w.write(`${paint.yellow('note')} ${replay.note ?? 'the replay differs from the journal at some step'}\n`);
        w.write(`\n${paint.dim('context (sensitive fields redacted):')}\n${JSON.stringify(context, null, 2)}\n`);
      } finally {
        await store.close();
      }
    });
}
