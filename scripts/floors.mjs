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
 * Files whose unit is not their folder: where issue 19's target layout puts them. The rules are
 * written against that layout so that moving a file later changes this table, not the rules.
 */
export const PLACEMENT = {
  // leaf utilities every layer may use (issue 19: "a small base folder")
  'src/runtime/clock.ts': 'base',
  'src/runtime/heap.ts': 'base',
  'src/runtime/rng.ts': 'base',
  'src/runtime/circuit-breaker.ts': 'base',
  'src/runtime/failpoints.ts': 'base',
  'src/runtime/faults.ts': 'base',
  'src/runtime/audit-log.ts': 'base', // the audit chain's hashing and canonical JSON
  'src/runtime/data-folder.ts': 'base', // opening, locking and checking a data folder: the runtime's and the sealed store's
  'src/cluster/clock.ts': 'base',
  // the http kit under gateway/, inspect/ and notify/ (routing, sessions, WebSocket clients)
  'src/gateway/http.ts': 'httpkit',
  'src/gateway/ws-clients.ts': 'httpkit',
  'src/gateway/auth.ts': 'httpkit',
  'src/gateway/session-store.ts': 'httpkit',
  // everything NATS/JetStream belongs to cluster/
  'src/transport/nats-transport.ts': 'cluster',
  'src/security/keys-jetstream.ts': 'cluster',
  // composition roots: the embedded console, the cluster console, both demos
  'src/gateway/embedded.ts': 'app',
  'src/cluster/console.ts': 'app',
  'src/cluster/demo.ts': 'app',
  'src/sim/demo.ts': 'app',
  // the `handoff-hitl/runtime/cluster` face: it exports the cluster console and demo too
  'src/cluster/index.ts': 'entry',
  // every CLI command under cli/
  'src/notify/notifications-command.ts': 'cli',
};

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
