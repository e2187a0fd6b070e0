#!/usr/bin/env node
// In a checkout (src/ beside bin/), the CLI runs from its TypeScript sources through tsx's loader, so
// changes need no build step. In the installed package (no src/), it runs the compiled dist/ with plain
// Node, and tsx is loaded only for a model folder written in TypeScript.
import { existsSync } from 'node:fs';

const source = new URL('../src/cli/main.ts', import.meta.url);
if (existsSync(source) && process.env.HANDOFF_USE_DIST !== '1') {
  const { register } = await import('tsx/esm/api');
  register();
  await import(source.href);
} else {
  await import('../dist/src/cli/main.js');
}
