// Small DOM and formatting helpers. Text always goes in as text nodes (never innerHTML), so case data
// cannot inject markup; no inline styles either (the content security policy forbids them).

/**
 * h('div.card#main', { onclick, title, dataset: {...} }, ...children): creates an element.
 * Children: strings, numbers, nodes, arrays, null/false (skipped).
 */
export function h(spec, attrs, ...children) {
  const m = /^([a-z0-9-]+)?((?:[.#][\w-]+)*)$/i.exec(spec);
  const el = document.createElement((m && m[1]) || 'div');
  if (m && m[2]) {
    for (const part of m[2].match(/[.#][\w-]+/g)) {
      if (part[0] === '.') el.classList.add(part.slice(1));
      else el.id = part.slice(1);
    }
  }
  if (attrs && (typeof attrs !== 'object' || attrs instanceof Node || Array.isArray(attrs))) {
    children.unshift(attrs);
    attrs = null;
  }
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2).toLowerCase(), v);
      else if (k === 'dataset') Object.assign(el.dataset, v);
      else if (k === 'class') for (const c of String(v).split(/\s+/).filter(Boolean)) el.classList.add(c);
      else if (k === 'value') el.value = v;
      else if (k === 'checked') el.checked = !!v;
      else if (v === true) el.setAttribute(k, '');
      else el.setAttribute(k, String(v));
    }
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

export function replace(el, ...children) {
  clear(el);
  return append(el, children);
}

/** Sets a CSS custom property or width through the CSSOM (allowed by the CSP, unlike style attributes). */
export function setStyle(el, prop, value) {
  el.style.setProperty(prop, value);
  return el;
}

// ------------------------------------------------------------------------------------------------
// Formatting
// ------------------------------------------------------------------------------------------------

let offset = 0;
/** Server time minus local time, so countdowns follow the server's clock. */
export function setServerTime(serverTime) {
  offset = serverTime - Date.now();
}
export const now = () => Date.now() + offset;

export function fmtDuration(ms, { short = false } = {}) {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return '—';
  const neg = ms < 0;
  let s = Math.floor(Math.abs(ms) / 1000);
  const d = Math.floor(s / 86400);
  s -= d * 86400;
  const hh = Math.floor(s / 3600);
  s -= hh * 3600;
  const mm = Math.floor(s / 60);
  s -= mm * 60;
  let out;
  if (d > 0) out = `${d}d ${hh}h`;
  else if (hh > 0) out = short ? `${hh}h ${mm}m` : `${hh}h ${String(mm).padStart(2, '0')}m`;
  else if (mm > 0) out = short ? `${mm}m` : `${mm}m ${String(s).padStart(2, '0')}s`;
  else out = `${s}s`;
  return neg ? `-${out}` : out;
}

/** "4.2 min", "1.3 h": for averages. */
export function fmtSpan(ms) {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return '—';
  const s = ms / 1000;
  if (s < 90) return `${s.toFixed(0)} s`;
  const m = s / 60;
  if (m < 90) return `${m.toFixed(1)} min`;
  const hr = m / 60;
  if (hr < 48) return `${hr.toFixed(1)} h`;
  return `${(hr / 24).toFixed(1)} d`;
}

export function fmtTime(ms) {
  if (!ms) return '—';
  const d = new Date(ms);
  const today = new Date(now());
  const sameDay = d.toDateString() === today.toDateString();
  const time = d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false });
  if (sameDay) return time;
  return `${d.toLocaleDateString([], { day: '2-digit', month: 'short' })} ${time}`;
}

export function fmtIso(iso) {
  const t = Date.parse(iso);
  return Number.isFinite(t) ? fmtTime(t) : iso;
}

export function fmtPct(x, digits = 0) {
  if (x === null || x === undefined || !Number.isFinite(x)) return '—';
  return `${(x * 100).toFixed(digits)}%`;
}

export function fmtNum(n) {
  return Number(n).toLocaleString('en-US');
}

/** camelCase / kebab-case / dotted path → "Sentence case". */
export function humanize(key) {
  const last = String(key).split('.').pop();
  const words = last
    .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
    .replace(/[-_]+/g, ' ')
    .trim()
    .toLowerCase();
  return words.charAt(0).toUpperCase() + words.slice(1);
}

export function riskBand(score) {
  return score >= 0.6 ? 'high' : score >= 0.35 ? 'medium' : 'low';
}

/**
 * Class for a deadline: ok, soon (under 20% of the tier's window or 5 min), breached. A case that
 * already missed a deadline at an earlier tier is never shown as a fresh green 'ok'.
 */
export function slaClass(dueAt, windowMs, missedBefore = false) {
  if (!dueAt) return 'none';
  const left = dueAt - now();
  if (left < 0) return 'breached';
  if (missedBefore || left < Math.max(5 * 60_000, (windowMs || 0) * 0.2)) return 'soon';
  return 'ok';
}

export function initials(name) {
  return String(name || '?')
    .split(/\s+/)
    .filter(Boolean)
    .slice(0, 2)
    .map((w) => w[0].toUpperCase())
    .join('');
}

export function debounce(fn, ms) {
  let t = null;
  return (...args) => {
    clearTimeout(t);
    t = setTimeout(() => fn(...args), ms);
  };
}

/** A unique id for a command (the server prefixes the reviewer; a reused id is refused as a replay). */
export function commandId() {
  // getRandomValues works outside secure contexts too (randomUUID does not).
  const b = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}
