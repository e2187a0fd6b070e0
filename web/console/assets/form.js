// Forms generated from JSON Schema (the server derives it from each action's zod schema with
// z.toJSONSchema), with the same checks in the browser as on the server for the keywords zod emits.
import { h, humanize } from './dom.js';

export const MASK = '••••••';

function typeOf(schema) {
  if (!schema) return 'any';
  if (schema.const !== undefined) return 'const';
  if (Array.isArray(schema.enum)) return 'enum';
  if (Array.isArray(schema.type)) return schema.type.find((t) => t !== 'null') || 'any';
  return schema.type || (schema.properties ? 'object' : 'any');
}

/** Problems of `value` against `schema`, each with its dotted path. */
export function validate(schema, value, path = '') {
  const errors = [];
  const err = (message) => errors.push({ path, message });
  const t = typeOf(schema);
  if (value === undefined || value === '') return errors;
  switch (t) {
    case 'const':
      if (value !== schema.const) err(`must be ${JSON.stringify(schema.const)}`);
      break;
    case 'enum':
      if (!schema.enum.includes(value)) err(`must be one of ${schema.enum.join(', ')}`);
      break;
    case 'string':
      if (typeof value !== 'string') {
        err('must be text');
        break;
      }
      if (value === MASK) break;
      if (schema.minLength !== undefined && value.length < schema.minLength)
        err(schema.minLength === 1 ? 'is required' : `needs at least ${schema.minLength} characters`);
      if (schema.maxLength !== undefined && value.length > schema.maxLength)
        err(`allows at most ${schema.maxLength} characters`);
      if (schema.pattern && !new RegExp(schema.pattern, 'u').test(value))
        err(`does not match the expected format (${schema.pattern})`);
      if (schema.format === 'email' && !/^[^@\s]+@[^@\s]+$/.test(value)) err('must be an e-mail address');
      break;
    case 'number':
    case 'integer': {
      if (typeof value !== 'number' || !Number.isFinite(value)) {
        err('must be a number');
        break;
      }
      if (t === 'integer' && !Number.isInteger(value)) err('must be a whole number');
      if (schema.minimum !== undefined && value < schema.minimum) err(`must be at least ${schema.minimum}`);
      if (schema.maximum !== undefined && value > schema.maximum && schema.maximum < Number.MAX_SAFE_INTEGER)
        err(`must be at most ${schema.maximum}`);
      if (schema.exclusiveMinimum !== undefined && value <= schema.exclusiveMinimum)
        err(`must be more than ${schema.exclusiveMinimum}`);
      if (schema.exclusiveMaximum !== undefined && value >= schema.exclusiveMaximum)
        err(`must be less than ${schema.exclusiveMaximum}`);
      if (schema.multipleOf !== undefined) {
        const q = value / schema.multipleOf;
        if (Math.abs(q - Math.round(q)) > 1e-8) err(`must be a multiple of ${schema.multipleOf}`);
      }
      break;
    }
    case 'boolean':
      if (typeof value !== 'boolean') err('must be yes or no');
      break;
    case 'object': {
      if (!value || typeof value !== 'object' || Array.isArray(value)) {
        err('must be an object');
        break;
      }
      for (const key of schema.required || []) {
        const v = value[key];
        if (v === undefined || v === null || v === '')
          errors.push({ path: path ? `${path}.${key}` : key, message: 'is required' });
      }
      for (const [key, sub] of Object.entries(schema.properties || {})) {
        if (value[key] !== undefined) errors.push(...validate(sub, value[key], path ? `${path}.${key}` : key));
      }
      break;
    }
    case 'array':
      if (!Array.isArray(value)) err('must be a list');
      else if (schema.items) value.forEach((v, i) => errors.push(...validate(schema.items, v, `${path}.${i}`)));
      break;
    default:
  }
  return errors;
}

function hint(schema, t) {
  const parts = [];
  if (t === 'number' || t === 'integer') {
    if (schema.exclusiveMinimum !== undefined) parts.push(`> ${schema.exclusiveMinimum}`);
    if (schema.minimum !== undefined) parts.push(`≥ ${schema.minimum}`);
    if (schema.maximum !== undefined && schema.maximum < Number.MAX_SAFE_INTEGER) parts.push(`≤ ${schema.maximum}`);
    if (schema.exclusiveMaximum !== undefined) parts.push(`< ${schema.exclusiveMaximum}`);
    if (schema.multipleOf !== undefined) parts.push(`steps of ${schema.multipleOf}`);
    if (t === 'integer') parts.push('whole number');
  }
  if (t === 'string') {
    if (schema.pattern) parts.push(`format ${schema.pattern.replace(/^\^|\$$/g, '')}`);
    if (schema.minLength > 1) parts.push(`at least ${schema.minLength} characters`);
  }
  return parts.join(' · ');
}

/**
 * Inputs for an object schema. `masked` lists paths whose value is hidden from this reviewer: they
 * are shown locked and sent back unchanged. Returns { el, read() → value, showErrors(errors) }.
 */
export function objectForm(schema, value, { masked = [], idPrefix = 'f' } = {}) {
  const readers = [];
  const errorSlots = new Map();
  const build = (sch, val, path) => {
    const t = typeOf(sch);
    if (t === 'object' && sch.properties) {
      const box = h('div.form-grid');
      for (const [key, sub] of Object.entries(sch.properties)) {
        const p = path ? `${path}.${key}` : key;
        const required = (sch.required || []).includes(key);
        box.append(field(sub, val ? val[key] : undefined, p, key, required));
      }
      return box;
    }
    return field(sch, val, path, path.split('.').pop(), true);
  };
  const field = (sch, val, path, key, required) => {
    const t = typeOf(sch);
    const id = `${idPrefix}-${path.replace(/[^\w-]/g, '_')}`;
    const error = h('div.field-error', { id: `${id}-err`, role: 'alert' });
    errorSlots.set(path, error);
    let input;
    let read;
    const isMasked = masked.includes(path);
    if (t === 'object' && sch.properties) {
      const sub = build(sch, val, path);
      return h('fieldset.subform', h('legend', humanize(key)), sub);
    }
    if (isMasked) {
      input = h('input.locked', {
        id,
        type: 'text',
        value: 'hidden',
        readonly: true,
        'aria-readonly': 'true',
        title: 'Your roles may not see this personal data; it is kept unchanged',
      });
      read = () => MASK;
    } else if (t === 'const') {
      input = h('input', { id, type: 'text', value: String(sch.const), readonly: true });
      read = () => sch.const;
    } else if (t === 'enum') {
      input = h(
        'select',
        { id },
        sch.enum.map((v) => h('option', { value: String(v), selected: v === val }, String(v))),
      );
      read = () => {
        const raw = input.value;
        const match = sch.enum.find((v) => String(v) === raw);
        return match === undefined ? raw : match;
      };
    } else if (t === 'boolean') {
      input = h('input', { id, type: 'checkbox', checked: !!val });
      read = () => input.checked;
    } else if (t === 'number' || t === 'integer') {
      input = h('input.num', {
        id,
        type: 'number',
        value: val === undefined || val === null ? '' : String(val),
        step: sch.multipleOf !== undefined ? String(sch.multipleOf) : t === 'integer' ? '1' : 'any',
        inputmode: t === 'integer' ? 'numeric' : 'decimal',
      });
      read = () => (input.value === '' ? undefined : Number(input.value));
    } else if (t === 'string') {
      const long = typeof val === 'string' && val.length > 60;
      input = long
        ? h('textarea', { id, rows: '3' }, val)
        : h('input', {
            id,
            type: 'text',
            value: val === undefined || val === null ? '' : String(val),
            spellcheck: 'false',
          });
      read = () => input.value;
    } else {
      input = h('textarea.mono', { id, rows: '4' }, JSON.stringify(val ?? null, null, 2));
      read = () => {
        try {
          return JSON.parse(input.value);
        } catch {
          return input.value;
        }
      };
    }
    input.setAttribute('aria-describedby', `${id}-err`);
    input.dataset.path = path;
    readers.push([path, read]);
    const hintText = isMasked ? 'personal data · hidden for your role · kept unchanged' : hint(sch, t);
    return h(
      `div.field${isMasked ? '.field-masked' : ''}`,
      h(
        'label.field-label',
        { for: id },
        humanize(key),
        required && t !== 'const' && !isMasked ? h('span.req', { 'aria-hidden': 'true' }, ' *') : null,
      ),
      input,
      hintText ? h('div.field-hint', hintText) : null,
      error,
    );
  };
  const el = build(schema, value, '');
  return {
    el,
    read() {
      const out = structuredClone(value ?? {});
      for (const [path, read] of readers) {
        const parts = path.split('.');
        let cur = out;
        for (const p of parts.slice(0, -1)) cur = cur[p] ??= {};
        const v = read();
        if (v === undefined) delete cur[parts[parts.length - 1]];
        else cur[parts[parts.length - 1]] = v;
      }
      return out;
    },
    showErrors(errors) {
      for (const [path, slot] of errorSlots) {
        const mine = errors.filter((e) => e.path === path);
        slot.textContent = mine.map((e) => `${humanize(path)} ${e.message}`).join('; ');
        const input = el.querySelector(`[data-path="${CSS.escape(path)}"]`);
        if (input) input.classList.toggle('invalid', mine.length > 0);
      }
    },
  };
}

/** Changed leaf values between two argument objects: [{ path, before, after }]. */
export function diff(before, after, path = '') {
  const out = [];
  const keys = new Set([...Object.keys(before || {}), ...Object.keys(after || {})]);
  for (const k of keys) {
    const p = path ? `${path}.${k}` : k;
    const a = before ? before[k] : undefined;
    const b = after ? after[k] : undefined;
    if (a && b && typeof a === 'object' && typeof b === 'object' && !Array.isArray(a) && !Array.isArray(b))
      out.push(...diff(a, b, p));
    else if (JSON.stringify(a) !== JSON.stringify(b)) out.push({ path: p, before: a, after: b });
  }
  return out;
}
