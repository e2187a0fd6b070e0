/**
 * A model's `handlers.ts` is TypeScript. Run from source (tests, a checkout), a TypeScript loader is
 * already in place; run as the published JavaScript, Handoff registers tsx on the first TypeScript
 * model it loads. tsx is an optional peer dependency: without it, a `handlers.ts` is refused with a
 * message naming the package, and a model compiled to `handlers.js` loads with plain Node.
 */
import { HandoffError } from '../contracts/errors.ts';

let registered: Promise<void> | undefined;

export function ensureTypeScriptLoader(file: string): Promise<void> {
  if (!/\.[mc]?ts$/.test(file) || import.meta.url.endsWith('.ts')) return Promise.resolve();
  registered ??= (async () => {
    let api: { register: () => unknown };
    try {
      api = (await import('tsx/esm/api')) as { register: () => unknown };
    } catch (err) {
      registered = undefined;
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ERR_MODULE_NOT_FOUND' && code !== 'MODULE_NOT_FOUND') throw err;
      throw new HandoffError(
        'dependency.missing',
        `loading a TypeScript model (${file}) needs the tsx package: npm install --save-dev tsx (or compile the model to handlers.js)`,
        { package: 'tsx', file },
      );
    }
    api.register();
  })();
  return registered;
}
