import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';

export const ROOT = join(import.meta.dirname, '..', '..');
export const CLI = join(ROOT, 'bin', 'handoff.js');
export const CHROMIUM = process.env.HANDOFF_CHROMIUM ?? '/usr/bin/chromium';
/**
 * Where the tests save screenshots: test-results/screenshots (git-ignored) on an ordinary run, so
 * `npm test` leaves the work tree clean; the committed ones in test/e2e/screenshots are refreshed
 * with HANDOFF_UPDATE_SCREENSHOTS=1.
 */
export const SCREENSHOTS =
  process.env.HANDOFF_UPDATE_SCREENSHOTS === '1'
    ? join(ROOT, 'test', 'e2e', 'screenshots')
    : join(ROOT, 'test-results', 'screenshots');
export const haveChromium = existsSync(CHROMIUM);

export function launch(): Promise<Browser> {
  // No silent skip: a machine without the browser fails here, saying how to get it.
  if (!haveChromium)
    throw new Error(
      `chromium not found at ${CHROMIUM}: install it with 'apt-get install chromium' (.ci/run does), or set HANDOFF_CHROMIUM`,
    );
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  });
}

export interface Server {
  url: string;
  child: ChildProcess;
  stderr: () => string;
  stop(): Promise<number | null>;
}

/** Runs `handoff start --json` and waits for the line that says where it listens. */
export function startServer(args: string[]): Promise<Server> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, 'start', '--port', '0', '--json', ...args], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, NO_COLOR: '1' },
    });
    let out = '';
    let err = '';
    const timer = setTimeout(() => reject(new Error(`handoff start did not report its URL in time\n${err}`)), 30_000);
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const line = out.split('\n').find((l) => l.startsWith('{'));
      if (!line) return;
      clearTimeout(timer);
      const { url } = JSON.parse(line) as { url: string };
      resolve({
        url,
        child,
        stderr: () => err,
        stop: () =>
          new Promise((done) => {
            if (child.exitCode !== null) return done(child.exitCode);
            child.once('exit', (code) => done(code));
            child.kill('SIGTERM');
          }),
      });
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`handoff start exited with ${code}\n${err}`));
    });
  });
}

export { runCli } from '../integration/cli.ts';

/** Signs in on the login page and waits for the first page of the queue. */
export async function signIn(page: Page, url: string, id: string): Promise<void> {
  await page.goto(`${url}/login`);
  await page.fill('#login-id', id);
  await page.fill('#login-password', `demo-${id.replace(/^r-/, '')}`);
  await page.click('#login-submit');
  await page.waitForSelector('table.queue-table[data-rendered="1"]');
  await page.waitForSelector('#live.live-on');
}

export async function shot(page: Page, name: string, fullPage = false): Promise<string> {
  await mkdir(SCREENSHOTS, { recursive: true });
  const path = join(SCREENSHOTS, `${name}.png`);
  // Notifications are transient; keep them out of the record.
  await page.evaluate(() =>
    (globalThis as unknown as { document: { querySelectorAll(s: string): { remove(): void }[] } }).document
      .querySelectorAll('.toast')
      .forEach((t) => t.remove()),
  );
  await page.screenshot({ path, fullPage });
  return path;
}

/** Collects browser errors, so a test fails on a CSP violation or a script error. */
export function watchErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && !/status of 40[0-9]/.test(m.text())) errors.push(`console: ${m.text()}`);
  });
  return errors;
}
