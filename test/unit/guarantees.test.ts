/**
 * Keeps docs/guarantees.md true: every row names a test file that exists and a test title found in
 * that file's source (as a string literal), or says `no test yet` with `—` (those are counted and
 * printed, so the gaps stay visible). And no test in test/ may be skipped, left todo or focused
 * outside the documented platform-specific cases, so a named test that exists also runs.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const DOC = join(REPO, 'docs/guarantees.md');

/**
 * Documented platform-specific skips: file (relative to the repo) → the exact condition allowed there
 * and why. Listed in docs/guarantees.md too. Any other skip in the file still fails.
 */
const ALLOWED_SKIPS: Record<string, { snippet: string; why: string }> = {
  'test/integration/disk-full.test.ts': {
    snippet: 'it.sk' + 'ipIf(!mnt)(',
    why: 'needs root and `mount -t tmpfs` (a real small disk to fill); CI runs as root',
  },
};

interface Row {
  id: string;
  guarantee: string;
  source: string;
  file: string;
  test: string;
  failsHow: string;
  status: string;
}

function rows(): Row[] {
  const out: Row[] = [];
  for (const line of readFileSync(DOC, 'utf8').split('\n')) {
    if (!/^\|\s*G\d+\s*\|/.test(line)) continue;
    const cells = line
      .split('|')
      .slice(1, -1)
      .map((c) => c.trim());
    if (cells.length !== 7)
      throw new Error(`docs/guarantees.md: a row needs 7 cells, got ${cells.length}: ${line.slice(0, 120)}`);
    const [id, guarantee, source, file, test, failsHow, status] = cells as [
      string,
      string,
      string,
      string,
      string,
      string,
      string,
    ];
    out.push({ id, guarantee, source, file, test, failsHow, status });
  }
  return out;
}

/** The title as it can appear in a source file: quoted with ', " or ` (with ' escaped inside '…'). */
function inSource(source: string, title: string): boolean {
  return [`'${title.replace(/'/g, "\\'")}'`, `"${title}"`, `\`${title}\``].some((q) => source.includes(q));
}

function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...filesUnder(p));
    else if (/\.(ts|js|mjs)$/.test(name)) out.push(p);
  }
  return out;
}

describe('docs/guarantees.md', () => {
  const table = rows();

  it('lists at least 30 guarantees, each with a unique id, a source and a status', () => {
    expect(table.length).toBeGreaterThanOrEqual(30);
    expect(new Set(table.map((r) => r.id)).size, 'ids repeat').toBe(table.length);
    for (const r of table) {
      expect(r.guarantee, r.id).not.toBe('');
      expect(r.source, r.id).not.toBe('');
      expect(['tested', 'no test yet'], `${r.id}: status '${r.status}'`).toContain(r.status);
    }
  });

  it('every test a row names exists: the file, and the title in that file', () => {
    const problems: string[] = [];
    const gaps: Row[] = [];
    for (const r of table) {
      if (r.status === 'no test yet') {
        if (r.file !== '—' || r.test !== '—')
          problems.push(`${r.id}: 'no test yet' but names ${r.file} / ${r.test}: mark it tested`);
        gaps.push(r);
        continue;
      }
      if (r.file === '—' || r.test === '—') {
        problems.push(`${r.id}: status tested without a test`);
        continue;
      }
      if (!r.failsHow || r.failsHow === '—')
        problems.push(`${r.id}: does not say how the test fails if the guarantee breaks`);
      let source: string;
      try {
        source = readFileSync(join(REPO, r.file), 'utf8');
      } catch {
        problems.push(`${r.id}: no file ${r.file}`);
        continue;
      }
      if (!inSource(source, r.test)) problems.push(`${r.id}: ${r.file} has no test titled '${r.test}'`);
    }
    console.log(
      `[guarantees] ${table.length} rows: ${table.length - gaps.length} tested, ${gaps.length} with no test yet${gaps.length ? `:\n${gaps.map((g) => `  ${g.id} ${g.guarantee}`).join('\n')}` : ''}`,
    );
    expect(problems).toEqual([]);
  });
});

describe('no test passes by not running', () => {
  it('no test in test/ is skipped, marked todo or focused outside the documented platform cases', () => {
    // Built from pieces so that this file does not match its own search.
    const patterns = ['.sk' + 'ip(', '.to' + 'do(', 'ctx.sk' + 'ip(', 'sk' + 'ipIf', '.on' + 'ly('];
    const found: string[] = [];
    for (const file of filesUnder(join(REPO, 'test'))) {
      const rel = relative(REPO, file).split('\\').join('/');
      const allowed = ALLOWED_SKIPS[rel];
      readFileSync(file, 'utf8')
        .split('\n')
        .forEach((line, i) => {
          const rest = allowed ? line.split(allowed.snippet).join('') : line;
          for (const p of patterns) if (rest.includes(p)) found.push(`${rel}:${i + 1}: ${line.trim().slice(0, 120)}`);
        });
    }
    expect(
      found,
      'document a platform-specific case in ALLOWED_SKIPS and docs/guarantees.md, or make it a failure',
    ).toEqual([]);
  });
});
