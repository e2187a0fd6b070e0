// The floors of the house (docs/architecture.md, "Layers"): one table, read by the layer check
// (scripts/layers.ts: report, cycles, test/unit/layers.test.ts) and by ESLint (eslint.config.mjs:
// no-restricted-imports on every file, so an editor shows an upward import as it is typed).
// Plain JavaScript because ESLint loads its config without a TypeScript loader; types in floors.d.mts.

/**
 * The floors, lowest first. A unit may import any unit on a lower floor and nothing on its own floor
 * or above: units on one floor are independent of each other. Together with "no file-level cycle"
 * this makes the unit graph a DAG.
 */
export const FLOORS = [
  ['contracts'],
  ['base'],
  ['policy'],
  ['machines', 'models'],
  ['actors', 'security'],
  ['transport'],
  ['runtime'],
  ['telemetry', 'httpkit', 'lineage'],
  ['inspect', 'cluster', 'sim'],
  ['retention', 'notify'],
  ['gateway'],
  ['app', 'testing'],
  ['cli'],
  ['entry'],
];

/** The ground floor: contracts, leaf utilities, machines, the gate, the authoring API. */
export const GROUND = new Set(['contracts', 'base', 'policy', 'machines', 'models']);

/**
 * Files whose unit is not their folder: none since issue 19's layout was made (src/base, src/httpkit,
 * src/app; the cluster face is src/cluster.ts beside console.ts and client.ts). Kept so that a file
 * can be placed before it moves, with the rules written against where it is going.
 */
export const PLACEMENT = {};

/** The folder a `src/` file sits in (`entry` for the files directly in src/). */
export function folderOf(file) {
  const parts = file.split('/');
  return parts.length > 2 ? parts[1] : 'entry';
}

/** The unit a `src/` file belongs to: its placement, else its folder. */
export function unitOf(file) {
  return PLACEMENT[file] ?? folderOf(file);
}

const floorOf = new Map(FLOORS.flatMap((units, i) => units.map((u) => [u, i])));

/** The floor of a unit, or undefined for a unit on no floor. */
export function floorOfUnit(unit) {
  return floorOf.get(unit);
}

/** Why an import from one `src/` file to another breaks the floors, or undefined when it is allowed. */
export function layerViolation(from, to) {
  const a = unitOf(from);
  const b = unitOf(to);
  if (a === b) return undefined;
  const fa = floorOf.get(a);
  const fb = floorOf.get(b);
  if (fa === undefined) return `unit '${a}' is on no floor (add it to FLOORS)`;
  if (fb === undefined) return `unit '${b}' is on no floor (add it to FLOORS)`;
  if (fb < fa) return undefined;
  return fb === fa
    ? `${a} → ${b}: same floor (${a} and ${b} must not know each other)`
    : `${a} → ${b}: upward (floor ${fa} → ${fb})`;
}
