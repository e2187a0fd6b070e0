/** Terminal output helpers: progress goes to stderr, only on a terminal; results go to stdout. */
const painter = (color: boolean) => ({
  bold: (s: string) => (color ? `\x1b[1m${s}\x1b[22m` : s),
  dim: (s: string) => (color ? `\x1b[2m${s}\x1b[22m` : s),
  green: (s: string) => (color ? `\x1b[32m${s}\x1b[39m` : s),
  red: (s: string) => (color ? `\x1b[31m${s}\x1b[39m` : s),
  yellow: (s: string) => (color ? `\x1b[33m${s}\x1b[39m` : s),
});
/** Colour is decided per stream: `paint` for what goes to stdout, `paintErr` for stderr. */
export const paint = painter(!!process.stdout.isTTY && !process.env.NO_COLOR);
export const paintErr = painter(!!process.stderr.isTTY && !process.env.NO_COLOR);

export type ProgressMode = 'auto' | 'lines' | 'off';

/**
 * A progress bar on stderr. `auto` draws it only when stderr is a terminal; `lines` prints one plain
 * line per update (for logs and for tests that watch a run); `off` prints nothing.
 */
export function progressBar(mode: ProgressMode, label: string) {
  const tty = process.stderr.isTTY;
  const on = mode === 'lines' || (mode === 'auto' && tty);
  let last = '';
  return {
    update(done: number, total: number, extra = '') {
      if (!on) return;
      const pct = total ? done / total : 1;
      if (mode === 'lines' || !tty) {
        process.stderr.write(`${label} ${done}/${total} ${extra}\n`);
        return;
      }
      const width = 28;
      const fill = Math.round(pct * width);
      const line = `${label} [${'#'.repeat(fill)}${'.'.repeat(width - fill)}] ${String(Math.round(pct * 100)).padStart(3)}% ${done}/${total} ${extra}`;
      if (line !== last) process.stderr.write(`\r${line}\x1b[K`);
      last = line;
    },
    done() {
      if (on && tty && mode !== 'lines') process.stderr.write('\n');
    },
  };
}

/** Aligned text table. */
export function table(rows: (string | number)[][], opts: { header?: boolean; align?: ('l' | 'r')[] } = {}): string {
  const cells = rows.map((r) => r.map(String));
  const widths = cells[0]?.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length))) ?? [];
  return cells
    .map((r, ri) => {
      const line = r
        .map((c, i) =>
          (opts.align?.[i] ?? (i === 0 ? 'l' : 'r')) === 'r' ? c.padStart(widths[i]!) : c.padEnd(widths[i]!),
        )
        .join('  ');
      return opts.header && ri === 0 ? paint.bold(line) : line;
    })
    .join('\n');
}

export function duration(ms: number): string {
  if (ms < 1000) return `${ms} ms`;
  const s = ms / 1000;
  if (s < 120) return `${s.toFixed(1)} s`;
  const m = s / 60;
  if (m < 120) return `${m.toFixed(1)} min`;
  return `${(m / 60).toFixed(1)} h`;
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}
