#!/usr/bin/env node
// The CLI is authored in TypeScript and run through tsx's loader, so user models written in
// TypeScript load the same way as the shipped ones, with no build step in between.
import { register } from 'tsx/esm/api';
register();
await import('../src/cli/main.ts');
