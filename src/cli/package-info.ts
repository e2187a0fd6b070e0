/** This package's own package.json, found from this file in a checkout (src/) and in dist/ alike. */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface PackageInfo {
  root: string;
  name: string;
  version: string;
}

let cached: PackageInfo | undefined;

export function packageInfo(): PackageInfo {
  if (cached) return cached;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const file = join(dir, 'package.json');
    if (existsSync(file)) {
      const pkg = JSON.parse(readFileSync(file, 'utf8')) as {
        name?: string;
        version?: string;
        bin?: Record<string, string>;
      };
      if (pkg.bin?.handoff)
        return (cached = { root: dir, name: pkg.name ?? 'handoff', version: pkg.version ?? '0.0.0' });
    }
    const up = dirname(dir);
    if (up === dir) return (cached = { root: dir, name: 'handoff', version: '0.0.0' });
    dir = up;
  }
}
