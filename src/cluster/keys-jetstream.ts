import type { JetStreamClient } from '@nats-io/jetstream';
import type { Keyring } from '../security/keyring.ts';
import { openMaybe, seal } from '../security/seal.ts';

/**
 * A JetStream client whose `publish` seals each payload under the keyring's active key, bound to the
 * subject it is published on (the AAD). Everything else is the client itself.
 */
export function sealingJetStream(js: JetStreamClient, keyring: Keyring): JetStreamClient {
  const publish: JetStreamClient['publish'] = (subject, payload, opts) => {
    const bytes = typeof payload === 'string' ? Buffer.from(payload, 'utf8') : (payload ?? new Uint8Array(0));
    return js.publish(subject, seal(keyring, bytes, subject), opts);
  };
  return new Proxy(js, {
    get(target, prop, receiver) {
      if (prop === 'publish') return publish;
      const v: unknown = Reflect.get(target, prop, receiver);
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

/**
 * The plaintext of a stored message payload: opened when sealed (throws `keys.unknown`,
 * `keys.auth_failed` or, without a keyring, `keys.required`), returned as is when it is plaintext
 * (written before encryption was turned on, or a headers-only read).
 */
export function openPayload(keyring: Keyring | undefined, data: Uint8Array, subject: string): Uint8Array {
  return openMaybe(keyring, data, subject);
}
