#!/usr/bin/env node
/**
 * No tracked source file is longer than MAX_LINES (docs/architecture.md, "File size"): a file
 * that grows past it is split along its jobs, as runtime.ts, the stores, the cluster node and the
 * console pages were. Counted after Prettier (`npm run lint` runs it after `prettier --check`), over
 * the folders that hold code, styles and pages; data (docs, models' JSON, lock files) is not code.
 *
 *   node scripts/file-sizes.mjs          exits 1 naming every file over the limit, else prints the longest
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

const MAX_LINES = 600;
const FOLDERS = ['src', 'test', 'bench', 'scripts', 'examples', 'web', 'models', 'bin'];
const CODE = /\.(ts|mts|mjs|js|css|html)$/;

const files = execFileSync('git', ['ls-files', '-z', '--', ...FOLDERS], { encoding: 'utf8' })
  .split('\0')
  .filter((f) => CODE.test(f));
const sizes = files
  .map((f) => {
    let text;
    try {
      text = readFileSync(f, 'utf8');
    } catch {
      return undefined; // deleted in the work tree, not yet in the index
    }
    return { file: f, lines: text.split('\n').length - (text.endsWith('\n') ? 1 : 0) };
  })
  .filter((s) => s !== undefined)
  .sort((a, b) => b.lines - a.lines);
const over = sizes.filter((s) => s.lines > MAX_LINES);
if (over.length > 0) {
  for (const s of over)
    console.error(`${s.file}: ${s.lines} lines, over the limit of ${MAX_LINES}: split it along its jobs`);
  process.exit(1);
}
console.log(
  `file sizes: ${sizes.length} files, none over ${MAX_LINES} lines (longest: ${sizes[0]?.file} with ${sizes[0]?.lines})`,
);
