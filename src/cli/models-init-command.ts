/**
 * `handoff models init <dir> [--from refunds]`: a new model folder, copied from a shipped model, that
 * works outside this repository: ESM, importing Handoff by its package name instead of this
 * repository's `src/` paths.
 */
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { createRequire } from 'node:module';
import { Option, type Command } from 'commander';
import { HandoffError } from '../contracts/errors.ts';
import { BUILTIN_MODELS_DIR, builtinModels } from '../models/builtin.ts';
import { packageInfo } from './package-info.ts';
import { printJson } from './output.ts';

/** Whether `dir` lies in an ESM package (nearest package.json has "type": "module"). */
function inEsmPackage(dir: string): boolean {
  for (let d = resolve(dir); ; d = dirname(d)) {
    const file = join(d, 'package.json');
    if (existsSync(file)) {
      try {
        return (JSON.parse(readFileSync(file, 'utf8')) as { type?: string }).type === 'module';
      } catch {
        return false;
      }
    }
    if (dirname(d) === d) return false;
  }
}

/**
 * The pilots import `../../src/...ts`; a model elsewhere imports the package (everything is exported there).
 * With `ext` ('.mts'), imports of the model's own modules (`./synth.ts`) follow its renamed files.
 */
export function rewriteImports(source: string, packageName: string, ext = '.ts'): string {
  const out = source.replace(/(from\s+)(['"])(?:\.\.\/)+src\/[^'"]+\.ts\2/g, `$1$2${packageName}$2`);
  return ext === '.ts' ? out : out.replace(/(from\s+)(['"])(\.\/[\w.-]+)\.ts\2/g, `$1$2$3${ext}$2`);
}

export function registerModelsInit(models: Command): void {
  models
    .command('init')
    .description(
      'Create a model folder from a shipped model (ESM, importing Handoff by its package name), ready to edit.',
    )
    .argument('<dir>', 'folder to create (absent or empty)')
    .addOption(new Option('--from <model>', 'shipped model to start from').default('refunds'))
    .option('--name <name>', "the model's name (lower-case letters, digits and dashes; default: the folder's name)")
    .option('--json', 'print the result as JSON', false)
    .action(async (dirArg: string, o: { from: string; name?: string; json: boolean }) => {
      const shipped = builtinModels();
      if (!shipped.includes(o.from))
        throw new HandoffError(
          'usage.invalid',
          `--from must name a shipped model (${shipped.join(', ')}); got '${o.from}'`,
          { from: o.from },
        );
      const name =
        o.name ??
        basename(resolve(dirArg))
          .toLowerCase()
          .replace(/[^a-z0-9-]+/g, '-')
          .replace(/^[^a-z]+/, '');
      if (!/^[a-z][a-z0-9-]*$/.test(name))
        throw new HandoffError(
          'usage.invalid',
          `'${name}' is not a model name (lower-case letters, digits and dashes, starting with a letter): give one with --name`,
        );
      const dir = resolve(dirArg);
      if (existsSync(dir) && (await readdir(dir)).length > 0)
        throw new HandoffError('fs.not_empty', `${dirArg} exists and is not empty: choose a new folder`, {
          dir: dirArg,
        });

      const from = join(BUILTIN_MODELS_DIR, o.from);
      // A checkout has the TypeScript next to model.json; the package keeps it in source/ (beside the
      // compiled handlers.js, which is what `--model refunds` runs).
      const sourceDir = [from, join(from, 'source')].find((d) => existsSync(join(d, 'handlers.ts')));
      if (!sourceDir)
        throw new HandoffError('model.unknown', `the shipped model '${o.from}' has no handlers.ts source to copy`);
      // handlers.ts and the modules it imports (./shop.ts, ./plan.ts, ...): every TypeScript file of the model.
      const modules = (await readdir(sourceDir)).filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts')).sort();
      const config = JSON.parse(await readFile(join(from, 'model.json'), 'utf8')) as Record<string, unknown>;
      config.name = name;

      // handlers.ts loads as ESM only inside an ESM package; .mts files are ESM anywhere.
      const ext = inEsmPackage(dir) ? '.ts' : '.mts';
      const pkg = packageInfo().name;
      await mkdir(dir, { recursive: true });
      await writeFile(join(dir, 'model.json'), `${JSON.stringify(config, null, 2)}\n`);
      const written: string[] = [];
      for (const f of modules) {
        const target = f.replace(/\.ts$/, ext);
        await writeFile(join(dir, target), rewriteImports(await readFile(join(sourceDir, f), 'utf8'), pkg, ext));
        written.push(target);
      }
      let tsx = true;
      try {
        createRequire(join(dir, 'x.js')).resolve('tsx/package.json');
      } catch {
        tsx = false;
      }
      const files = ['model.json', ...written];
      if (o.json) printJson({ ok: true, dir: dirArg, name, from: o.from, files, tsx });
      else {
        process.stdout.write(
          `created ${dirArg}/ (${files.join(', ')}) from the shipped model '${o.from}', named '${name}'\n`,
        );
        if (!tsx) process.stdout.write(`loading a TypeScript model needs tsx: npm install --save-dev tsx\n`);
        process.stdout.write(
          `next: handoff models check ${dirArg} && handoff demo --model ${dirArg} --cases 50 --fresh\n`,
        );
        process.stdout.write(`reviewers who sign in to the console go in ${dirArg}/reviewers.json (docs/console.md)\n`);
      }
    });
}
