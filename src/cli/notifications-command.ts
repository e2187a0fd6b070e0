import type { Command } from 'commander';
import { HandoffError } from '../contracts/errors.ts';
import { loadModel } from '../models/loader.ts';
import { paint, printJson, table } from './output.ts';
import { callbackStatus, resolveCallbackSources } from '../gateway/callbacks.ts';
import { SIGNATURE_HEADER, signatureHeader } from '../notify/signing.ts';
import { resolveWebhooks, webhookStatus } from '../notify/webhooks.ts';

const DEFAULT_MODELS = ['models/refunds', 'models/incidents'];

/** `handoff notifications status | sign`: the webhooks and callback sources of the models (docs/notifications.md). */
export function registerNotifications(program: Command): void {
  const n = program
    .command('notifications')
    .description('Webhooks and signed callbacks of the models (docs/notifications.md).');

  n.command('status')
    .description(
      'Which webhooks and callback sources are on, read from the models and the environment; no secret or full URL is shown.',
    )
    .option('--model <dirs...>', 'model folders', DEFAULT_MODELS)
    .option('--json', 'print as JSON', false)
    .action(async (o: { model: string[]; json: boolean }) => {
      const models = await Promise.all(o.model.map((m) => loadModel(m)));
      const webhooks = webhookStatus(resolveWebhooks(models, process.env));
      const callbacks = callbackStatus(resolveCallbackSources(models, process.env));
      if (o.json) {
        printJson({ webhooks, callbacks });
        return;
      }
      const state = (on: boolean, off: string | null) => (on ? paint.green('on') : paint.yellow(`off (${off})`));
      const w: (string | number)[][] = [['webhook', 'state', 'host', 'events']];
      for (const x of webhooks)
        w.push([`${x.model}/${x.name}`, state(x.on, x.off), x.host ?? '-', x.events.join(', ')]);
      const c: (string | number)[][] = [['callback source', 'state', 'principal', 'roles']];
      for (const x of callbacks)
        c.push([`${x.model}/${x.source}`, state(x.on, x.off), x.principal, x.roles.join(', ')]);
      const align = ['l', 'l', 'l', 'l'] as ('l' | 'r')[];
      process.stdout.write(
        `${webhooks.length ? table(w, { header: true, align }) : 'no webhooks'}\n\n${callbacks.length ? table(c, { header: true, align }) : 'no callback sources'}\n`,
      );
    });

  n.command('sign')
    .description("Sign a callback body read from stdin with a source's secret, to try an integration with curl.")
    .requiredOption('--source <name>', 'callback source, as in model.json')
    .option('--model <dirs...>', 'model folders', DEFAULT_MODELS)
    .option('--json', 'print {"header", "value", "timestamp"} as JSON', false)
    .action(async (o: { source: string; model: string[]; json: boolean }) => {
      const models = await Promise.all(o.model.map((m) => loadModel(m)));
      const src = resolveCallbackSources(models, process.env).get(o.source);
      if (!src)
        throw new HandoffError(
          'callback.unknown_source',
          `no callback source named '${o.source}' in ${o.model.join(', ')}`,
          { path: 'source' },
        );
      if (src.secrets.length === 0)
        throw new HandoffError(
          'callback.disabled',
          `callbacks from '${o.source}' are off: ${src.config.secretEnv} is not set`,
          { env: src.config.secretEnv },
        );
      const chunks: Buffer[] = [];
      for await (const chunk of process.stdin as AsyncIterable<Buffer>) chunks.push(chunk);
      const body = Buffer.concat(chunks).toString('utf8');
      if (!body.trim()) throw new HandoffError('request.invalid', 'pipe the JSON body on stdin', { path: 'stdin' });
      const timestamp = Math.floor(Date.now() / 1000);
      const value = signatureHeader([src.secrets[0]!], timestamp, body);
      if (o.json) printJson({ header: SIGNATURE_HEADER, value, timestamp });
      else process.stdout.write(`${SIGNATURE_HEADER}: ${value}\n`);
    });
}
