/**
 * Names of things on NATS: subject tokens for actor ids and keys, and the placement group of an
 * actor. Tokens are reversible and valid both as subject tokens and as KV keys: `[A-Za-z0-9_-]`
 * stand for themselves, every other character is written `=HH` (or `==HHHH` beyond Latin-1).
 */

const PLAIN = /^[A-Za-z0-9_-]+$/;

export function tok(s: string): string {
  if (PLAIN.test(s)) return s;
  let out = '';
  for (const ch of s) {
    if (/[A-Za-z0-9_-]/.test(ch)) out += ch;
    else {
      const code = ch.codePointAt(0)!;
      if (code < 0x100) out += `=${code.toString(16).padStart(2, '0')}`;
      else for (const unit of ch.split('')) out += `==${unit.charCodeAt(0).toString(16).padStart(4, '0')}`;
    }
  }
  return out || '=';
}

export function untok(t: string): string {
  if (t === '=') return '';
  return t.replace(/==([0-9a-f]{4})|=([0-9a-f]{2})/g, (_, four: string | undefined, two: string | undefined) =>
    String.fromCharCode(parseInt((four ?? two)!, 16)),
  );
}

/**
 * The placement group of an actor: an episode's agent and its review cases (`<episode>.case-<n>`,
 * operator cases `<id>.operator-<t>`) are one group, owned by one node under one lease, so a case's
 * resolution reaches its agent on the same node. Intent keys (`<episode>/<step>...`) belong to the
 * episode's group.
 */
export function groupOf(actorId: string): string {
  const slash = actorId.indexOf('/');
  let id = slash < 0 ? actorId : actorId.slice(0, slash);
  if (!id.includes('.')) return id; // an episode's agent (most calls)
  for (;;) {
    const m = /^(.+)\.(?:case|operator)-[^.]*$/.exec(id);
    if (!m) return id;
    id = m[1]!;
  }
}

/** Stream-name part of a namespace. */
export function streamToken(ns: string): string {
  return ns.toUpperCase().replace(/[^A-Z0-9_-]/g, '_');
}
