import { ContractError, EffectError, HandoffError } from '../../contracts/errors.ts';
import type { DataClass } from '../../contracts/classification.ts';
import { Observation } from '../../contracts/observation.ts';
import { parseContract } from '../../contracts/parse.ts';
import type { LoadedModel } from '../../models/loader.ts';
import type { StepContext } from '../../models/define.ts';

/**
 * Perception: runs the model's perceiver on the episode's signal, validates the fields against the
 * model's contract and stamps provenance (source, observedAt, and every transform applied since).
 */
export async function perceive(
  model: LoadedModel,
  episodeId: string,
  signal: unknown,
  ctx: StepContext,
): Promise<Observation> {
  const perceived = await model.handlers.perceive(signal, ctx);
  let fields: Record<string, unknown>;
  try {
    fields = parseContract(model.handlers.fields, perceived.fields, `${model.name}.fields`, 'fields') as Record<
      string,
      unknown
    >;
  } catch (err) {
    // Data that breaks the model's contract will not get better on retry.
    if (err instanceof ContractError)
      throw new EffectError(err.message, { transient: false, cause: err, code: err.code });
    throw err;
  }
  const at = new Date(ctx.now).toISOString();
  const dataClasses: DataClass[] = model.sensitiveFields.length > 0 ? ['internal', 'sensitive'] : ['internal'];
  const observation = {
    id: `${episodeId}.obs`,
    kind: perceived.kind,
    subject: perceived.subject,
    ...(perceived.requestedBy ? { requestedBy: perceived.requestedBy } : {}),
    provenance: {
      source: perceived.source,
      observedAt: new Date(perceived.observedAt).toISOString(),
      transforms: [
        ...(perceived.transforms ?? []).map((t) => ({ ...t, at })),
        {
          name: 'validated',
          at,
          by: `handoff/${model.name}@${model.config.version}`,
          note: 'fields checked against the model contract',
        },
      ],
    },
    classification: dataClasses.at(-1)!,
    dataClasses,
    fields,
  };
  try {
    return parseContract(Observation, observation, 'Observation');
  } catch (err) {
    throw err instanceof HandoffError ? new EffectError(err.message, { transient: false, cause: err }) : err;
  }
}
