// Helpers for the browser tests: start the real gateway binary, launch Debian's
// Chromium through playwright-core, and small page actions shared by the scenarios.

import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const here = path.dirname(fileURLToPath(import.meta.url));
export const repoRoot = path.resolve(here, '../..');
export const screenshotDir = path.join(here, 'screenshots');
export const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

export function gatewayBinary() {
  if (process.env.CHATX_GATEWAY_BIN) return process.env.CHATX_GATEWAY_BIN;
  const target = process.env.CARGO_TARGET_DIR || path.join(repoRoot, 'target');
  return path.join(target, 'debug', 'gateway');
}

/** Install Debian's Chromium when it is missing and we may (root); otherwise explain. */
export function ensureChromium() {
  if (fs.existsSync(CHROMIUM)) return;
  if (process.getuid?.() === 0) {
    const r = spawnSync('sh', ['-c', 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium'], { stdio: 'inherit' });
    if (r.status === 0 && fs.existsSync(CHROMIUM)) return;
  }
  throw new Error(`${CHROMIUM} not found: run \`apt-get install -y chromium\``);
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * A gateway process on a fixed port and database, which can be killed and started
 * again on the same port and data (tokens survive: fixed JWT_SECRET).
 */
export class Gateway {
  constructor({ port, dir, secret = crypto.randomBytes(24).toString('hex'), env = {} }) {
    this.port = port;
    this.dir = dir;
    this.secret = secret;
    this.extraEnv = env;
    this.bin = gatewayBinary();
    this.url = `http://127.0.0.1:${port}`;
    this.proc = null;
    this.log = [];
  }

  static async create(env = {}) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'chatx-browser-'));
    const gw = new Gateway({ port: await freePort(), dir, env });
    await gw.start();
    return gw;
  }

  async start() {
    if (!fs.existsSync(this.bin)) throw new Error(`gateway binary not found at ${this.bin} (build it with \`cargo build -p gateway\` or set CHATX_GATEWAY_BIN)`);
    const isScript = /\.(mjs|js)$/.test(this.bin);
    const env = {
      ...process.env,
      BIND_ADDR: `127.0.0.1:${this.port}`,
      DATABASE_URL: `sqlite://${path.join(this.dir, 'chatx.db')}?mode=rwc`,
      CHATX_BCRYPT_COST: '4',
      JWT_SECRET: this.secret,
      RUST_LOG: process.env.RUST_LOG || 'info',
      ...this.extraEnv,
    };
    delete env.REDIS_URL;
    delete env.NATS_URL;
    const proc = spawn(isScript ? process.execPath : this.bin, isScript ? [this.bin] : [], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc = proc;
    const keep = (chunk) => {
      this.log.push(String(chunk));
      if (this.log.length > 400) this.log.splice(0, this.log.length - 400);
    };
    proc.stdout.on('data', keep);
    proc.stderr.on('data', keep);
    const exited = new Promise((resolve) => proc.once('exit', (code, sig) => resolve({ code, sig })));
    this.exited = exited;
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      const early = await Promise.race([exited, sleep(0).then(() => null)]);
      if (early) throw new Error(`gateway exited early (${JSON.stringify(early)}):\n${this.log.join('').slice(-3000)}`);
      try {
        const res = await fetch(`${this.url}/healthz`);
        if (res.status === 200) return;
      } catch { /* not up yet */ }
      await sleep(150);
    }
    throw new Error(`gateway did not answer /healthz within 60 s:\n${this.log.join('').slice(-3000)}`);
  }

  /** SIGKILL: no drain, no goodbye. */
  async kill() {
    if (!this.proc) return;
    this.proc.kill('SIGKILL');
    await this.exited;
    this.proc = null;
  }

  async stop() {
    if (!this.proc) return;
    this.proc.kill('SIGTERM');
    const done = await Promise.race([this.exited, sleep(10_000).then(() => null)]);
    if (!done) this.proc?.kill('SIGKILL');
    this.proc = null;
  }

  cleanup() {
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  /** REST helper for test set-up (not used to check the client). */
  async api(pathname, { method = 'GET', body, token } = {}) {
    const headers = {};
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (token) headers.authorization = `Bearer ${token}`;
    const res = await fetch(`${this.url}${pathname}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await res.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch { data = text; }
    return { status: res.status, data };
  }
}

export async function launchBrowser() {
  ensureChromium();
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

export async function newPage(browser, gw, { viewport = { width: 1280, height: 800 } } = {}) {
  const context = await browser.newContext({ viewport, baseURL: gw.url, colorScheme: 'light' });
  const page = await context.newPage();
  page.setDefaultTimeout(15_000);
  page.consoleErrors = [];
  page.on('console', (m) => { if (m.type() === 'error') page.consoleErrors.push(m.text()); });
  page.on('pageerror', (e) => page.consoleErrors.push(String(e)));
  return { context, page };
}

export async function screenshot(page, name) {
  fs.mkdirSync(screenshotDir, { recursive: true });
  const file = path.join(screenshotDir, `${name}.png`);
  await page.screenshot({ path: file });
  return file;
}

// ---------------------------------------------------------------- page actions

export const byTestId = (page, id) => page.getByTestId(id);

export async function register(page, username, password) {
  await page.goto('/');
  await page.getByRole('tab', { name: 'Create account' }).click();
  await page.getByTestId('register-username').fill(username);
  await page.getByTestId('register-password').fill(password);
  await page.getByTestId('register-submit').click();
}

export async function signIn(page, username, password) {
  await page.goto('/');
  await page.getByTestId('login-username').fill(username);
  await page.getByTestId('login-password').fill(password);
  await page.getByTestId('login-submit').click();
}

export async function waitConnected(page, timeout = 15_000) {
  await page.locator('[data-testid="conn-status"][data-state="connected"]').waitFor({ timeout });
}

export async function sendMessage(page, text) {
  const box = page.getByTestId('composer-input');
  await box.fill(text);
  await box.press('Enter');
}

/** The <li> of a message with exactly this body. */
export function messageWith(page, text) {
  return page.getByTestId('message').filter({ has: page.getByTestId('message-body').getByText(text, { exact: true }) });
}

const axeSource = path.join(here, 'node_modules', 'axe-core', 'axe.min.js');

/** Serious and critical WCAG A/AA violations that axe-core finds on the page. */
export async function axeViolations(page) {
  if (!(await page.evaluate(() => Boolean(window.axe)))) await page.addScriptTag({ path: axeSource });
  const results = await page.evaluate(() => window.axe.run(document, {
    runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] },
  }));
  return results.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.id} (${v.impact}): ${v.help} -> ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(', ')}`);
}
