// Browser tests of the ChatX web client against the real gateway binary.
// Run: node --test tests/browser/   (see README.md next to this file)

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import WebSocket from 'ws';
import {
  Gateway, launchBrowser, newPage, screenshot, register, signIn, waitConnected,
  sendMessage, messageWith, repoRoot, axeViolations,
} from './helpers.mjs';

const PASSWORD = 'correct-horse-battery';
const ROOM = 'secret-plans';
const ROOM_PASSWORD = 'open-sesame';

async function eventually(fn, { timeout = 15_000, interval = 100, what = 'condition' } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v !== false) return v;
      last = new Error(`${what} not met`);
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what}: ${last?.message}`);
    await new Promise((r) => setTimeout(r, interval));
  }
}

async function textOf(locator) {
  return ((await locator.textContent()) || '').trim();
}

async function expectText(locator, pattern, opts = {}) {
  await eventually(async () => {
    const t = await textOf(locator);
    if (!(pattern instanceof RegExp ? pattern.test(t) : t.includes(pattern))) throw new Error(`text was ${JSON.stringify(t)}`);
  }, { what: `text ${pattern}`, ...opts });
}

async function connState(page) {
  return page.getByTestId('conn-status').getAttribute('data-state');
}

async function openSection(page, summaryText) {
  const details = page.locator('details', { has: page.locator('summary', { hasText: summaryText }) });
  if (!(await details.evaluate((d) => d.open))) await details.locator('summary').click();
}

async function createRoom(page, name, { password } = {}) {
  await openSection(page, 'Create a room');
  await page.getByTestId('create-room-name').fill(name);
  if (password) {
    await page.getByTestId('create-room-private').check();
    await page.getByTestId('create-room-password').fill(password);
  }
  await page.getByTestId('create-room-submit').click();
  await expectText(page.getByTestId('room-title'), `#${name}`);
}

async function joinByName(page, name) {
  await openSection(page, 'Join by name');
  await page.getByTestId('join-room-name').fill(name);
  await page.getByTestId('join-room-submit').click();
}

/** Log a user in over REST and open a raw WebSocket (used to seed data quickly). */
async function rawClient(gw, username) {
  const { status, data } = await gw.api('/api/auth/login', { method: 'POST', body: { username, password: PASSWORD } });
  assert.equal(status, 200, `login ${username}: ${JSON.stringify(data)}`);
  const ws = new WebSocket(`ws://127.0.0.1:${gw.port}/ws?token=${encodeURIComponent(data.access_token)}`);
  const frames = [];
  const waiters = [];
  ws.on('message', (d) => {
    const f = JSON.parse(String(d));
    frames.push(f);
    for (const w of [...waiters]) if (w.match(f)) { waiters.splice(waiters.indexOf(w), 1); w.resolve(f); }
  });
  const next = (match) => {
    const found = frames.find(match);
    if (found) { frames.splice(frames.indexOf(found), 1); return Promise.resolve(found); }
    return new Promise((resolve, reject) => {
      waiters.push({ match, resolve });
      setTimeout(() => reject(new Error('raw client: no matching frame')), 10_000);
    });
  };
  await next((f) => f.type === 'hello');
  let n = 0;
  const request = async (frame) => {
    n += 1;
    const ref = `t${n}`;
    ws.send(JSON.stringify({ ...frame, ref }));
    const reply = await next((f) => f.ref === ref);
    if (reply.type === 'error') throw Object.assign(new Error(`${frame.type}: ${reply.code} ${reply.message}`), { retryAfterMs: reply.retry_after_ms });
    return reply;
  };
  return { ws, request, token: data.access_token, close: () => ws.close() };
}

/**
 * After a server restart: wait until each page is connected again, or was sent back to
 * sign-in (the server refused the session). Signed-out pages are signed in again so the
 * later steps can run; the names of those users are returned.
 */
async function reconnectedOrSignedOut(users, timeout = 45_000) {
  const signedOut = [];
  for (const [name, { page }] of users) {
    const state = await eventually(async () => {
      if (await page.getByTestId('login-username').isVisible()) return 'signed-out';
      return (await connState(page)) === 'connected' ? 'connected' : false;
    }, { timeout, what: `${name} connected again (or signed out)` });
    if (state === 'signed-out') {
      signedOut.push(`${name} (notice: ${JSON.stringify(await textOf(page.getByTestId('auth-notice')))})`);
      await page.getByTestId('login-username').fill(name);
      await page.getByTestId('login-password').fill(PASSWORD);
      await page.getByTestId('login-submit').click();
      await waitConnected(page);
    }
  }
  return signedOut;
}

/** Later steps need these users signed in, whatever an earlier step left behind. */
async function ensureSignedIn(name, { page }) {
  if (await page.getByTestId('login-username').isVisible()) {
    await page.getByTestId('login-username').fill(name);
    await page.getByTestId('login-password').fill(PASSWORD);
    await page.getByTestId('login-submit').click();
  }
  await waitConnected(page, 30_000);
  if ((await textOf(page.getByTestId('room-title'))) !== `#${ROOM}` || !(await page.getByTestId('room-title').isVisible())) {
    await page.getByTestId('room-item').filter({ hasText: ROOM }).click();
    await expectText(page.getByTestId('room-title'), `#${ROOM}`);
  }
}

describe('ChatX web client', { concurrency: false }, () => {
  let gw;
  let browser;
  let alice; // {context, page}
  let bob;
  const opened = [];

  before(async () => {
    gw = await Gateway.create();
    browser = await launchBrowser();
  });

  after(async () => {
    for (const c of opened) await c.context.close().catch(() => {});
    await browser?.close();
    await gw?.stop();
    if (process.env.CHATX_KEEP_TMP) console.log(`gateway data kept in ${gw?.dir}`); else gw?.cleanup();
  });

  const open = async (opts) => {
    const p = await newPage(browser, gw, opts);
    opened.push(p);
    return p;
  };

  test('registration and sign-in show errors next to the field that caused them', async () => {
    alice = await open();
    await register(alice.page, 'alice', PASSWORD);
    await waitConnected(alice.page);
    await expectText(alice.page.getByTestId('current-user'), 'alice');
    // The room list arrives after the socket connects: wait for it, then expect exactly one lobby.
    const lobby = alice.page.getByTestId('room-item').filter({ hasText: 'lobby' });
    await eventually(async () => (await lobby.count()) > 0, { what: 'the lobby in the room list' });
    assert.equal(await lobby.count(), 1, 'lobby is listed once');

    bob = await open();
    const { page } = bob;
    await page.goto('/');
    await page.getByTestId('login-username').waitFor();
    assert.deepEqual(await axeViolations(page), [], 'sign-in form accessibility');
    // Taken username: 409 -> under the username field.
    await register(page, 'alice', PASSWORD);
    await expectText(page.getByTestId('register-username-error'), /\S/);
    assert.equal(await page.getByTestId('register-username').getAttribute('aria-invalid'), 'true');
    await screenshot(page, '01-register-username-taken');

    // Invalid input: 400 -> under one of the fields.
    await page.getByTestId('register-username').fill('no spaces allowed!');
    await page.getByTestId('register-password').fill('x');
    await page.getByTestId('register-submit').click();
    await eventually(async () => {
      const u = await textOf(page.getByTestId('register-username-error'));
      const p = await textOf(page.getByTestId('register-password-error'));
      return Boolean(u || p) && !(await page.getByTestId('conn-status').isVisible());
    }, { what: 'a field error for invalid registration' });

    // Bad login: 401 -> under the password field.
    await signIn(page, 'nobody-here', PASSWORD);
    await expectText(page.getByTestId('login-password-error'), /wrong username or password/i);
    await screenshot(page, '02-login-wrong-password');

    await register(page, 'bob', PASSWORD);
    await waitConnected(page);
    await expectText(page.getByTestId('current-user'), 'bob');
  });

  test('alice creates a private room and bob joins through the password prompt; a wrong password shows the error', async () => {
    await createRoom(alice.page, ROOM, { password: ROOM_PASSWORD });
    await expectText(alice.page.getByTestId('room-kind'), /private/i);
    await alice.page.getByTestId('member').filter({ hasText: 'alice' }).waitFor();
    assert.ok(await alice.page.getByTestId('delete-room').isVisible(), 'the owner can delete the room');

    const { page } = bob;
    await joinByName(page, ROOM);
    const dialog = page.getByTestId('room-password-dialog');
    await dialog.waitFor({ state: 'visible' });
    await page.getByTestId('room-password-input').fill('not-the-password');
    await page.getByTestId('room-password-submit').click();
    await expectText(page.getByTestId('room-password-error'), /wrong password/i);
    assert.ok(await dialog.isVisible(), 'the dialog stays open after a wrong password');
    await screenshot(page, '03-wrong-room-password');

    await page.getByTestId('room-password-input').fill(ROOM_PASSWORD);
    await page.getByTestId('room-password-submit').click();
    await dialog.waitFor({ state: 'hidden' });
    await expectText(page.getByTestId('room-title'), `#${ROOM}`);
    assert.ok(!(await page.getByTestId('delete-room').isVisible()), 'only the owner sees Delete');
  });

  test('presence, typing, messages and read receipts appear on the other side', async () => {
    const a = alice.page;
    const b = bob.page;
    // bob joined after alice: a live presence event.
    await a.getByTestId('member').filter({ hasText: 'bob' }).waitFor();
    await b.getByTestId('member').filter({ hasText: 'alice' }).waitFor();

    // Typing (without sending) shows on alice's side.
    await b.getByTestId('composer-input').pressSequentially('Hi Al', { delay: 30 });
    await expectText(a.getByTestId('typing-indicator'), 'bob is typing');
    await screenshot(a, '04-typing-indicator');
    await b.getByTestId('composer-input').pressSequentially('ice!', { delay: 30 });
    await b.getByTestId('composer-input').press('Enter');

    const mine = messageWith(b, 'Hi Alice!');
    await mine.waitFor();
    await eventually(async () => (await mine.getAttribute('data-status')) === 'acked', { what: "bob's message acked" });
    const theirs = messageWith(a, 'Hi Alice!');
    await theirs.waitFor();
    await expectText(theirs.getByTestId('message-author'), 'bob');
    assert.match(await theirs.locator('time').getAttribute('datetime'), /^\d{4}-\d\d-\d\dT/);
    // A message from bob clears his typing indicator on alice's side.
    await expectText(a.getByTestId('typing-indicator'), /^$/, { timeout: 6_000 });

    await sendMessage(a, 'Hi Bob! The plans are ready.');
    await messageWith(b, 'Hi Bob! The plans are ready.').waitFor();
    await eventually(async () => (await messageWith(a, 'Hi Bob! The plans are ready.').getAttribute('data-status')) === 'acked', { what: "alice's message acked" });

    // bob has it on screen -> `read` -> alice sees "Seen by bob".
    await expectText(messageWith(a, 'Hi Bob! The plans are ready.').getByTestId('receipt'), /seen by bob/i);
    await sendMessage(b, 'Great, see you at noon.');
    await messageWith(a, 'Great, see you at noon.').waitFor();
    await expectText(messageWith(b, 'Great, see you at noon.').getByTestId('receipt'), /seen by alice/i);

    assert.deepEqual(await axeViolations(a), [], 'chat view accessibility');
    const shot = await screenshot(a, '05-chat-view');
    // The README's screenshot is refreshed on request only, so a test run leaves the
    // work tree clean: CHATX_UPDATE_DOCS=1 scripts/browser-test
    if (process.env.CHATX_UPDATE_DOCS === '1') {
      fs.copyFileSync(shot, path.join(repoRoot, 'docs', 'web-client.png'));
    }
  });

  test('a page reload keeps the session and the open room', async () => {
    const b = bob.page;
    await b.reload();
    await waitConnected(b);
    await expectText(b.getByTestId('current-user'), 'bob');
    await expectText(b.getByTestId('room-title'), `#${ROOM}`);
    await messageWith(b, 'Hi Bob! The plans are ready.').waitFor();
    assert.equal(await messageWith(b, 'Hi Alice!').count(), 1);
    assert.equal(await b.getByTestId('room-password-dialog').isVisible(), false, 'no password prompt after reload');
  });

  test('killing and restarting the server reconnects without losing a message', async () => {
    const a = alice.page;
    const b = bob.page;
    await waitConnected(a);
    await waitConnected(b);
    await gw.kill();
    const text = 'Sent while the server was down';
    const pending = messageWith(a, text);
    try {
      for (const p of [a, b]) {
        await eventually(async () => ['reconnecting', 'offline'].includes(await connState(p)), { what: 'reconnecting state' });
      }
      await sendMessage(a, text);
      await pending.waitFor();
      assert.equal(await pending.getAttribute('data-status'), 'pending');
      await expectText(pending.getByTestId('message-status'), /sending/i);
      await screenshot(a, '06-server-down-pending');
    } catch (err) {
      await gw.start();
      throw err;
    }

    await gw.start();
    const signedOut = await reconnectedOrSignedOut([['alice', alice], ['bob', bob]]);
    await ensureSignedIn('alice', alice);
    await ensureSignedIn('bob', bob);
    await eventually(async () => (await pending.getAttribute('data-status')) === 'acked', { what: 'pending message acked after restart', timeout: 20_000 });
    await messageWith(b, text).waitFor({ timeout: 20_000 });
    await screenshot(b, '07-after-restart');

    // Exactly once, everywhere, also a moment later.
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(await messageWith(a, text).count(), 1, 'alice sees it once');
    assert.equal(await messageWith(b, text).count(), 1, 'bob sees it once');

    // Live traffic and presence work again.
    await sendMessage(b, 'Back online');
    await messageWith(a, 'Back online').waitFor();
    await a.getByTestId('member').filter({ hasText: 'bob' }).waitFor();

    // Everything acked before the crash is still in the room's history.
    await a.reload();
    await waitConnected(a);
    for (const t of ['Hi Alice!', 'Hi Bob! The plans are ready.', 'Great, see you at noon.', text, 'Back online']) {
      await messageWith(a, t).waitFor();
      assert.equal(await messageWith(a, t).count(), 1, `"${t}" once after reload`);
    }
    const seqs = await a.getByTestId('message').evaluateAll((els) => els.map((e) => Number(e.dataset.seq)));
    assert.deepEqual(seqs, [...seqs].sort((x, y) => x - y), 'messages are in seq order');
    assert.deepEqual(signedOut, [], 'the session survives a server restart (same JWT_SECRET and database): these users were sent back to sign-in');
  });

  test('an expired access token is refreshed and the refresh token rotates', async () => {
    await ensureSignedIn('alice', alice);
    await ensureSignedIn('bob', bob);
    const b = bob.page;
    const before = await b.evaluate(() => JSON.parse(localStorage.getItem('chatx.auth')));
    // Make the stored access token unusable, as after ~15 min: REST answers 401 and the
    // socket upgrade fails until the client refreshes.
    await b.evaluate(() => {
      const a = JSON.parse(localStorage.getItem('chatx.auth'));
      a.access_token = 'expired.invalid.token';
      localStorage.setItem('chatx.auth', JSON.stringify(a));
    });
    await b.reload();
    await waitConnected(b, 30_000);
    await expectText(b.getByTestId('room-title'), `#${ROOM}`);
    const after = await b.evaluate(() => JSON.parse(localStorage.getItem('chatx.auth')));
    assert.notEqual(after.refresh_token, before.refresh_token, 'a new refresh token was stored');
    assert.notEqual(after.access_token, 'expired.invalid.token');
    assert.equal(after.session_id, before.session_id, 'same session');
    await sendMessage(b, 'Still here after a token refresh');
    await messageWith(alice.page, 'Still here after a token refresh').waitFor();
  });

  test('a graceful restart (SIGTERM) is followed by a reconnect', async () => {
    await ensureSignedIn('alice', alice);
    await ensureSignedIn('bob', bob);
    const a = alice.page;
    await gw.stop();
    try {
      await eventually(async () => ['reconnecting', 'offline'].includes(await connState(a)), { what: 'reconnecting state' });
    } finally {
      await gw.start();
    }
    const signedOut = await reconnectedOrSignedOut([['alice', alice], ['bob', bob]]);
    await ensureSignedIn('alice', alice);
    await ensureSignedIn('bob', bob);
    await sendMessage(bob.page, 'After a graceful restart');
    await messageWith(a, 'After a graceful restart').waitFor();
    assert.equal(await messageWith(a, 'After a graceful restart').count(), 1);
    assert.deepEqual(signedOut, [], 'the session survives a graceful restart: these users were sent back to sign-in');
  });

  test('a failed send is shown with a retry button that delivers it once', async () => {
    await ensureSignedIn('bob', bob);
    // A second tab of alice's whose socket refuses the first attempt of one message.
    const second = await open();
    alice.second = second;
    const p = second.page;
    let failedOnce = false;
    await p.routeWebSocket(/\/ws/, (ws) => {
      const server = ws.connectToServer();
      ws.onMessage((msg) => {
        const f = JSON.parse(String(msg));
        if (f.type === 'send' && f.body === 'Please fail once' && !failedOnce) {
          failedOnce = true;
          ws.send(JSON.stringify({ type: 'error', ref: f.ref, code: 'too_large', message: 'Message too large' }));
          return;
        }
        server.send(msg);
      });
      server.onMessage((msg) => ws.send(msg));
    });
    await signIn(p, 'alice', PASSWORD);
    await waitConnected(p);
    await p.getByTestId('room-item').filter({ hasText: ROOM }).click();
    await expectText(p.getByTestId('room-title'), `#${ROOM}`);
    await sendMessage(p, 'Please fail once');
    const failed = messageWith(p, 'Please fail once');
    await eventually(async () => (await failed.getAttribute('data-status')) === 'failed', { what: 'failed status' });
    await screenshot(p, '08-failed-send');
    await failed.getByTestId('retry-send').click();
    await eventually(async () => (await failed.getAttribute('data-status')) === 'acked', { what: 'acked after retry' });
    await messageWith(bob.page, 'Please fail once').waitFor();
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(await messageWith(bob.page, 'Please fail once').count(), 1);
  });

  test('sessions are listed and revoking one sends that browser back to sign-in', async () => {
    await ensureSignedIn('alice', alice);
    const p = alice.second.page;
    const firstSession = await alice.page.evaluate(() => JSON.parse(localStorage.getItem('chatx.auth')).session_id);
    await p.getByTestId('open-sessions').click();
    const dialog = p.getByTestId('sessions-dialog');
    await dialog.waitFor();
    const row = p.locator(`[data-testid="session-item"][data-session-id="${firstSession}"]`);
    await row.waitFor();
    assert.equal(await p.locator('[data-testid="session-item"][data-current="true"]').count(), 1, 'one current session');
    await screenshot(p, '09-sessions');
    await row.getByTestId('revoke-session').click();
    await row.waitFor({ state: 'detached' });
    await p.getByTestId('sessions-close').click();

    // The revoked tab is closed with 4001 and goes back to sign-in.
    await alice.page.getByTestId('login-username').waitFor({ state: 'visible', timeout: 20_000 });
    await expectText(alice.page.getByTestId('auth-notice'), /signed out|ended|revoked/i);
    await screenshot(alice.page, '10-revoked-back-to-sign-in');
    // The other tab is still fine.
    await waitConnected(p);
  });

  test('older history loads on scroll-up, search finds messages, and the owner can delete a room', async () => {
    const raw = await rawClient(gw, 'bob');
    const room = 'history-room';
    const created = await gw.api('/api/rooms', { method: 'POST', token: raw.token, body: { name: room, kind: 'public' } });
    assert.equal(created.status, 201, JSON.stringify(created.data));
    await raw.request({ type: 'join', room });
    for (let i = 1; i <= 70; i += 1) {
      const frame = { type: 'send', room, body: `seed message ${i}`, client_msg_id: crypto.randomUUID() };
      // The server rate-limits sends per user: wait as told and retry (same client_msg_id).
      for (let attempt = 0; ; attempt += 1) {
        try {
          await raw.request(frame);
          break;
        } catch (err) {
          const wait = /retry in (\d+) ms/.exec(err.message)?.[1] ?? err.retryAfterMs;
          if (!/rate_limited/.test(err.message) || attempt > 50) throw err;
          await new Promise((r) => setTimeout(r, Number(wait || 200) + 20));
        }
      }
    }
    raw.close();

    const b = bob.page;
    await b.getByTestId('refresh-rooms').click();
    await b.getByTestId('room-item').filter({ hasText: room }).click();
    await expectText(b.getByTestId('room-title'), `#${room}`);
    await messageWith(b, 'seed message 70').waitFor();
    const initial = await b.getByTestId('message').count();
    assert.ok(initial < 70, `only the latest page at first (got ${initial})`);
    await b.getByTestId('load-older').waitFor();
    await eventually(async () => {
      await b.locator('#message-scroller').evaluate((s) => { s.scrollTop = 0; s.dispatchEvent(new Event('scroll')); });
      return (await messageWith(b, 'seed message 1').count()) === 1;
    }, { what: 'oldest message after scrolling up', timeout: 20_000 });
    assert.equal(await b.getByTestId('message').count(), 70);
    const seqs = await b.getByTestId('message').evaluateAll((els) => els.map((e) => Number(e.dataset.seq)));
    assert.deepEqual(seqs, [...seqs].sort((x, y) => x - y));

    await b.getByTestId('search-input').fill('seed message 42');
    await b.getByTestId('search-input').press('Enter');
    await b.getByTestId('search-results').waitFor();
    await b.getByTestId('search-result').filter({ hasText: 'seed message 42' }).first().waitFor();
    await screenshot(b, '11-search');
    await b.getByTestId('close-search').click();

    await b.getByTestId('delete-room').click();
    await b.getByTestId('confirm-ok').click();
    await b.getByTestId('room-item').filter({ hasText: room }).waitFor({ state: 'detached' });
    const gone = await gw.api(`/api/rooms/${room}`, { token: raw.token });
    assert.equal(gone.status, 404);
  });

  test('at 375 px wide it is usable with the keyboard alone, then bob leaves and signs out', async () => {
    const phone = await open({ viewport: { width: 375, height: 740 } });
    const p = phone.page;
    await p.goto('/');
    await p.getByTestId('login-username').focus();
    await p.keyboard.type('bob');
    await p.keyboard.press('Tab');
    await p.keyboard.type(PASSWORD);
    await p.keyboard.press('Enter');
    await waitConnected(p);
    const overflow = await p.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `no horizontal scroll (overflow ${overflow}px)`);

    await p.getByTestId('toggle-sidebar').focus();
    await p.keyboard.press('Enter');
    const item = p.getByTestId('room-item').filter({ hasText: ROOM });
    await item.waitFor({ state: 'visible' });
    await item.focus();
    await p.keyboard.press('Enter');
    await expectText(p.getByTestId('room-title'), `#${ROOM}`);
    await p.getByTestId('composer-input').focus();
    await p.keyboard.type('Typed on a phone');
    await p.keyboard.press('Enter');
    await eventually(async () => (await messageWith(p, 'Typed on a phone').getAttribute('data-status')) === 'acked', { what: 'phone message acked' });
    await messageWith(bob.page, 'Typed on a phone').waitFor();
    assert.ok(await p.getByTestId('composer-input').evaluate((e) => e === document.activeElement), 'focus stays in the composer');
    await screenshot(p, '12-mobile-375');
    assert.deepEqual(await axeViolations(p), [], 'narrow chat view accessibility');

    // Leave the room from the phone; the desktop tab of bob keeps its own membership view.
    await p.getByTestId('leave-room').click();
    await p.getByTestId('empty-state').waitFor({ state: 'visible' });
    await p.getByTestId('toggle-sidebar').click();
    await p.getByTestId('sign-out-narrow').click();
    await p.getByTestId('login-username').waitFor({ state: 'visible' });
    assert.equal(await p.evaluate(() => localStorage.getItem('chatx.auth')), null, 'tokens are gone');
  });

  test('the pages logged no script errors', () => {
    const errors = opened.flatMap((o) => o.page.consoleErrors.filter((e) => !/WebSocket connection|Failed to load resource|ERR_CONNECTION_REFUSED/.test(e)));
    assert.deepEqual(errors, []);
  });
});
