/**
 * The injection screen's normalisation: the forms of a text the patterns run on (each defeats one kind
 * of obfuscation: confusable letters, spaced-out words, leetspeak, inline escapes) and the excerpts a
 * hit quotes, with hidden characters made visible.
 */

/** Latin look-alikes from Cyrillic, Greek and fullwidth blocks (NFKC handles fullwidth already). */
const CONFUSABLES: Record<string, string> = {
  а: 'a',
  в: 'b',
  е: 'e',
  ё: 'e',
  к: 'k',
  м: 'm',
  н: 'h',
  о: 'o',
  р: 'p',
  с: 'c',
  т: 't',
  у: 'y',
  х: 'x',
  і: 'i',
  ї: 'i',
  ј: 'j',
  ѕ: 's',
  ԁ: 'd',
  ɡ: 'g',
  ӏ: 'l',
  α: 'a',
  β: 'b',
  ε: 'e',
  η: 'n',
  ι: 'i',
  κ: 'k',
  ν: 'v',
  ο: 'o',
  ρ: 'p',
  τ: 't',
  υ: 'u',
  χ: 'x',
  ω: 'w',
  ѵ: 'v',
};
const LEET: Record<string, string> = {
  '0': 'o',
  '1': 'i',
  '3': 'e',
  '4': 'a',
  '5': 's',
  '7': 't',
  '@': 'a',
  $: 's',
  '!': 'i',
  '|': 'l',
};

/** Invisible characters removed before matching (their presence is judged separately). */
export const INVISIBLE =
  /[\u00AD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E\u2060-\u2064\u2066-\u206F\u3164\uFE00-\uFE0F\uFEFF\uFFA0]|[\u{E0000}-\u{E007F}]|[\u{E0100}-\u{E01EF}]/gu;

export function foldConfusables(s: string): string {
  let out = '';
  for (const ch of s) out += CONFUSABLES[ch] ?? ch;
  return out;
}

/** Joins letters written one by one ("i g n o r e", "i.g.n.o.r.e") into words. */
function despace(s: string): string {
  return s.replace(/(?:^|(?<=\s))(?:[\p{L}\p{N}][ .\-_*·]){2,}[\p{L}\p{N}](?=\s|$|[.,;:!?])/gu, (m) =>
    m.replace(/[ .\-_*·]/g, ''),
  );
}

/** Undoes leetspeak in words that mix letters with digits or symbols ("1gn0r3" → "ignore"). */
export function unleet(s: string): string {
  return s.replace(/[\p{L}0-9@$!|]+/gu, (w) =>
    /\p{L}/u.test(w) && /[0-9@$!|]/.test(w) ? w.replace(/[0134579@$!|]/g, (c) => LEET[c] ?? c) : w,
  );
}

/** Decodes inline escapes an attacker may use to hide words: `\u0069`, `&#105;`, `&#x69;`. */
export function decodeEscapes(s: string): string {
  return s
    .replace(/\\u\{?([0-9a-fA-F]{2,6})\}?/g, (m, h: string) => safeChar(parseInt(h, 16)) ?? m)
    .replace(/\\x([0-9a-fA-F]{2})/g, (m, h: string) => safeChar(parseInt(h, 16)) ?? m)
    .replace(/&#x([0-9a-fA-F]{1,6});?/g, (m, h: string) => safeChar(parseInt(h, 16)) ?? m)
    .replace(/&#([0-9]{1,7});?/g, (m, d: string) => safeChar(parseInt(d, 10)) ?? m);
}
function safeChar(cp: number): string | undefined {
  return cp > 0 && cp <= 0x10ffff ? String.fromCodePoint(cp) : undefined;
}

/** The forms of a text the patterns run on: each defeats one kind of obfuscation. */
export function normal(raw: string): string {
  // Spaces collapse; line breaks stay (role markers are judged at the start of a line).
  return raw
    .replace(INVISIBLE, '')
    .normalize('NFKC')
    .toLowerCase()
    .replace(/[^\S\n]+/g, ' ')
    .replace(/ ?\n\s*/g, '\n')
    .trim();
}

export function variants(raw: string): string[] {
  const base = normal(raw);
  const out = new Set<string>([base]);
  const folded = foldConfusables(base);
  out.add(folded);
  const despaced = despace(folded).replace(/ {2,}/g, ' ');
  out.add(despaced);
  out.add(unleet(folded));
  out.add(unleet(despaced));
  const decoded = decodeEscapes(raw);
  if (decoded !== raw) out.add(foldConfusables(normal(decoded)));
  return [...out];
}

export function visible(s: string): string {
  return s.replace(
    /[\u0000-\u0008\u000B-\u001F\u007F\u00AD\u034F\u061C\u115F\u1160\u180E\u200B-\u200F\u202A-\u202E\u2060-\u2064\u2066-\u206F\u3164\uFE00-\uFE0F\uFEFF\uFFA0]|[\u{E0000}-\u{E007F}]|[\u{E0100}-\u{E01EF}]/gu,
    (c) => `<U+${c.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}>`,
  );
}

export function excerptAround(text: string, index: number, length: number): string {
  const from = Math.max(0, index - 20);
  const to = Math.min(text.length, index + Math.max(length, 1) + 20);
  let s = visible(text.slice(from, to)).replace(/\s+/g, ' ');
  if (s.length > 120) s = `${s.slice(0, 117)}...`;
  return `${from > 0 ? '…' : ''}${s}${to < text.length ? '…' : ''}`;
}
