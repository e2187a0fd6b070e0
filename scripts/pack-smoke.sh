#!/usr/bin/env bash
# The published artefact, checked as a user meets it: `npm pack` (prepack builds dist/), the tarball
# installed into a scratch project in a temporary folder, then
#   - smoke.mjs under plain `node` (ESM): every entry point loads; a shipped model runs on LevelDB
#   - `tsc --noEmit` (module nodenext, strict) on smoke.ts against the package's .d.ts
#   - the CLI: --version, `demo --cases 50 --fresh` with the shipped model by name, `models init` +
#     `models check` + `demo --model` on the scaffolded TypeScript model, a usage error (exit 2, one
#     line), and `audit export | head -1` (no EPIPE noise)
# Offline-safe: dependencies come from npm's cache (--prefer-offline), at the versions this checkout
# installed. Bounded: the whole script is killed after HANDOFF_PACK_SMOKE_TIMEOUT seconds (default 150).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
limit="${HANDOFF_PACK_SMOKE_TIMEOUT:-150}"
if [ -z "${HANDOFF_PACK_SMOKE_INNER:-}" ]; then
  HANDOFF_PACK_SMOKE_INNER=1 exec timeout --kill-after=5 "$limit" "$0" "$@"
fi
start=$(date +%s)
step() { echo "pack-smoke: [$(($(date +%s) - start)) s] $*"; }
fail() { echo "pack-smoke: FAILED: $*" >&2; exit 1; }

work="$(mktemp -d "${TMPDIR:-/tmp}/handoff-pack-smoke.XXXXXX")"
trap 'rm -rf "$work"' EXIT
cd "$root"
step "npm pack (prepack builds dist/)"
tarball="$work/$(npm pack --silent --pack-destination "$work" | tail -1)"
[ -f "$tarball" ] || fail "npm pack produced no tarball"
step "tarball $(basename "$tarball"): $(du -k "$tarball" | cut -f1) kB packed, $(tar -tzf "$tarball" | wc -l) files"
if tar -tzf "$tarball" | grep -E '^package/(test|bench|\.ci|src|models|test-results)/|\.png$' >/dev/null; then
  fail "the tarball ships files outside the allow-list: $(tar -tzf "$tarball" | grep -E '^package/(test|bench|\.ci|src|models|test-results)/|\.png$' | head -3 | tr '\n' ' ')"
fi

version() { node -p "require('$root/node_modules/$1/package.json').version"; }
app="$work/app"
mkdir -p "$app"
cp "$root/scripts/pack-smoke/smoke.mjs" "$root/scripts/pack-smoke/smoke.ts" "$app/"
cat >"$app/package.json" <<JSON
{ "name": "handoff-pack-smoke", "private": true, "type": "module" }
JSON
cat >"$app/tsconfig.json" <<JSON
{ "compilerOptions": { "module": "nodenext", "moduleResolution": "nodenext", "target": "es2022", "strict": true, "noEmit": true, "skipLibCheck": true, "types": ["node"] }, "files": ["smoke.ts"] }
JSON
cd "$app"
step "npm install the tarball (+ tsx and @types/node for the TypeScript checks)"
npm install "$tarball" "tsx@$(version tsx)" "@types/node@$(version @types/node)" --no-audit --no-fund --prefer-offline --loglevel=error >"$work/install.log" 2>&1 || { cat "$work/install.log" >&2; fail "npm install"; }
step "installed: $(du -sk node_modules | cut -f1) kB in node_modules, $(find node_modules -name package.json -path '*node_modules/*/package.json' -not -path '*/node_modules/*/node_modules/*/*' | wc -l) packages"

step "node smoke.mjs"
node smoke.mjs

step "tsc --noEmit (module nodenext)"
node "$root/node_modules/typescript/bin/tsc" -p tsconfig.json

step "npx handoff --version"
[ "$(npx --no-install handoff --version)" = "$(node -p "require('$root/package.json').version")" ] || fail "--version"

step "npx handoff demo --cases 50 --fresh"
npx --no-install handoff demo --cases 50 --fresh --json >"$work/demo.json"
node -e "const s=require('$work/demo.json'); if (s.model!=='refunds'||s.episodes!==50||s.unfinished!==0||s.duplicateEffects!==0) { console.error(s); process.exit(1) }"

step "npx handoff models init mymodel --from refunds; models check; demo --model ./mymodel"
npx --no-install handoff models init mymodel --from refunds >/dev/null
grep -q "from '@handoff-hitl/runtime'" mymodel/handlers.ts || fail "models init: handlers.ts does not import the package"
npx --no-install handoff models check mymodel --json >"$work/check.json" || { cat "$work/check.json" >&2; fail "models check mymodel"; }
npx --no-install handoff demo --model ./mymodel --cases 20 --fresh --yes --data .handoff/mymodel --json >"$work/demo2.json"
node -e "const s=require('$work/demo2.json'); if (s.model!=='mymodel'||s.unfinished!==0) { console.error(s); process.exit(1) }"

step "CLI failures: usage error exits 2 with one line and a hint; EPIPE is quiet"
set +e
npx --no-install handoff demo --bogus >"$work/usage.out" 2>"$work/usage.err"
code=$?
set -e
[ "$code" = 2 ] || fail "usage error exited $code, expected 2"
[ "$(wc -l <"$work/usage.err")" -le 2 ] || fail "usage error printed more than an error and a hint: $(cat "$work/usage.err")"
npx --no-install handoff audit export 2>"$work/epipe.err" | head -1 >/dev/null
[ ! -s "$work/epipe.err" ] || fail "audit export | head -1 wrote to stderr: $(head -3 "$work/epipe.err")"

step "ok"
