// ESLint: the house's mechanical guards (issue 19). `npm run lint` runs it; .ci/run runs it before the tests.
// - typescript-eslint's recommended rules, and the type-checked rules that catch lost work: a promise nobody
//   awaits or handles (no-floating-promises), a promise where a callback's void is expected, awaiting a non-promise.
// - handoff/floors: no import from a lower floor to a higher one or sideways (the table in scripts/floors.mjs,
//   the same one scripts/layers.ts reports on), for every `import`, `export … from`, `import()` and `import('…').T`.
// - import-x/no-cycle: no import cycle between files.
// Formatting is Prettier's (.prettierrc.json), not ESLint's.
import { dirname, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { existsSync } from 'node:fs';
import tseslint from 'typescript-eslint';
import importX, { createNodeResolver } from 'eslint-plugin-import-x';
import { layerViolation } from './scripts/floors.mjs';

const ROOT = dirname(fileURLToPath(import.meta.url));

/** The `src/` file an import specifier names, or undefined for a package or a file outside src/. */
function resolveSrc(fromFile, spec) {
  if (!spec.startsWith('.')) return undefined;
  let to = relative(ROOT, resolve(dirname(fromFile), spec))
    .split('\\')
    .join('/');
  if (!to.startsWith('src/')) return undefined;
  if (!existsSync(resolve(ROOT, to)) && to.endsWith('.js')) to = `${to.slice(0, -3)}.ts`;
  if (!existsSync(resolve(ROOT, to)) && existsSync(resolve(ROOT, to, 'index.ts'))) to = `${to}/index.ts`;
  return to;
}

const floors = {
  meta: {
    type: 'problem',
    docs: { description: 'No import from a lower floor of the house to a higher one, or between units of one floor' },
    schema: [],
    messages: { upward: '{{to}}: {{why}} (the floors are in scripts/floors.mjs and docs/architecture.md)' },
  },
  create(context) {
    const from = relative(ROOT, context.filename).split('\\').join('/');
    if (!from.startsWith('src/')) return {};
    const check = (node, source) => {
      if (!source || typeof source.value !== 'string') return;
      const to = resolveSrc(context.filename, source.value);
      if (!to) return;
      const why = layerViolation(from, to);
      if (why) context.report({ node: source, messageId: 'upward', data: { to, why } });
    };
    return {
      ImportDeclaration: (n) => check(n, n.source),
      ExportNamedDeclaration: (n) => check(n, n.source),
      ExportAllDeclaration: (n) => check(n, n.source),
      ImportExpression: (n) => check(n, n.source.type === 'Literal' ? n.source : undefined),
      TSImportType: (n) => check(n, n.argument?.type === 'TSLiteralType' ? n.argument.literal : n.argument),
    };
  },
};

export default tseslint.config(
  {
    ignores: [
      'dist/**',
      'node_modules/**',
      'web/vendor/**',
      'test/e2e/screenshots/**',
      '**/*.d.mts',
      'examples/**/node_modules/**',
      'scripts/pack-smoke/**',
    ],
  },
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: ROOT } },
    plugins: { handoff: { rules: { floors } }, 'import-x': importX },
    settings: { 'import-x/resolver-next': [createNodeResolver({ extensions: ['.ts', '.js', '.mjs'] })] },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': [
        'error',
        { checksVoidReturn: { arguments: false, attributes: false } },
      ],
      '@typescript-eslint/await-thenable': 'error',
      'handoff/floors': 'error',
      'import-x/no-cycle': ['error', { ignoreExternal: true }],
      '@typescript-eslint/no-explicit-any': 'error',
      // A `let` filled in later and read by a closure made before (a handle wired up after construction).
      'prefer-const': ['error', { ignoreReadBeforeAssign: true }],
      // `_name` marks a value taken on purpose and not used (a destructured key left out, a callback's first argument).
      '@typescript-eslint/no-unused-vars': [
        'error',
        {
          argsIgnorePattern: '^_',
          varsIgnorePattern: '^_',
          caughtErrorsIgnorePattern: '^_',
          destructuredArrayIgnorePattern: '^_',
          ignoreRestSiblings: true,
        },
      ],
    },
  },
  // The console's and the inspector's pages are browser modules with no type check: a name used but never defined
  // is an error (it would throw only when that line runs). The browser APIs they use are listed; add one when needed.
  {
    files: ['web/**/*.js'],
    languageOptions: {
      sourceType: 'module',
      globals: Object.fromEntries(
        [
          'AbortController',
          'CSS',
          'Node',
          'URLSearchParams',
          'WebSocket',
          'clearInterval',
          'clearTimeout',
          'crypto',
          'document',
          'fetch',
          'history',
          'performance',
          'requestAnimationFrame',
          'sessionStorage',
          'setInterval',
          'setTimeout',
          'structuredClone',
          'window',
        ].map((name) => [name, 'readonly']),
      ),
    },
    rules: { 'no-undef': 'error' },
  },
  // Tests reach into actors and machines to build mutants and fixtures: `any` is allowed there, and only there.
  { files: ['test/**/*.ts'], rules: { '@typescript-eslint/no-explicit-any': 'off' } },
);
