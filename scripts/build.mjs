#!/usr/bin/env node
// `npm run build` (and `prepack`): src/ and the shipped models compiled to dist/ with tsc
// (tsconfig.build.json: ESM JavaScript, .d.ts, source maps), then the files tsc does not emit copied
// beside them: the models' JSON, their TypeScript sources (for `handoff models init`), and web/.
import { cp, mkdir, readdir, rm } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const dist = join(root, 'dist');
await rm(dist, { recursive: true, force: true });
const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
execFileSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.build.json')], { stdio: 'inherit' });
// bench/ comes along through `handoff bench`'s lazy import; the package does not ship it.
await rm(join(dist, 'bench'), { recursive: true, force: true });

for (const model of await readdir(join(root, 'models'), { withFileTypes: true })) {
  if (!model.isDirectory()) continue;
  const from = join(root, 'models', model.name);
  const to = join(dist, 'models', model.name);
  for (const f of await readdir(from)) {
    if (f.endsWith('.json') || f.endsWith('.md')) await cp(join(from, f), join(to, f));
    // handlers.ts would shadow the compiled handlers.js for the loader: kept in source/.
    else if (f.endsWith('.ts')) {
      await mkdir(join(to, 'source'), { recursive: true });
      await cp(join(from, f), join(to, 'source', f));
    }
  }
}
await cp(join(root, 'web'), join(dist, 'web'), { recursive: true });
console.log('built dist/');
