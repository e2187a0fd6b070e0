/** The message envelope, and data classification (sensitive paths, masking). */
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  Envelope,
  SCHEMA_VERSION,
  Traceparent,
  classify,
  envelope,
  maskPaths,
  parseContract,
  sensitive,
  sensitivePaths,
} from '../../../src/contracts/index.ts';
import { TRACEPARENT, envelopeMsg, expectInvalid } from './examples.ts';

describe('Envelope', () => {
  it('rejects a wrong schemaVersion saying which version this node speaks', () => {
    for (const v of [0, 2, '1', undefined]) {
      const err = expectInvalid(Envelope, { ...envelopeMsg(), schemaVersion: v }, 'Envelope', 'schemaVersion');
      expect(err.message).toContain(`unsupported schemaVersion (this node speaks ${SCHEMA_VERSION})`);
    }
  });

  it('requires a namespaced type', () => {
    for (const ok of ['handoff.case.claim', 'handoff.observation', 'handoff.x_y-z.1']) {
      expect(() => parseContract(Envelope, { ...envelopeMsg(), type: ok }, 'Envelope')).not.toThrow();
    }
    for (const bad of [
      'case.claim',
      'claim',
      'handoff.',
      'Handoff.case',
      'handoff.Case.Claim',
      'xhandoff.case',
      'handoff.case claim',
      '',
    ]) {
      const err = expectInvalid(Envelope, { ...envelopeMsg(), type: bad }, 'Envelope', 'type');
      expect(err.message).toContain('namespaced');
    }
  });

  it('checks the traceparent format, and the traceparent is optional', () => {
    const noTrace = envelopeMsg() as Record<string, unknown>;
    delete noTrace.traceparent;
    expect(() => parseContract(Envelope, noTrace, 'Envelope')).not.toThrow();
    for (const bad of [
      'garbage',
      '01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', // wrong version
      '00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01', // upper case
      '00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01', // trace id too short
      '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b-01', // span id too short
      '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1', // flags too short
      `${TRACEPARENT}-extra`,
    ]) {
      const err = expectInvalid(Envelope, { ...envelopeMsg(), traceparent: bad }, 'Envelope', 'traceparent');
      expect(err.message).toContain('W3C traceparent');
    }
    expect(Traceparent.safeParse(TRACEPARENT).success).toBe(true);
  });

  it('envelope(data) validates the payload under `data`', () => {
    const Claim = envelope(z.object({ caseId: z.string().min(1) }));
    expect(() => parseContract(Claim, { ...envelopeMsg(), data: { caseId: 'c1' } }, 'Claim')).not.toThrow();
    expectInvalid(Claim, { ...envelopeMsg(), data: { caseId: '' } }, 'Claim', 'data.caseId');
  });
});

describe('classification', () => {
  const Contact = z.object({ email: sensitive(z.string()), label: z.string() });
  const Schema = z.object({
    name: sensitive(z.string()),
    note: z.string(),
    optionalIban: sensitive(z.string()).optional(),
    wrappedOptional: sensitive(z.string().optional()),
    nullableDefault: sensitive(z.string()).nullable().default(null),
    confidential: classify(z.string(), 'confidential'),
    address: z.object({
      street: sensitive(z.string()),
      city: z.string(),
      geo: z.object({ lat: sensitive(z.number()) }),
    }),
    contacts: z.array(Contact),
    optionalContacts: z.array(Contact).optional(),
    phones: z.array(sensitive(z.string())),
    secretBlob: sensitive(z.object({ inner: z.string() })),
  });

  it('sensitivePaths finds top-level, nested, array and optional() fields', () => {
    const paths = sensitivePaths(Schema);
    expect(paths.sort()).toEqual(
      [
        'name',
        'optionalIban',
        'wrappedOptional',
        'nullableDefault',
        'address.street',
        'address.geo.lat',
        'contacts.*.email',
        'optionalContacts.*.email',
        'phones.*',
        'secretBlob',
      ].sort(),
    );
    // Only `sensitive` counts; other classes and plain fields are not listed.
    expect(paths).not.toContain('confidential');
    expect(paths).not.toContain('note');
    expect(paths).not.toContain('address.city');
    expect(paths).not.toContain('contacts.*.label');
    // A whole-object classification stops the descent.
    expect(paths).not.toContain('secretBlob.inner');
  });

  it('sensitivePaths honours a prefix and returns [] for unclassified schemas', () => {
    expect(sensitivePaths(Contact, 'fields')).toEqual(['fields.email']);
    expect(sensitivePaths(z.object({ a: z.string(), b: z.array(z.number()) }))).toEqual([]);
    expect(sensitivePaths(z.array(Contact))).toEqual(['*.email']);
  });

  it('classify returns the same schema', () => {
    const s = z.string();
    expect(sensitive(s)).toBe(s);
    expect(classify(s, 'internal')).toBe(s);
  });

  const value = () => ({
    name: 'Ann',
    note: 'vip',
    optionalIban: 'DE00',
    address: { street: 'Main St 1', city: 'Berlin', geo: { lat: 52.5 } },
    contacts: [
      { email: 'a@x', label: 'work' },
      { email: 'b@x', label: 'home' },
    ],
    phones: ['123', '456'],
  });

  it('maskPaths masks on a copy and leaves the original unchanged', () => {
    const original = value();
    const snapshot = structuredClone(original);
    const masked = maskPaths(original, sensitivePaths(Schema));
    expect(original).toEqual(snapshot);
    expect(masked).not.toBe(original);
    expect(masked.address).not.toBe(original.address);
    expect(masked).toEqual({
      name: '[REDACTED]',
      note: 'vip',
      optionalIban: '[REDACTED]',
      address: { street: '[REDACTED]', city: 'Berlin', geo: { lat: '[REDACTED]' } },
      contacts: [
        { email: '[REDACTED]', label: 'work' },
        { email: '[REDACTED]', label: 'home' },
      ],
      phones: ['[REDACTED]', '[REDACTED]'],
    });
    // Absent fields stay absent rather than being created.
    expect(masked).not.toHaveProperty('wrappedOptional');
    expect(masked).not.toHaveProperty('secretBlob');
  });

  it('maskPaths uses a custom mask and tolerates missing branches and primitives', () => {
    const masked = maskPaths(
      { a: { b: 'secret' }, list: null as unknown },
      ['a.b', 'list.*.x', 'missing.deep'],
      (v) => `<${String(v).length}>`,
    );
    expect(masked).toEqual({ a: { b: '<6>' }, list: null });
    expect(maskPaths('plain', ['x'])).toBe('plain');
    expect(maskPaths(null, ['x'])).toBeNull();
  });
});
