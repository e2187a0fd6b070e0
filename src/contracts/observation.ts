import { z } from 'zod';
import { DataClass } from './classification.ts';
import { Provenance } from './envelope.ts';

/**
 * A validated, provenance-stamped signal from the world: a ticket, a telemetry alert, a record.
 * `fields` holds the domain data and is validated by the model's own observation schema.
 */
export const Observation = z.object({
  id: z.string().min(1),
  kind: z.string().min(1),
  subject: z.string().min(1),
  /** Principal (person or service) who asked for the work; never allowed to approve it. */
  requestedBy: z.string().min(1).optional(),
  provenance: Provenance,
  /** Highest data class present in `fields`. */
  classification: DataClass,
  /** Every data class present in `fields`, used by policies that always review some classes. */
  dataClasses: z.array(DataClass),
  fields: z.record(z.string(), z.unknown()),
});
export type Observation = z.infer<typeof Observation>;
