/** The exported JSON Schemas, and errors on the wire (to and from). */
import { describe, expect, it } from 'vitest';
import {
  CONTRACTS,
  HandoffError,
  Plan,
  exportJsonSchemas,
  fromWireError,
  parseContract,
  toWireError,
} from '../../../src/contracts/index.ts';
import { plan, contractError } from './examples.ts';

describe('exportJsonSchemas', () => {
  it('returns a JSON-serialisable schema for every contract', () => {
    const schemas = exportJsonSchemas();
    expect(Object.keys(schemas).sort()).toEqual(Object.keys(CONTRACTS).sort());
    expect(Object.keys(schemas).sort()).toEqual(
      [
        'CaseInput',
        'CaseResolution',
        'Envelope',
        'EpisodeResult',
        'GateDecision',
        'ModelConfig',
        'Observation',
        'Plan',
        'ReviewerCommand',
      ].sort(),
    );
    const roundTripped = JSON.parse(JSON.stringify(schemas)) as Record<string, unknown>;
    expect(roundTripped).toEqual(schemas);
  });

  it('object schemas carry properties; the command union carries its variants', () => {
    const schemas = exportJsonSchemas() as Record<
      string,
      { type?: string; properties?: Record<string, unknown>; oneOf?: unknown[]; anyOf?: unknown[] }
    >;
    for (const name of [
      'Envelope',
      'Observation',
      'Plan',
      'GateDecision',
      'CaseInput',
      'CaseResolution',
      'EpisodeResult',
      'ModelConfig',
    ]) {
      const s = schemas[name]!;
      expect(s.type, name).toBe('object');
      expect(s.properties, name).toBeTypeOf('object');
      expect(Object.keys(s.properties!).length, name).toBeGreaterThan(0);
    }
    expect(Object.keys(schemas.Plan!.properties!)).toEqual(
      expect.arrayContaining(['id', 'planner', 'actions', 'confidence', 'rationale', 'risk', 'citedInputs']),
    );
    expect(Object.keys(schemas.Envelope!.properties!)).toEqual(
      expect.arrayContaining([
        'id',
        'type',
        'schemaVersion',
        'time',
        'traceparent',
        'provenance',
        'classification',
        'data',
      ]),
    );
    const variants = (schemas.ReviewerCommand!.oneOf ?? schemas.ReviewerCommand!.anyOf) as {
      properties: Record<string, unknown>;
    }[];
    expect(variants).toHaveLength(7);
    for (const v of variants) expect(v.properties).toHaveProperty('type');
  });
});

describe('wire errors', () => {
  it('toWireError / fromWireError keep code and message of a ContractError', () => {
    const err = contractError(() => parseContract(Plan, { ...plan(), confidence: 9 }, 'Plan'));
    const wire = toWireError(err);
    expect(wire.code).toBe('contract.invalid');
    expect(wire.message).toBe(err.message);
    const json = JSON.parse(JSON.stringify(wire)) as typeof wire;
    const back = fromWireError(json);
    expect(back).toBeInstanceOf(HandoffError);
    expect(back.code).toBe(err.code);
    expect(back.message).toBe(err.message);
    expect(back.details).toEqual(JSON.parse(JSON.stringify(err.details)));
  });

  it('unknown errors become `internal`', () => {
    expect(toWireError(new Error('boom'))).toEqual({ code: 'internal', message: 'boom' });
    expect(toWireError('boom')).toEqual({ code: 'internal', message: 'boom' });
    const back = fromWireError({ code: 'internal', message: 'boom' });
    expect(back.code).toBe('internal');
    expect(back.message).toBe('boom');
    expect(back.details).toEqual({});
  });
});
