import type { LineageObservation, LineagePlan } from './provenance.ts';

/** Store meta key of an episode's compaction summary. */
export const summaryKey = (episodeId: string) => `retention.summary.${episodeId}`;
/** Store meta key of the legal holds (one map: episode id → hold). */
export const HOLDS_KEY = 'retention.holds';

/** A legal hold on an episode: while it stands, retention leaves the episode's journals alone. */
export interface LegalHold {
  episodeId: string;
  reason: string;
  by: string;
  /** Epoch ms. */
  at: number;
}

/** What is left of one actor's journal once compacted. */
export interface CompactedJournal {
  actorId: string;
  kind: 'agent' | 'case';
  entries: number;
  firstSeq: number;
  lastSeq: number;
  firstAt: number;
  lastAt: number;
  /** The event types in journal order, so the shape of the history stays readable. */
  events: string[];
  /**
   * SHA-256 over the canonical JSON of the deleted entries, in order: whoever archived the journal
   * elsewhere can prove their copy is the one compacted (the audit entry of the compaction holds it too).
   */
  sha256: string;
}

/**
 * What replaces the journals of a finished episode and its cases when retention compacts them. The
 * audit entries stay as they are; this keeps the part of the lineage that only the journal held
 * (each observation's provenance, each plan's planner, rationale and cited inputs: never the
 * observed field values) and the shape of each deleted journal.
 */
export interface CompactionSummary {
  episodeId: string;
  model: string;
  /** Epoch ms of the compaction (the audit entry `retention.compacted` of the episode records it too). */
  compactedAt: number;
  keepDays: number;
  /** When the episode finished (epoch ms). */
  endedAt: number;
  outcome: string | null;
  journals: CompactedJournal[];
  observations: LineageObservation[];
  plans: LineagePlan[];
  /**
   * The `retention.compacted` audit entry is written (absent in a summary whose pass stopped between
   * the deletes and that entry: the next pass writes it).
   */
  audited?: boolean;
}
