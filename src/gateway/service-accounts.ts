import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { ApiOperation, ModelName, type ServiceAccountView } from '../contracts/api-v1.ts';
import { HandoffError } from '../contracts/errors.ts';

/** What the accounts need of a store: its small meta records (a LevelStore, or a test's map). */
export interface AccountsMetaStore {
  getMeta<T>(key: string): Promise<T | undefined>;
  putMeta(key: string, value: unknown): Promise<void>;
}

/** The meta record holding every service account (hashes only; never a key). */
export const ACCOUNTS_META_KEY = 'api.service-accounts';
/** Keys look like `hk_<account id>_<secret>`: the id finds the record, the secret is checked against its hash. */
const KEY_PREFIX = 'hk_';
const ID_RE = /^sa-[a-z0-9]{12}$/;

interface StoredAccount {
  id: string;
  name: string;
  /** SHA-256 of the secret part, hex. The secret is 256 random bits, so a fast hash is enough (no guessing it). */
  hash: string;
  scopes: Record<string, ApiOperation[]>;
  createdAt: number;
  revokedAt: number | null;
}

type Stored = { v: 1; accounts: Record<string, StoredAccount> };

export type Authenticated =
  | { ok: true; account: ServiceAccountView }
  | { ok: false; code: 'auth.required' | 'auth.invalid_key' | 'auth.key_revoked'; accountId?: string };

function sha256(s: string): string {
  return createHash('sha256').update(s).digest('hex');
}

/**
 * Parses `model:operation` scopes (`refunds:signals:submit`, `refunds:*` for every operation) into
 * operations per model.
 */
export function parseScopes(specs: readonly string[]): Record<string, ApiOperation[]> {
  const out: Record<string, ApiOperation[]> = {};
  for (const spec of specs) {
    const i = spec.indexOf(':');
    const model = i > 0 ? spec.slice(0, i) : '';
    const op = i > 0 ? spec.slice(i + 1) : '';
    if (!ModelName.safeParse(model).success)
      throw new HandoffError(
        'config.invalid',
        `scope '${spec}': expected <model>:<operation>, e.g. refunds:signals:submit (model names are lower-case letters, digits and dashes)`,
        { field: 'scope' },
      );
    const ops = op === '*' ? ApiOperation.options : [op];
    for (const o of ops) {
      const parsed = ApiOperation.safeParse(o);
      if (!parsed.success)
        throw new HandoffError(
          'config.invalid',
          `scope '${spec}': unknown operation '${o}'; one of ${ApiOperation.options.join(', ')} or *`,
          { field: 'scope' },
        );
      const list = (out[model] ??= []);
      if (!list.includes(parsed.data)) list.push(parsed.data);
    }
  }
  return out;
}

/**
 * Service accounts of the API (docs/api.md): keys for programs, scoped per model and operation,
 * stored in the data folder's meta records as hashes. The key itself is returned once, by
 * {@link ServiceAccounts.create}, and stored nowhere.
 */
export class ServiceAccounts {
  readonly #store: AccountsMetaStore;
  readonly #now: () => number;

  constructor(store: AccountsMetaStore, now: () => number = Date.now) {
    this.#store = store;
    this.#now = now;
  }

  async #load(): Promise<Stored> {
    return (await this.#store.getMeta<Stored>(ACCOUNTS_META_KEY)) ?? { v: 1, accounts: {} };
  }

  static view(a: StoredAccount): ServiceAccountView {
    return { id: a.id, name: a.name, scopes: a.scopes, createdAt: a.createdAt, revokedAt: a.revokedAt };
  }

  async create(
    name: string,
    scopes: Record<string, ApiOperation[]>,
  ): Promise<{ account: ServiceAccountView; key: string }> {
    const trimmed = name.trim();
    if (!trimmed || trimmed.length > 100)
      throw new HandoffError('config.invalid', 'the account name must be 1 to 100 characters', { field: 'name' });
    if (Object.keys(scopes).length === 0)
      throw new HandoffError('config.invalid', 'give the account at least one scope (--scope <model>:<operation>)', {
        field: 'scope',
      });
    const stored = await this.#load();
    const id = `sa-${randomBytes(8).toString('hex').slice(0, 12)}`;
    const secret = randomBytes(32).toString('base64url');
    const account: StoredAccount = {
      id,
      name: trimmed,
      hash: sha256(secret),
      scopes,
      createdAt: this.#now(),
      revokedAt: null,
    };
    stored.accounts[id] = account;
    await this.#store.putMeta(ACCOUNTS_META_KEY, stored);
    return { account: ServiceAccounts.view(account), key: `${KEY_PREFIX}${id}_${secret}` };
  }

  async list(): Promise<ServiceAccountView[]> {
    const stored = await this.#load();
    return Object.values(stored.accounts)
      .sort((a, b) => a.createdAt - b.createdAt || a.id.localeCompare(b.id))
      .map(ServiceAccounts.view);
  }

  /** Revokes an account: its key is refused from then on (401 `auth.key_revoked`). Revoking twice is a no-op. */
  async revoke(id: string): Promise<ServiceAccountView> {
    const stored = await this.#load();
    const account = stored.accounts[id];
    if (!account) throw new HandoffError('account.not_found', `no service account '${id}'`, { id });
    if (account.revokedAt === null) {
      account.revokedAt = this.#now();
      await this.#store.putMeta(ACCOUNTS_META_KEY, stored);
    }
    return ServiceAccounts.view(account);
  }

  /** Checks an `Authorization` header value (`Bearer <key>`). */
  async authenticate(header: string | undefined): Promise<Authenticated> {
    if (!header) return { ok: false, code: 'auth.required' };
    const m = /^Bearer[ \t]+(\S+)\s*$/i.exec(header);
    if (!m) return { ok: false, code: 'auth.invalid_key' };
    const key = m[1]!;
    if (!key.startsWith(KEY_PREFIX) || key.length > 200) return { ok: false, code: 'auth.invalid_key' };
    const rest = key.slice(KEY_PREFIX.length);
    const sep = rest.indexOf('_');
    const id = sep > 0 ? rest.slice(0, sep) : '';
    if (!ID_RE.test(id)) return { ok: false, code: 'auth.invalid_key' };
    const account = (await this.#load()).accounts[id];
    const given = Buffer.from(sha256(rest.slice(sep + 1)), 'hex');
    // Compared in constant time, and hashed even for an unknown id, so timing tells nothing.
    const expected = Buffer.from(account?.hash ?? sha256(''), 'hex');
    const match = timingSafeEqual(given, expected) && !!account;
    if (!match) return { ok: false, code: 'auth.invalid_key' };
    if (account.revokedAt !== null) return { ok: false, code: 'auth.key_revoked', accountId: id };
    return { ok: true, account: ServiceAccounts.view(account) };
  }
}
