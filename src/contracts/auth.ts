import { z } from 'zod';
import { SCHEMA_VERSION } from './envelope.ts';

/**
 * Reviewer credentials: an optional `reviewers.json` beside a model's `model.json`. Identities and
 * roles stay in `model.json` (`reviewers`); this file only holds the secrets, as scrypt hashes with
 * a salt per reviewer. Plain-text passwords are never stored.
 */

const Base64 = z.string().regex(/^[A-Za-z0-9+/]+={0,2}$/, 'expected base64');

/** Parameters and result of `crypto.scrypt(password, salt, keylen, { N, r, p })`. */
export const ScryptHash = z.object({
  algorithm: z.literal('scrypt'),
  /** CPU/memory cost, a power of two. */
  N: z
    .number()
    .int()
    .min(1024)
    .max(1 << 20)
    .refine((n) => (n & (n - 1)) === 0, 'N must be a power of two'),
  r: z.number().int().min(1).max(32),
  p: z.number().int().min(1).max(16),
  keylen: z.number().int().min(16).max(128),
  /** At least 16 random bytes, unique per reviewer. */
  salt: Base64.refine((s) => Buffer.from(s, 'base64').length >= 16, 'salt must be at least 16 bytes'),
  hash: Base64,
});
export type ScryptHash = z.infer<typeof ScryptHash>;

export const ReviewerCredential = z.object({
  /** A reviewer id of the model's `model.json`. */
  id: z.string().min(1).max(128),
  secret: ScryptHash,
  /** A disabled reviewer cannot log in; their history stays. @default false */
  disabled: z.boolean().default(false),
});
export type ReviewerCredential = z.infer<typeof ReviewerCredential>;

/** `models/<name>/reviewers.json`. */
export const CredentialsFile = z.object({
  schemaVersion: z.literal(SCHEMA_VERSION, {
    error: `unsupported schemaVersion (this release reads ${SCHEMA_VERSION})`,
  }),
  reviewers: z.array(ReviewerCredential),
  /**
   * Roles that may see fields marked `sensitive()` (personal data) in the console. Everyone else sees
   * them masked. @default [] (masked for everyone)
   */
  sensitiveRoles: z.array(z.string().min(1)).default([]),
});
export type CredentialsFile = z.infer<typeof CredentialsFile>;

/** Body of `POST /api/login`. */
export const LoginRequest = z
  .object({
    id: z.string().min(1, 'enter your reviewer id').max(128),
    password: z.string().min(1, 'enter your password').max(1024),
  })
  .strict();
export type LoginRequest = z.infer<typeof LoginRequest>;

/** What a reviewer may do in one model: their roles there, and whether they see sensitive fields. */
export interface ModelGrant {
  roles: string[];
  seeSensitive: boolean;
}

/** The authenticated reviewer of a session. Built on the server from the model config, never sent by the client. */
export interface Principal {
  id: string;
  name: string;
  /** By model name. A reviewer listed in several models has a grant in each. */
  grants: Record<string, ModelGrant>;
}
