/**
 * Where an episode's inputs and plans came from, as lineage shows them and as retention keeps them
 * once it compacts a journal (retention-records.ts): provenance only, never the observed values.
 */
export interface LineageObservation {
  id: string;
  kind: string;
  subject: string;
  source: string;
  observedAt: string;
  transforms: { name: string; at: string; by: string; note?: string }[];
  /** Journal entry that brought it in (null when known only from the final snapshot). */
  journalSeq: number | null;
  /** When the runtime accepted it, epoch ms. */
  at: number | null;
}

export interface LineagePlan {
  id: string;
  planner: string;
  /** Who made this version: the planner, a reviewer's modification, or the policy's expiry fallback. */
  origin: 'planner' | 'reviewer' | 'fallback';
  /** Reviewers of a modification: who edited it (the approvers of the edited plan are the case's decidedBy). */
  by: string[];
  rationale: string;
  confidence: number;
  riskScore: number;
  /** Observation fields the planner relied on (paths into the observation; values are not copied). */
  citedInputs: string[];
  actions: { type: string; description: string | null }[];
  journalSeq: number | null;
  at: number | null;
}
