/**
 * docs/security.md's review-rules tables are the machine's: regenerated here from the review-case
 * machine (each cell a real command on a real snapshot), they must match the docs word for word.
 * HANDOFF_UPDATE_DOCS=1 writes the regenerated tables into the docs.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { reviewRulesMarkdown } from '../../src/machines/review-rules.ts';

const DOC = join(import.meta.dirname, '..', '..', 'docs', 'security.md');
const BEGIN =
  '<!-- review-rules:begin (generated from src/machines/review-rules.ts; test/unit/review-rules.test.ts checks it) -->';
const END = '<!-- review-rules:end -->';

describe('review rules in the docs', () => {
  it('docs/security.md shows exactly the rules the review-case machine enforces', async () => {
    const doc = await readFile(DOC, 'utf8');
    const from = doc.indexOf(BEGIN);
    const to = doc.indexOf(END);
    expect(from, 'the review-rules markers in docs/security.md').toBeGreaterThanOrEqual(0);
    expect(to).toBeGreaterThan(from);
    const generated = reviewRulesMarkdown();
    if (process.env.HANDOFF_UPDATE_DOCS === '1')
      await writeFile(DOC, `${doc.slice(0, from + BEGIN.length)}\n${generated}\n${doc.slice(to)}`);
    else expect(doc.slice(from + BEGIN.length, to).trim()).toBe(generated);
  });

  it('the tables name the rules a demanding reviewer expects: four eyes, separation of duties on claim and escalate, step order', () => {
    const md = reviewRulesMarkdown();
    const row = (table: number, command: string) =>
      md
        .split('\n\n')
        .filter((b) => b.startsWith('|'))
        [table]!.split('\n')
        .find((l) => l.startsWith(`| ${command} |`))!;
    // Queued four-eyes tier: claimant, other holder, earlier approver, requester, next tier only, no role.
    expect(row(0, 'claim')).toBe(
      '| claim | ✓ | ✓ | four-eyes (403) | separation-of-duties (403) | tier-role (403) | tier-role (403) |',
    );
    expect(row(0, 'escalate')).toContain('separation-of-duties (403)');
    expect(row(1, 'approve')).toBe(
      '| approve | ✓ | not-claimant | not-claimant | not-claimant | tier-role (403) | tier-role (403) |',
    );
    expect(row(2, 'claim')).toContain('step-role (403)');
  });
});

describe('separation of duties, from the machine', () => {
  it('the requester can never claim, release, renew, approve, modify, reject or escalate their own case, in any scenario or state', () => {
    const blocks = reviewRulesMarkdown()
      .split('\n\n')
      .filter((b) => b.startsWith('|'));
    expect(blocks.length).toBeGreaterThanOrEqual(4);
    let checked = 0;
    for (const block of blocks) {
      const [head, , ...rows] = block.split('\n');
      const col = head!
        .split('|')
        .map((c) => c.trim())
        .indexOf('requester');
      expect(col, 'a requester column in every table').toBeGreaterThan(0);
      for (const row of rows) {
        const cells = row.split('|').map((c) => c.trim());
        expect(cells[col], `${cells[1]} by the requester`).not.toBe('✓');
        checked++;
      }
    }
    expect(checked).toBe(blocks.length * 7);
  });
});
