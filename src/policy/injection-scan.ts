import { COMPACT, PATTERNS, TOOL_SHAPES, type RawHit } from './injection-corpus.ts';
import {
  INVISIBLE,
  decodeEscapes,
  excerptAround,
  foldConfusables,
  normal,
  unleet,
  variants,
  visible,
} from './injection-normalise.ts';

/**
 * The injection screen's scan of one text: the corpus's patterns over every normalised form, hidden
 * unicode (zero-width, bidi overrides, tag characters), tool-call shapes and the model's action names,
 * and encoded payloads (base64, hex, percent- or entity-encoded text), decoded and scanned again.
 */

// ------------------------------------------------------------------------------------------------
// Hidden unicode
// ------------------------------------------------------------------------------------------------

const ZERO_WIDTH = /[\u200B\u200C\u200D\u2060\u180E\uFEFF\u2061-\u2064\u034F\u115F\u1160\u3164\uFFA0]/u;
const BIDI = /[\u202A-\u202E\u2066-\u2069]/u;
const TAGS = /[\u{E0000}-\u{E007F}]/u;
const VS_SUPPLEMENT = /[\u{E0100}-\u{E01EF}]/u;
const PICTO = /\p{Extended_Pictographic}|\p{Emoji_Component}/u;
const ASCII_CONTEXT = /[\x21-\x7E]/;

function hiddenUnicode(text: string): { hits: RawHit[]; smuggled: string } {
  const hits: RawHit[] = [];
  const chars = [...text];
  let zw = 0;
  let zwFirst = -1;
  let smuggled = '';
  let tagRun = 0;
  let offset = 0;
  const offsets: number[] = [];
  for (const c of chars) {
    offsets.push(offset);
    offset += c.length;
  }
  for (let i = 0; i < chars.length; i++) {
    const c = chars[i]!;
    if (ZERO_WIDTH.test(c)) {
      const prev = chars[i - 1] ?? '';
      const next = chars[i + 1] ?? '';
      // A joiner between emoji (family, professions) or a ZWNJ inside Persian / Indic script is writing,
      // not hiding; one between ASCII letters or next to another invisible character is hiding.
      const betweenEmoji =
        (c === '\u200D' || c === '\u200C') &&
        (PICTO.test(prev) || PICTO.test(next)) &&
        !ASCII_CONTEXT.test(prev + next);
      const script =
        (c === '\u200C' || c === '\u200D') &&
        /\p{L}/u.test(prev) &&
        /\p{L}/u.test(next) &&
        !/[A-Za-z]/.test(prev + next);
      const bom = c === '\uFEFF' && i === 0;
      if (!betweenEmoji && !script && !bom) {
        zw++;
        if (zwFirst < 0) zwFirst = i;
      }
    } else if (BIDI.test(c)) {
      hits.push({
        category: 'hidden-unicode',
        rule: 'unicode.bidi-control',
        excerpt: excerptAround(text, offsets[i]!, 1),
      });
    } else if (TAGS.test(c)) {
      // Subdivision flags (🏴 + lower-case tag letters + cancel tag) are the one legitimate use.
      const cp = c.codePointAt(0)!;
      let j = i;
      while (j > 0 && TAGS.test(chars[j - 1]!)) j--;
      const flag = chars[j - 1] === '\u{1F3F4}';
      if (!flag) {
        tagRun++;
        if (cp >= 0xe0020 && cp <= 0xe007e) smuggled += String.fromCharCode(cp - 0xe0000);
      }
    } else if (VS_SUPPLEMENT.test(c)) {
      tagRun++;
      smuggled += String.fromCharCode((c.codePointAt(0)! - 0xe0100 + 16) & 0xff);
    }
  }
  if (zw > 0)
    hits.push({
      category: 'hidden-unicode',
      rule: 'unicode.zero-width',
      excerpt: `${zw} invisible character${zw > 1 ? 's' : ''}: ${excerptAround(text, offsets[zwFirst]!, 1)}`,
    });
  if (tagRun > 0)
    hits.push({
      category: 'hidden-unicode',
      rule: 'unicode.tag-characters',
      excerpt: `${tagRun} invisible tag characters${smuggled.trim() ? ` spelling "${smuggled.slice(0, 60)}"` : ''}`,
    });
  // Runs of ordinary variation selectors (beyond emoji presentation) can also carry bytes.
  const vsRun = /[\uFE00-\uFE0F]{3,}/u.exec(text);
  if (vsRun)
    hits.push({
      category: 'hidden-unicode',
      rule: 'unicode.variation-selectors',
      excerpt: excerptAround(text, vsRun.index, vsRun[0].length),
    });
  return { hits, smuggled };
}

// ------------------------------------------------------------------------------------------------
// Encoded payloads
// ------------------------------------------------------------------------------------------------

function printableRatio(s: string): number {
  if (!s) return 0;
  let ok = 0;
  for (const c of s) if (/[\p{L}\p{N}\p{P}\p{Zs}\n\t]/u.test(c)) ok++;
  return ok / [...s].length;
}

function decodedTexts(text: string): { kind: string; decoded: string; at: number; length: number }[] {
  const out: { kind: string; decoded: string; at: number; length: number }[] = [];
  const consider = (kind: string, decoded: string, at: number, length: number) => {
    if (decoded.length >= 8 && printableRatio(decoded) > 0.9 && /\p{L}{3}/u.test(decoded))
      out.push({ kind, decoded, at, length });
  };
  for (const m of text.matchAll(/[A-Za-z0-9+/_-]{16,}={0,2}/g)) {
    const s = m[0];
    // Ids and IBANs are base64-alphabet too, but decode to bytes, not text: the printable test drops them.
    const std = s.replace(/-/g, '+').replace(/_/g, '/');
    try {
      consider('base64', Buffer.from(std, 'base64').toString('utf8'), m.index, s.length);
    } catch {
      /* not base64 */
    }
  }
  for (const m of text.matchAll(/\b(?:[0-9a-fA-F]{2}[\s:]?){10,}/g)) {
    const hex = m[0].replace(/[\s:]/g, '');
    if (hex.length % 2 === 0) consider('hex', Buffer.from(hex, 'hex').toString('utf8'), m.index, m[0].length);
  }
  for (const m of text.matchAll(/\S*%[0-9a-fA-F]{2}\S*/g)) {
    if ((m[0].match(/%[0-9a-fA-F]{2}/g) ?? []).length < 3) continue;
    try {
      consider('percent-encoding', decodeURIComponent(m[0].replace(/\+/g, ' ')), m.index, m[0].length);
    } catch {
      /* malformed */
    }
  }
  const entities = /(?:&#x?[0-9a-fA-F]+;?){6,}/.exec(text);
  if (entities) consider('html-entities', decodeEscapes(entities[0]), entities.index, entities[0].length);
  const escapes = /(?:\\u[0-9a-fA-F]{4}|\\x[0-9a-fA-F]{2}){6,}/.exec(text);
  if (escapes) consider('escapes', decodeEscapes(escapes[0]), escapes.index, escapes[0].length);
  return out;
}

// ------------------------------------------------------------------------------------------------
// Screening
// ------------------------------------------------------------------------------------------------

function camelToSnake(s: string): string {
  return s.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toLowerCase();
}

/** Screens one text. `actionNames` are the model's actions: their tool names in text are look-alikes. */
export function screenText(text: string, opts: { actionNames?: readonly string[]; depth?: number } = {}): RawHit[] {
  const depth = opts.depth ?? 0;
  const hits: RawHit[] = [];
  const seen = new Set<string>();
  const add = (h: RawHit) => {
    if (seen.has(h.rule)) return;
    seen.add(h.rule);
    hits.push(h);
  };
  if (!text || typeof text !== 'string') return hits;

  const hidden = hiddenUnicode(text);
  for (const h of hidden.hits) add(h);

  const forms = variants(text);
  for (const form of forms) {
    for (const p of PATTERNS) {
      if (seen.has(p.rule)) continue;
      p.re.lastIndex = 0;
      const m = p.re.exec(form);
      if (m && !p.unless?.(m[0]))
        add({ category: p.category, rule: p.rule, excerpt: excerptAround(form, m.index, m[0].length) });
    }
  }
  // Words split by punctuation or spaces ("IGNORE. ALL. PREVIOUS.", "i g n o r e") meet here.
  if (!seen.has('en.ignore-instructions')) {
    const compact = unleet(foldConfusables(normal(text))).replace(/[^\p{L}]/gu, '');
    const m = COMPACT.exec(compact);
    if (m) add({ category: 'instruction-override', rule: 'compact.ignore-instructions', excerpt: m[0] });
  }
  // Tool-call shapes are judged on the text as written (case and quotes matter), minus invisibles.
  const plain = text.replace(INVISIBLE, '').normalize('NFKC');
  for (const p of TOOL_SHAPES) {
    const m = p.re.exec(plain);
    if (m) add({ category: p.category, rule: p.rule, excerpt: excerptAround(plain, m.index, m[0].length) });
  }
  // A model's action named as an identifier ("issueRefund", "issue_refund") is how a tool call is
  // written, not how people write ("issue a refund"); plain-word action names are left out.
  const identifiers = [...(opts.actionNames ?? []), 'submit_plan']
    .flatMap((n) => [n, camelToSnake(n)])
    .filter((n) => /[A-Z_.]/.test(n));
  for (const id of new Set(identifiers)) {
    const m = new RegExp(`(?<![\\w.])${id.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(?!\\w)`, 'i').exec(plain);
    if (m) {
      add({ category: 'tool-call', rule: 'tool.action-name', excerpt: excerptAround(plain, m.index, m[0].length) });
      break;
    }
  }
  for (const fence of plain.matchAll(/```[\w-]*\s*([\s\S]*?)```/g)) {
    const body = fence[1] ?? '';
    // A call with keyword arguments (issue_refund(amount=5)) or an object literal (approve({ amount: 5 })),
    // or JSON naming a function; stack frames such as "at fn (node:net:1555:16)" are neither.
    const pyCall = /\b[a-z]+(?:_[a-z0-9]+)+\s*\(\s*\w+\s*=\s*["'\d\[{]/.test(body);
    const jsCall = /\b[a-z]+[A-Z]\w*\s*\(\s*\{\s*["']?\w+["']?\s*:/.test(body);
    if (pyCall || jsCall || /["'](?:name|action|tool|function)["']\s*:/.test(body)) {
      add({
        category: 'tool-call',
        rule: 'tool.code-fence-call',
        excerpt: excerptAround(plain, fence.index ?? 0, fence[0].length),
      });
      break;
    }
  }

  if (depth < 2) {
    const inner = [
      ...decodedTexts(text),
      ...(hidden.smuggled.trim() ? [{ kind: 'tag characters', decoded: hidden.smuggled, at: 0, length: 0 }] : []),
    ];
    for (const d of inner) {
      const sub = screenText(d.decoded, { ...opts, depth: depth + 1 });
      if (sub.length > 0) {
        add({
          category: 'encoded-payload',
          rule: `encoded.${d.kind.replace(/\s+/g, '-')}`,
          excerpt: `${d.kind} decoding to "${visible(d.decoded).slice(0, 80)}" (${sub.map((s) => s.rule).join(', ')})`,
        });
      }
    }
  }
  return hits;
}
