// lib.mjs: what every browser scenario shares: Debian's chromium driven by
// playwright-core (no bundled browser: executablePath /usr/bin/chromium,
// headless, a fresh profile each run), the console sign-in, admin API calls
// with the bearer key for read-backs, and small assertions.
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const env = JSON.parse(process.env.RG_BROWSER_ENV || '{}');

export async function launch() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rg-chromium-'));
  const ctx = await chromium.launchPersistentContext(dir, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    viewport: { width: 1200, height: 860 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
           '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  ctx.setDefaultTimeout(15000);
  const close = async () => { await ctx.close(); fs.rmSync(dir, { recursive: true, force: true }); };
  return { ctx, close };
}

export function assert(cond, msg) { if (!cond) throw new Error(`assertion failed: ${msg}`); }
export function eq(a, b, msg) {
  const ja = JSON.stringify(a), jb = JSON.stringify(b);
  if (ja !== jb) throw new Error(`${msg}: got ${ja}, want ${jb}`);
}

// The admin API with the bearer key (the test's read-back, not the console's way).
export async function admin(method, p, body) {
  const r = await fetch(env.admin + p, { method, headers: { Authorization: `Bearer ${env.key}`,
    ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}) },
    body: body !== undefined ? JSON.stringify(body) : undefined });
  const t = await r.text();
  return { status: r.status, body: t ? JSON.parse(t) : null };
}

export async function signIn(page, key = env.key) {
  await page.goto(env.admin + '/');
  await page.waitForSelector('#signin, #nav:not([hidden])');
  if (await page.isVisible('#nav')) return;   // already signed in
  await page.fill('#admin-key', key);
  await page.press('#admin-key', 'Enter');
  await page.waitForSelector('#nav:not([hidden])');
}

export async function shot(page, name) {
  if (!env.screenshots) return;
  fs.mkdirSync(env.screenshots, { recursive: true });
  await page.screenshot({ path: path.join(env.screenshots, `${name}.png`), fullPage: true });
}

export async function text(page, sel) { return (await page.textContent(sel)) || ''; }

// Runs the scenario named by argv[2] in a fresh chromium: prints its JSON
// answer, or the failure and the page it was on, and exits 1.
export async function main(scenarios) {
  const name = process.argv[2];
  const fn = scenarios[name];
  if (!fn) { console.error(`unknown scenario ${name}`); process.exit(2); }
  const { ctx, close } = await launch();
  let rc = 0;
  const page = ctx.pages()[0] || await ctx.newPage();
  page.on('pageerror', (e) => console.error(`pageerror: ${e.message}`));
  try {
    const out = await fn(page, ctx);
    console.log(JSON.stringify(out || {}));
  } catch (e) {
    console.error(`FAIL ${name}: ${e.stack || e}`);
    console.error(`page ${page.url()}: ${(await page.textContent('body').catch(() => '')).slice(0, 1500)}`);
    rc = 1;
  } finally {
    await close();
  }
  process.exit(rc);
}
