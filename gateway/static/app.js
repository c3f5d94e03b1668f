// ChatX web client. Plain ES module, no build step; talks only to the public REST
// (/api/...) and WebSocket (/ws) API. The socket logic (reconnect, resume, resend)
// lives in resilient-client.js; this file holds tokens, REST calls and the UI.

import { ResilientClient } from './resilient-client.js';

const $ = (sel, root = document) => root.querySelector(sel);
const AUTH_KEY = 'chatx.auth';
const uiKey = (userId) => `chatx.ui.${userId}`;
const HISTORY_PAGE = 50;
const TYPING_SEND_EVERY_MS = 2000;
const TYPING_SHOW_MS = 4000;

// ============================================================================
// Tokens. Kept in localStorage so a reload (or a new tab) keeps the session. The
// refresh token rotates and re-using an old one revokes the session, so tabs must not
// refresh concurrently: a Web Lock serialises them, and a tab that finds a newer token
// in storage than the one it holds just adopts it.
// ============================================================================

let auth = loadAuth();
let refreshInFlight = null;
let refreshTimer = null;

function loadAuth() {
  try {
    const v = JSON.parse(localStorage.getItem(AUTH_KEY) || 'null');
    return v && v.access_token && v.refresh_token ? v : null;
  } catch {
    return null;
  }
}

function saveAuth(data) {
  const expiresIn = Number(data.expires_in) > 0 ? Number(data.expires_in) : 900;
  auth = {
    access_token: data.access_token,
    refresh_token: data.refresh_token,
    session_id: data.session_id ?? auth?.session_id,
    user: data.user ?? auth?.user,
    expires_at: Date.now() + expiresIn * 1000,
  };
  localStorage.setItem(AUTH_KEY, JSON.stringify(auth));
  scheduleRefresh();
}

function clearAuth() {
  auth = null;
  localStorage.removeItem(AUTH_KEY);
  clearTimeout(refreshTimer);
}

function scheduleRefresh() {
  clearTimeout(refreshTimer);
  if (!auth) return;
  // Refresh a minute before expiry (or at 80 % of a short lifetime).
  const left = auth.expires_at - Date.now();
  const wait = Math.max(5_000, Math.min(left - 60_000, left * 0.8));
  refreshTimer = setTimeout(() => refreshTokens().catch(() => {}), wait);
}

class ApiError extends Error {
  constructor(status, code, message, extra = {}) {
    super(message || code || `HTTP ${status}`);
    this.status = status;
    this.code = code;
    Object.assign(this, extra);
  }
}

/** Refresh the access token (single flight per tab, serialised across tabs). */
function refreshTokens() {
  if (refreshInFlight) return refreshInFlight;
  const held = auth?.refresh_token;
  const run = async () => {
    const stored = loadAuth();
    if (!stored) throw new ApiError(401, 'unauthorized', 'Signed out', { fatal: true });
    if (held && stored.refresh_token !== held) {
      auth = stored; // another tab refreshed already
      scheduleRefresh();
      return auth;
    }
    let res;
    try {
      res = await fetch('/api/auth/refresh', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ refresh_token: stored.refresh_token }),
      });
    } catch {
      throw new ApiError(0, 'network', 'Cannot reach the server');
    }
    if (res.status === 401 || res.status === 403) {
      throw new ApiError(res.status, 'unauthorized', 'Your session has ended. Please sign in again.', { fatal: true });
    }
    if (!res.ok) throw await errorFrom(res);
    saveAuth(await res.json());
    return auth;
  };
  const locked = navigator.locks?.request ? navigator.locks.request('chatx-refresh', run) : run();
  refreshInFlight = locked.finally(() => { refreshInFlight = null; });
  refreshInFlight.catch((err) => { if (err.fatal) endSession(err.message); });
  return refreshInFlight;
}

async function freshAccessToken(minValidityMs = 30_000) {
  if (!auth) throw new ApiError(401, 'unauthorized', 'Signed out', { fatal: true });
  if (auth.expires_at - Date.now() < minValidityMs) await refreshTokens();
  return auth.access_token;
}

async function errorFrom(res) {
  let body = {};
  try { body = await res.json(); } catch { /* not JSON */ }
  const retryAfter = Number(res.headers.get('retry-after'));
  return new ApiError(res.status, body.code || `http_${res.status}`, body.message || res.statusText, {
    retryAfterSec: Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter : null,
  });
}

/** JSON REST call. Authenticated calls refresh the token once on a 401. */
async function api(path, { method = 'GET', body, authed = true, retried = false } = {}) {
  const headers = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (authed) headers.authorization = `Bearer ${await freshAccessToken()}`;
  let res;
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    throw new ApiError(0, 'network', 'Cannot reach the server. Check your connection.');
  }
  if (res.status === 401 && authed && !retried) {
    await refreshTokens();
    return api(path, { method, body, authed, retried: true });
  }
  if (!res.ok) throw await errorFrom(res);
  if (res.status === 204) return null;
  const text = await res.text();
  return text ? JSON.parse(text) : null;
}

const enc = encodeURIComponent;

// ============================================================================
// UI state
// ============================================================================

const ui = {
  me: null,
  client: null,
  roomList: [],               // from GET /api/rooms
  rooms: new Map(),           // open rooms: name -> RoomState
  active: null,
  lastTypingSent: 0,
  passwordFor: null,          // room name the password dialog is for
};

function newRoomState(name) {
  return {
    name,
    info: null,               // {id, name, kind, owner_id}
    messages: new Map(),      // seq -> message
    pending: new Map(),       // client_msg_id -> outbox entry (own, not acked yet)
    hasMore: false,
    historyLoaded: false,
    loadingOlder: false,
    presence: new Map(),      // user id -> {id, username}
    typing: new Map(),        // user id -> {username, timer}
    receipts: new Map(),      // user id -> {user, seq}
    unread: 0,
    elements: new Map(),      // message key -> <li>
    atBottom: true,
  };
}

/** The UI state of an open room, created on first use (with sends still queued for it). */
function ensureRoomState(name) {
  let r = ui.rooms.get(name);
  if (!r) {
    r = newRoomState(name);
    ui.rooms.set(name, r);
    for (const e of ui.client?.outbox.values() || []) if (e.room === name) r.pending.set(e.client_msg_id, { ...e });
  }
  return r;
}

function persistUi() {
  if (!ui.me) return;
  const outbox = ui.client ? [...ui.client.outbox.values()].map(({ client_msg_id, room, body, status, createdAt }) => ({ client_msg_id, room, body, status, createdAt })) : [];
  localStorage.setItem(uiKey(ui.me.id), JSON.stringify({ open: [...ui.rooms.keys()], active: ui.active, outbox }));
}

function loadUi(userId) {
  try { return JSON.parse(localStorage.getItem(uiKey(userId)) || 'null') || {}; } catch { return {}; }
}

// ============================================================================
// Small helpers
// ============================================================================

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v == null || v === false) continue;
    if (k === 'class') node.className = v;
    else if (k === 'text') node.textContent = v;
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children) if (c != null) node.append(c);
  return node;
}

function lockIcon() {
  const span = el('span', { class: 'room-icon private', 'aria-hidden': 'true' });
  // A static string: no user data goes through innerHTML.
  span.innerHTML = '<svg viewBox="0 0 24 24"><rect x="5" y="11" width="14" height="10" rx="2"/><path d="M8 11V7a4 4 0 0 1 8 0v4"/></svg>';
  return span;
}

function hue(name) {
  let h = 0;
  for (const ch of String(name)) h = (h * 31 + ch.codePointAt(0)) % 360;
  return h;
}

function avatar(username, size = '') {
  const a = el('span', { class: `avatar ${size}`, 'aria-hidden': 'true', text: (username || '?').slice(0, 1).toUpperCase() });
  a.style.setProperty('--h', hue(username));
  return a;
}

const timeFmt = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const dateTimeFmt = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });
const fullFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'full', timeStyle: 'medium' });

function timeEl(ts) {
  const d = ts ? new Date(ts) : new Date();
  if (Number.isNaN(d.getTime())) return el('time', { text: '' });
  const today = new Date().toDateString() === d.toDateString();
  return el('time', { datetime: d.toISOString(), title: fullFmt.format(d), text: today ? timeFmt.format(d) : dateTimeFmt.format(d) });
}

function announce(text) {
  const region = $('#announcer');
  const p = el('p', { text });
  region.append(p);
  while (region.childElementCount > 5) region.firstElementChild.remove();
}

function toast(text, kind = 'info') {
  const t = el('div', { class: `toast toast-${kind}`, 'data-testid': 'toast', text });
  $('#toasts').append(t);
  setTimeout(() => t.remove(), 6000);
}

function setFieldError(input, msg) {
  const errId = (input.getAttribute('aria-describedby') || '').split(/\s+/).find((id) => id.endsWith('-error'));
  const err = errId && document.getElementById(errId);
  if (err) err.textContent = msg || '';
  if (msg) input.setAttribute('aria-invalid', 'true');
  else input.removeAttribute('aria-invalid');
}

function describeUserAgent(ua) {
  if (!ua) return 'Unknown device';
  const browser = /Edg\//.test(ua) ? 'Edge' : /Chrom(e|ium)\//.test(ua) ? (/HeadlessChrome/.test(ua) ? 'Headless Chrome' : 'Chrome')
    : /Firefox\//.test(ua) ? 'Firefox' : /Safari\//.test(ua) ? 'Safari' : /curl|reqwest|python|node/i.test(ua) ? 'API client' : 'Browser';
  const os = /Android/.test(ua) ? 'Android' : /iPhone|iPad/.test(ua) ? 'iOS' : /Windows/.test(ua) ? 'Windows'
    : /Mac OS/.test(ua) ? 'macOS' : /Linux/.test(ua) ? 'Linux' : '';
  return os ? `${browser} on ${os}` : browser;
}

// ============================================================================
// Views: sign-in / app
// ============================================================================

function showAuth(notice) {
  $('#app-view').hidden = true;
  $('#auth-view').hidden = false;
  const n = $('#auth-notice');
  n.textContent = notice || '';
  n.hidden = !notice;
  document.title = 'Sign in · ChatX';
  selectAuthTab('login');
  setTimeout(() => $('#login-username').focus(), 0);
}

function selectAuthTab(which) {
  const login = which === 'login';
  $('#tab-login').setAttribute('aria-selected', String(login));
  $('#tab-register').setAttribute('aria-selected', String(!login));
  $('#tab-login').tabIndex = login ? 0 : -1;
  $('#tab-register').tabIndex = login ? -1 : 0;
  $('#login-panel').hidden = !login;
  $('#register-panel').hidden = login;
}

function initAuthForms() {
  $('#tab-login').addEventListener('click', () => selectAuthTab('login'));
  $('#tab-register').addEventListener('click', () => selectAuthTab('register'));
  $('.tabs').addEventListener('keydown', (e) => {
    if (e.key !== 'ArrowLeft' && e.key !== 'ArrowRight') return;
    const toRegister = $('#tab-login').getAttribute('aria-selected') === 'true';
    selectAuthTab(toRegister ? 'register' : 'login');
    (toRegister ? $('#tab-register') : $('#tab-login')).focus();
  });

  const submitting = new WeakSet();
  const handle = (form, prefix, action) => form.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (submitting.has(form)) return;
    const u = $(`#${prefix}-username`);
    const p = $(`#${prefix}-password`);
    const formErr = $(`#${prefix}-form-error`);
    setFieldError(u, '');
    setFieldError(p, '');
    formErr.textContent = '';
    let bad = false;
    if (!u.value.trim()) { setFieldError(u, 'Enter a username.'); bad = true; }
    if (!p.value) { setFieldError(p, 'Enter a password.'); bad = true; }
    if (bad) { (u.value.trim() ? p : u).focus(); return; }
    const button = form.querySelector('button[type=submit]');
    submitting.add(form);
    button.disabled = true;
    try {
      await action(u.value.trim(), p.value);
      p.value = '';
    } catch (err) {
      showAuthError(err, u, p, formErr, prefix, button);
    } finally {
      submitting.delete(form);
      if (!button.dataset.lockedUntil) button.disabled = false;
    }
  });

  handle($('#login-form'), 'login', async (username, password) => {
    await signIn(username, password);
  });
  handle($('#register-form'), 'register', async (username, password) => {
    await api('/api/auth/register', { method: 'POST', body: { username, password }, authed: false });
    await signIn(username, password);
  });
}

function showAuthError(err, u, p, formErr, prefix, button) {
  const msg = err.message || 'Something went wrong';
  if (err.status === 409) {
    setFieldError(u, msg && !/^conflict$/i.test(msg) ? msg : 'That username is taken.');
    u.focus();
  } else if (err.status === 401) {
    setFieldError(p, 'Wrong username or password.');
    p.focus();
  } else if (err.status === 400 || err.status === 422) {
    // The server says which field in its message; default to the username.
    if (/pass/i.test(msg) && !/user/i.test(msg)) { setFieldError(p, msg); p.focus(); } else { setFieldError(u, msg); u.focus(); }
  } else if (err.status === 429) {
    const secs = err.retryAfterSec || 30;
    formErr.textContent = `Too many attempts. Try again in ${secs} s.`;
    button.disabled = true;
    button.dataset.lockedUntil = String(Date.now() + secs * 1000);
    setTimeout(() => { button.disabled = false; delete button.dataset.lockedUntil; formErr.textContent = ''; }, secs * 1000);
  } else {
    formErr.textContent = err.status ? `${msg} (${err.status})` : msg;
  }
  void prefix;
}

async function signIn(username, password) {
  const data = await api('/api/auth/login', { method: 'POST', body: { username, password }, authed: false });
  saveAuth(data);
  await startApp();
}

/** Local sign-out: forget tokens and go back to the sign-in form. */
function endSession(notice) {
  if (ui.client) { ui.client.stop(); ui.client = null; }
  for (const r of ui.rooms.values()) for (const t of r.typing.values()) clearTimeout(t.timer);
  ui.rooms.clear();
  ui.roomList = [];
  ui.active = null;
  ui.me = null;
  clearAuth();
  $('#room-list').replaceChildren();
  $('#message-list').replaceChildren();
  closeDialog($('#sessions-dialog'));
  closeDialog($('#password-dialog'));
  showAuth(notice);
}

async function signOut() {
  const token = auth?.refresh_token;
  const me = ui.me;
  try {
    if (token) await api('/api/auth/logout', { method: 'POST', body: { refresh_token: token } });
  } catch { /* signing out locally anyway */ }
  if (me) localStorage.removeItem(uiKey(me.id));
  endSession('You are signed out.');
}

// ============================================================================
// App start
// ============================================================================

async function startApp() {
  if (!auth) return showAuth();
  ui.me = auth.user;
  $('#auth-view').hidden = true;
  $('#app-view').hidden = false;
  $('#me-name').textContent = ui.me?.username || '';
  $('#me-name-narrow').textContent = ui.me?.username || '';
  const av = $('#me-avatar');
  av.textContent = (ui.me?.username || '?').slice(0, 1).toUpperCase();
  av.style.setProperty('--h', hue(ui.me?.username));
  document.title = 'ChatX';
  scheduleRefresh();

  const client = new ResilientClient({
    url: async () => {
      try {
        const token = await freshAccessToken(60_000);
        const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
        return `${proto}//${location.host}/ws?token=${enc(token)}`;
      } catch (err) {
        if (err.fatal) throw Object.assign(new Error(err.message), { fatal: true });
        throw err;
      }
    },
    authCheck: async () => {
      try {
        // The socket refused the token: refresh it (a 401 from /api/me refreshes too).
        if (auth && auth.expires_at - Date.now() < 120_000) await refreshTokens();
        await api('/api/me');
        return true;
      } catch (err) {
        if (err.fatal || err.status === 401) return false;
        throw err;
      }
    },
  });
  ui.client = client;
  wireClient(client);

  const saved = loadUi(ui.me.id);
  client.restoreOutbox(saved.outbox);
  client.start();
  loadRoomList();
  const open = Array.isArray(saved.open) ? saved.open : [];
  const active = open.includes(saved.active) ? saved.active : open[0];
  for (const name of open) openRoom(name, { activate: name === active, restoring: true }).catch(() => {});
  if (!open.length) showEmpty();
}

function wireClient(client) {
  client.addEventListener('state', (e) => renderConnState(e.detail));
  client.addEventListener('hello', (e) => {
    if (e.detail.user) {
      ui.me = e.detail.user;
      $('#me-name').textContent = ui.me.username;
    }
  });
  client.addEventListener('revoked', (e) => {
    if (ui.client !== client) return;
    const reason = e.detail.code === 4001 ? 'This session was signed out from another device.' : (e.detail.reason || 'Your session has ended.');
    endSession(reason);
  });
  client.addEventListener('joined', (e) => onJoined(e.detail));
  client.addEventListener('join-error', (e) => {
    const { room, error } = e.detail;
    dropRoom(room);
    toast(`Could not rejoin #${room}: ${error.message || error.code}`, 'error');
  });
  client.addEventListener('gap', (e) => fillGap(e.detail));
  client.addEventListener('message', (e) => onMessage(e.detail, { live: true }));
  client.addEventListener('outbox', (e) => onOutbox(e.detail.entry));
  client.addEventListener('presence', (e) => onPresence(e.detail));
  client.addEventListener('typing', (e) => onTyping(e.detail));
  client.addEventListener('receipt', (e) => onReceipt(e.detail));
  client.addEventListener('room_deleted', (e) => {
    const name = e.detail.room;
    if (ui.rooms.has(name)) toast(`#${name} was deleted.`, 'info');
    dropRoom(name);
    loadRoomList();
  });
  client.addEventListener('notice', (e) => {
    announce(`Server restarting: reconnecting in ${Math.round((e.detail.after_ms || 0) / 1000)} s`);
  });
}

function renderConnState({ state, retryAt, reason }) {
  const box = $('#conn-status');
  box.dataset.state = state;
  const text = $('#conn-text');
  const retry = $('#conn-retry');
  clearInterval(renderConnState.timer);
  retry.hidden = state !== 'reconnecting' && state !== 'offline';
  if (state === 'connected') text.textContent = 'Connected';
  else if (state === 'connecting') text.textContent = 'Connecting…';
  else if (state === 'offline') text.textContent = 'Offline';
  else if (state === 'closed') text.textContent = 'Disconnected';
  else {
    const tick = () => {
      const secs = retryAt ? Math.ceil((retryAt - Date.now()) / 1000) : 0;
      text.textContent = secs > 0 ? `Reconnecting in ${secs} s…` : 'Reconnecting…';
    };
    tick();
    if (retryAt) renderConnState.timer = setInterval(tick, 1000);
  }
  box.title = reason ? `Last disconnect: ${reason}` : '';
  const composer = $('#composer');
  composer.classList.toggle('is-offline', state !== 'connected');
}

// ============================================================================
// Room list
// ============================================================================

async function loadRoomList() {
  try {
    const data = await api('/api/rooms');
    ui.roomList = Array.isArray(data?.rooms) ? data.rooms : [];
    for (const r of ui.roomList) {
      const open = ui.rooms.get(r.name);
      if (open) open.info = { ...open.info, ...r };
    }
    renderRoomList();
    if (ui.active) renderRoomHeader();
  } catch (err) {
    if (!err.fatal) toast(`Could not load rooms: ${err.message}`, 'error');
  }
}

function renderRoomList() {
  const list = $('#room-list');
  const byName = new Map(ui.roomList.map((r) => [r.name, r]));
  for (const [name, r] of ui.rooms) if (!byName.has(name)) byName.set(name, { name, kind: r.info?.kind || 'public' });
  const rooms = [...byName.values()].sort((a, b) => {
    const ja = ui.rooms.has(a.name) ? 0 : 1;
    const jb = ui.rooms.has(b.name) ? 0 : 1;
    return ja - jb || a.name.localeCompare(b.name);
  });
  const focusedRoom = document.activeElement?.closest?.('[data-room]')?.dataset.room;
  list.replaceChildren(...rooms.map((r) => {
    const open = ui.rooms.get(r.name);
    const isActive = ui.active === r.name;
    const btn = el('button', {
      type: 'button',
      class: `room-item${isActive ? ' active' : ''}${open ? ' joined' : ''}`,
      'data-testid': 'room-item',
      'data-room': r.name,
      'aria-current': isActive ? 'page' : null,
      onclick: () => openRoom(r.name, { activate: true, interactive: true }).catch(() => {}),
    },
    r.kind === 'private' ? lockIcon() : el('span', { class: 'room-icon', 'aria-hidden': 'true', text: '#' }),
    el('span', { class: 'room-name', text: r.name }),
    r.kind === 'private' ? el('span', { class: 'visually-hidden', text: ', private' }) : null,
    open && open.unread ? el('span', { class: 'unread', 'data-testid': 'unread', text: String(open.unread > 99 ? '99+' : open.unread) }) : null,
    open && open.unread ? el('span', { class: 'visually-hidden', text: ` ${open.unread} unread` }) : null,
    open && !open.unread ? el('span', { class: 'joined-dot', title: 'Joined', 'aria-hidden': 'true' }) : null);
    return el('li', {}, btn);
  }));
  if (!rooms.length) list.append(el('li', { class: 'muted small', text: 'No rooms yet.' }));
  if (focusedRoom) list.querySelector(`[data-room="${CSS.escape(focusedRoom)}"]`)?.focus();
}

// ============================================================================
// Join / leave / delete
// ============================================================================

/** Open (join) a room and optionally show it. Prompts for a password when needed. */
async function openRoom(name, { activate = true, password, interactive = false, restoring = false } = {}) {
  closeDrawers();
  if (ui.rooms.has(name) && ui.client.rooms.has(name)) {
    if (activate) setActive(name);
    return true;
  }
  ensureRoomState(name);
  const known = ui.roomList.find((r) => r.name === name);
  if (known) ui.rooms.get(name).info = { ...known };
  if (activate) setActive(name);
  renderRoomList();
  try {
    await ui.client.join(name, password !== undefined ? { password } : {});
    persistUi();
    return true;
  } catch (err) {
    const isActive = ui.active === name;
    dropRoom(name, { keepActive: false });
    if (err.code === 'wrong_password' || err.code === 'forbidden') {
      if (password !== undefined || interactive || restoring || isActive) {
        askPassword(name, password !== undefined ? (err.code === 'wrong_password' ? 'Wrong password. Try again.' : err.message) : '');
      }
      return false;
    }
    if (err.code === 'left') return false;
    if (interactive || !restoring) toast(`Could not join #${name}: ${err.message || err.code}`, 'error');
    throw err;
  }
}

function askPassword(name, error = '') {
  ui.passwordFor = name;
  $('#password-dialog-text').textContent = `#${name} is private. Enter its password to join.`;
  const input = $('#room-password-input');
  input.value = '';
  setFieldError(input, error);
  openDialog($('#password-dialog'));
  input.focus();
}

function initPasswordDialog() {
  const dialog = $('#password-dialog');
  const input = $('#room-password-input');
  $('#password-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const name = ui.passwordFor;
    if (!name) return closeDialog(dialog);
    if (!input.value) { setFieldError(input, 'Enter the room password.'); input.focus(); return; }
    const submit = dialog.querySelector('button[type=submit]');
    submit.disabled = true;
    setFieldError(input, '');
    try {
      ensureRoomState(name);
      await ui.client.join(name, { password: input.value });
      closeDialog(dialog);
      ui.passwordFor = null;
      setActive(name);
      persistUi();
      loadRoomList();
      $('#composer-input').focus();
    } catch (err) {
      dropRoom(name, { keepActive: false });
      const msg = err.code === 'wrong_password' ? 'Wrong password.'
        : err.code === 'rate_limited' ? `Too many attempts. Wait ${Math.ceil((err.retry_after_ms || 1000) / 1000)} s.`
          : (err.message || 'Could not join.');
      setFieldError(input, msg);
      input.select();
      input.focus();
    } finally {
      submit.disabled = false;
    }
  });
  $('#password-cancel').addEventListener('click', () => { ui.passwordFor = null; closeDialog(dialog); });
}

function dropRoom(name, { keepActive = false } = {}) {
  const r = ui.rooms.get(name);
  if (r) for (const t of r.typing.values()) clearTimeout(t.timer);
  ui.rooms.delete(name);
  if (ui.active === name && !keepActive) {
    const next = ui.rooms.keys().next().value;
    if (next) setActive(next); else showEmpty();
  }
  persistUi();
  renderRoomList();
}

async function leaveRoom(name) {
  await ui.client.leave(name);
  dropRoom(name);
  announce(`Left #${name}`);
  loadRoomList();
}

async function deleteRoom(name) {
  const ok = await confirmDialog(`Delete #${name}?`, 'This removes the room and all its messages for everyone.', 'Delete room', async () => {
    await api(`/api/rooms/${enc(name)}`, { method: 'DELETE' });
  });
  if (!ok) return;
  ui.client.leave(name);
  dropRoom(name);
  toast(`#${name} deleted.`, 'info');
  loadRoomList();
}

function initRoomForms() {
  $('#join-room-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const input = $('#join-room-name');
    const name = input.value.trim().replace(/^#/, '');
    setFieldError(input, '');
    if (!name) { setFieldError(input, 'Enter a room name.'); input.focus(); return; }
    try {
      const ok = await openRoom(name, { activate: true, interactive: true });
      if (ok) { input.value = ''; $('#composer-input').focus(); loadRoomList(); }
    } catch (err) {
      setFieldError(input, err.code === 'not_found' ? `No room named “${name}”.` : (err.message || 'Could not join.'));
      input.focus();
    }
  });

  const form = $('#create-room-form');
  const pwField = $('#create-room-password-field');
  form.addEventListener('change', () => { pwField.hidden = form.elements.kind.value !== 'private'; });
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const nameInput = $('#create-room-name');
    const pwInput = $('#create-room-password');
    const kind = form.elements.kind.value;
    const name = nameInput.value.trim().replace(/^#/, '');
    setFieldError(nameInput, '');
    setFieldError(pwInput, '');
    $('#create-room-error').textContent = '';
    if (!name) { setFieldError(nameInput, 'Enter a room name.'); nameInput.focus(); return; }
    if (kind === 'private' && !pwInput.value) { setFieldError(pwInput, 'A private room needs a password.'); pwInput.focus(); return; }
    const body = { name, kind };
    if (kind === 'private') body.password = pwInput.value;
    const submit = form.querySelector('button[type=submit]');
    submit.disabled = true;
    try {
      const room = await api('/api/rooms', { method: 'POST', body });
      if (room?.name) ui.roomList = [...ui.roomList.filter((r) => r.name !== room.name), room];
      const password = kind === 'private' ? pwInput.value : undefined;
      form.reset();
      pwField.hidden = true;
      $('#create-section').open = false;
      await openRoom(name, { activate: true, password, interactive: true });
      loadRoomList();
      $('#composer-input').focus();
    } catch (err) {
      if (err.status === 409) { setFieldError(nameInput, 'A room with this name already exists.'); nameInput.focus(); }
      else if (err.status === 400 || err.status === 422) {
        if (/pass/i.test(err.message) && !/name/i.test(err.message)) { setFieldError(pwInput, err.message); pwInput.focus(); }
        else { setFieldError(nameInput, err.message); nameInput.focus(); }
      } else if (err.status === 429) {
        $('#create-room-error').textContent = `Too many requests. Try again in ${err.retryAfterSec || 30} s.`;
      } else if (err.status) {
        $('#create-room-error').textContent = err.message;
      }
    } finally {
      submit.disabled = false;
    }
  });
}

// ============================================================================
// Active room
// ============================================================================

function showEmpty() {
  ui.active = null;
  $('#room-view').hidden = true;
  $('#empty-state').hidden = false;
  $('#members').classList.add('no-room');
  $('#member-list').replaceChildren();
  $('#members-count').textContent = '';
  persistUi();
  renderRoomList();
}

function setActive(name) {
  const r = ui.rooms.get(name);
  if (!r) return;
  const switching = ui.active !== name;
  ui.active = name;
  r.unread = 0;
  $('#empty-state').hidden = true;
  $('#room-view').hidden = false;
  $('#members').classList.remove('no-room');
  document.title = `#${name} · ChatX`;
  if (switching) {
    closeSearch();
    $('#message-list').replaceChildren();
    r.elements = new Map();
    r.atBottom = true;
    $('#typing-indicator').textContent = '';
  }
  renderRoomHeader();
  renderMessages(r, { scrollToBottom: switching });
  renderMembers(r);
  renderTyping(r);
  renderRoomList();
  persistUi();
  scheduleRead();
}

function renderRoomHeader() {
  const r = ui.rooms.get(ui.active);
  if (!r) return;
  $('#room-title').textContent = `#${r.name}`;
  const kind = r.info?.kind || 'public';
  $('#room-kind').textContent = kind === 'private' ? 'Private' : 'Public';
  $('#room-kind').className = `badge ${kind === 'private' ? 'badge-private' : ''}`;
  $('#delete-room').hidden = !(r.info?.owner_id && ui.me && r.info.owner_id === ui.me.id);
}

async function onJoined({ frame, resumed }) {
  const name = frame.room?.name || frame.room;
  const r = ui.rooms.get(name);
  if (!r) return;
  r.info = { ...(r.info || {}), ...(typeof frame.room === 'object' ? frame.room : {}) };
  r.presence = new Map((frame.presence || []).map((u) => [u.id, u]));
  if (ui.me && !r.presence.has(ui.me.id)) r.presence.set(ui.me.id, { id: ui.me.id, username: ui.me.username });
  if (name === ui.active) { renderMembers(r); renderRoomHeader(); }
  if (!resumed || !r.historyLoaded) await loadLatest(r);
  if (!r.info.owner_id) {
    api(`/api/rooms/${enc(name)}`).then((info) => {
      if (info && ui.rooms.get(name) === r) { r.info = { ...r.info, ...info }; if (name === ui.active) renderRoomHeader(); }
    }).catch(() => {});
  }
}

async function loadLatest(r) {
  let data;
  try {
    data = await ui.client.history(r.name, { limit: HISTORY_PAGE });
  } catch {
    try { data = await api(`/api/rooms/${enc(r.name)}/messages?limit=${HISTORY_PAGE}`); } catch (err) {
      if (!err.fatal) toast(`Could not load messages of #${r.name}`, 'error');
      return;
    }
  }
  if (ui.rooms.get(r.name) !== r) return;
  const msgs = data?.messages || [];
  for (const m of msgs) addMessage(r, { ...m, room: r.name });
  if (!r.historyLoaded) r.hasMore = !!data?.has_more;
  r.historyLoaded = true;
  if (r.name === ui.active) renderMessages(r, { scrollToBottom: true });
  scheduleRead();
}

async function loadOlder(r) {
  if (r.loadingOlder || !r.hasMore) return;
  const oldest = Math.min(...r.messages.keys());
  if (!Number.isFinite(oldest)) return;
  r.loadingOlder = true;
  $('#load-older').textContent = 'Loading…';
  const scroller = $('#message-scroller');
  const before = scroller.scrollHeight - scroller.scrollTop;
  try {
    let data;
    try {
      data = await ui.client.history(r.name, { before: oldest, limit: HISTORY_PAGE });
    } catch {
      data = await api(`/api/rooms/${enc(r.name)}/messages?before=${oldest}&limit=${HISTORY_PAGE}`);
    }
    for (const m of data?.messages || []) addMessage(r, { ...m, room: r.name });
    r.hasMore = !!data?.has_more;
    if (r.name === ui.active) {
      renderMessages(r);
      scroller.scrollTop = scroller.scrollHeight - before;
    }
  } catch (err) {
    toast(`Could not load older messages: ${err.message}`, 'error');
  } finally {
    r.loadingOlder = false;
    $('#load-older').textContent = 'Load older messages';
  }
}

async function fillGap({ room, after, upTo }) {
  const r = ui.rooms.get(room);
  if (!r) return;
  let cursor = after;
  for (let page = 0; page < 20 && cursor < upTo; page += 1) {
    let data;
    try { data = await api(`/api/rooms/${enc(room)}/messages?after=${cursor}&limit=100`); } catch { return; }
    const msgs = data?.messages || [];
    for (const m of msgs) addMessage(r, { ...m, room });
    if (!msgs.length || !data.has_more) break;
    cursor = msgs[msgs.length - 1].seq;
  }
  if (room === ui.active) renderMessages(r);
}

// ============================================================================
// Messages
// ============================================================================

/** Insert a delivered message; false if it was already there (dedupe by seq). */
function addMessage(r, m) {
  if (typeof m.seq !== 'number' || r.messages.has(m.seq)) return false;
  r.messages.set(m.seq, m);
  if (m.client_msg_id) r.pending.delete(m.client_msg_id);
  return true;
}

function onMessage(m, { live }) {
  const r = ui.rooms.get(m.room);
  if (!r) return;
  if (!addMessage(r, m)) return;
  const mine = m.user?.id === ui.me?.id;
  const t = r.typing.get(m.user?.id);
  if (t) { clearTimeout(t.timer); r.typing.delete(m.user.id); }
  if (r.name === ui.active) {
    renderMessages(r, { scrollToBottom: mine, arrived: live });
    renderTyping(r);
    if (live && !mine) announce(`${m.user?.username}: ${m.body}`);
    scheduleRead();
  } else if (!mine) {
    r.unread += 1;
    renderRoomList();
  }
}

function onOutbox(entry) {
  const r = ui.rooms.get(entry.room);
  if (entry.status === 'acked') {
    if (r) {
      r.pending.delete(entry.client_msg_id);
      addMessage(r, { room: entry.room, id: entry.id, seq: entry.seq, ts: entry.ts, body: entry.body, client_msg_id: entry.client_msg_id, user: ui.me });
    }
  } else if (entry.status === 'discarded') {
    r?.pending.delete(entry.client_msg_id);
  } else if (r) {
    r.pending.set(entry.client_msg_id, { ...entry });
  }
  if (r && r.name === ui.active) renderMessages(r);
  persistUi();
}

function msgKey(m) {
  return m.client_msg_id ? `c:${m.client_msg_id}` : `s:${m.seq}`;
}

/** Keyed rendering of the active room's message list (delivered by seq, then pending). */
function renderMessages(r, { scrollToBottom = false, arrived = false } = {}) {
  if (r.name !== ui.active) return;
  const list = $('#message-list');
  const scroller = $('#message-scroller');
  const nearBottom = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 80;
  const delivered = [...r.messages.values()].sort((a, b) => a.seq - b.seq);
  const pending = [...r.pending.values()].sort((a, b) => a.createdAt - b.createdAt);
  const receiptsAt = receiptPositions(r, delivered);

  const wanted = [];
  let prev = null;
  for (const m of delivered) {
    wanted.push(renderMessage(r, m, prev, receiptsAt.get(m.seq)));
    prev = m;
  }
  for (const p of pending) {
    wanted.push(renderMessage(r, { ...p, user: ui.me, ts: new Date(p.createdAt).toISOString(), pendingStatus: p.status }, prev, null));
    prev = { user: ui.me, ts: new Date(p.createdAt).toISOString() };
  }
  // Reconcile: keep nodes that stay, insert/move the others, drop the rest.
  const keep = new Set(wanted);
  for (const child of [...list.children]) if (!keep.has(child)) child.remove();
  let cursor = list.firstElementChild;
  for (const node of wanted) {
    if (node === cursor) { cursor = cursor.nextElementSibling; continue; }
    list.insertBefore(node, cursor);
  }
  for (const [key, node] of r.elements) if (!keep.has(node)) r.elements.delete(key);

  $('#load-older').hidden = !r.hasMore;
  $('#history-start').hidden = r.hasMore || !r.historyLoaded;
  if (scrollToBottom || nearBottom) {
    scroller.scrollTop = scroller.scrollHeight;
    $('#jump-latest').hidden = true;
  } else if (arrived) {
    $('#jump-latest').hidden = false;
  }
}

function renderMessage(r, m, prev, seenBy) {
  const key = msgKey(m);
  const mine = m.user?.id === ui.me?.id;
  const status = m.pendingStatus ? (m.pendingStatus === 'failed' ? 'failed' : 'pending') : (mine ? 'acked' : 'delivered');
  const grouped = prev && prev.user?.id === m.user?.id && Math.abs(new Date(m.ts) - new Date(prev.ts)) < 5 * 60_000;
  const seenText = seenBy?.length ? `Seen by ${seenBy.join(', ')}` : '';
  const sig = [status, m.seq ?? '', grouped ? 1 : 0, seenText, m.body, m.error || ''].join('|');
  let node = r.elements.get(key);
  if (node && node.dataset.sig === sig) return node;

  const statusText = status === 'pending' ? 'Sending…' : status === 'failed' ? 'Not sent' : status === 'acked' ? 'Sent' : '';
  const fresh = el('li', {
    class: `msg${mine ? ' own' : ''}${grouped ? ' grouped' : ''} status-${status}`,
    'data-testid': 'message',
    'data-status': status,
    'data-seq': m.seq ?? null,
    'data-client-msg-id': m.client_msg_id || null,
    'data-author': m.user?.username || '',
  },
  avatar(m.user?.username),
  el('div', { class: 'msg-main' },
    el('div', { class: 'msg-meta' },
      el('span', { class: 'author', 'data-testid': 'message-author', text: m.user?.username || 'unknown' }),
      timeEl(m.ts),
      mine ? el('span', { class: `msg-status ${status}`, 'data-testid': 'message-status', text: statusText }) : null),
    el('div', { class: 'msg-body', 'data-testid': 'message-body', text: m.body }),
    status === 'failed' ? el('div', { class: 'msg-failed', role: 'alert' },
      el('span', { text: m.error ? `Not sent: ${m.error}` : 'Not sent.' }),
      el('button', { type: 'button', class: 'link-btn', 'data-testid': 'retry-send', onclick: () => ui.client.retry(m.client_msg_id) }, 'Retry'),
      el('button', { type: 'button', class: 'link-btn muted', 'data-testid': 'discard-send', onclick: () => ui.client.discard(m.client_msg_id) }, 'Discard')) : null,
    seenText ? el('div', { class: 'receipts', 'data-testid': 'receipt', text: seenText }) : null));
  fresh.dataset.sig = sig;
  if (node) {
    const hadFocus = node.contains(document.activeElement);
    node.replaceWith(fresh);
    if (hadFocus) fresh.querySelector('button')?.focus();
  }
  r.elements.set(key, fresh);
  return fresh;
}

// ============================================================================
// Read receipts
// ============================================================================

/** seq of a delivered message -> usernames whose last read is there. */
function receiptPositions(r, delivered) {
  const at = new Map();
  if (!delivered.length) return at;
  for (const { user, seq } of r.receipts.values()) {
    if (user.id === ui.me?.id) continue;
    let pos = null;
    for (const m of delivered) { if (m.seq <= seq) pos = m.seq; else break; }
    if (pos == null) continue;
    if (!at.has(pos)) at.set(pos, []);
    at.get(pos).push(user.username);
  }
  return at;
}

function onReceipt(f) {
  const r = ui.rooms.get(f.room);
  if (!r || !f.user) return;
  const prev = r.receipts.get(f.user.id);
  if (prev && prev.seq >= f.seq) return;
  r.receipts.set(f.user.id, { user: f.user, seq: f.seq });
  if (r.name === ui.active) renderMessages(r);
}

let readTimer = null;
function scheduleRead() {
  clearTimeout(readTimer);
  readTimer = setTimeout(sendRead, 300);
}

function sendRead() {
  const r = ui.rooms.get(ui.active);
  if (!r || !ui.client || document.visibilityState !== 'visible') return;
  const scroller = $('#message-scroller');
  const atBottom = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 80;
  if (!atBottom || !r.messages.size) return;
  const max = Math.max(...r.messages.keys());
  ui.client.read(r.name, max);
}

// ============================================================================
// Presence and typing
// ============================================================================

function onPresence(f) {
  const r = ui.rooms.get(f.room);
  if (!r || !f.user) return;
  if (f.event === 'leave') {
    r.presence.delete(f.user.id);
    const t = r.typing.get(f.user.id);
    if (t) { clearTimeout(t.timer); r.typing.delete(f.user.id); renderTyping(r); }
  } else {
    r.presence.set(f.user.id, f.user);
  }
  if (r.name === ui.active) {
    renderMembers(r);
    if (f.user.id !== ui.me?.id) announce(`${f.user.username} ${f.event === 'leave' ? 'left' : 'joined'} #${r.name}`);
  }
}

function renderMembers(r) {
  if (r.name !== ui.active) return;
  const users = [...r.presence.values()].sort((a, b) => {
    if (a.id === ui.me?.id) return -1;
    if (b.id === ui.me?.id) return 1;
    return a.username.localeCompare(b.username);
  });
  $('#members-count').textContent = String(users.length);
  $('#members-count-label').textContent = `Online (${users.length})`;
  $('#member-list').replaceChildren(...users.map((u) => el('li', { class: 'member', 'data-testid': 'member', 'data-user': u.username },
    el('span', { class: 'avatar-wrap' }, avatar(u.username, 'avatar-sm'), el('span', { class: 'online-dot', 'aria-hidden': 'true' })),
    el('span', { class: 'member-name', text: u.username }),
    u.id === ui.me?.id ? el('span', { class: 'muted small', text: '(you)' }) : null)));
}

function onTyping(f) {
  const r = ui.rooms.get(f.room);
  if (!r || !f.user || f.user.id === ui.me?.id) return;
  const prev = r.typing.get(f.user.id);
  if (prev) clearTimeout(prev.timer);
  const timer = setTimeout(() => { r.typing.delete(f.user.id); renderTyping(r); }, TYPING_SHOW_MS);
  r.typing.set(f.user.id, { username: f.user.username, timer });
  renderTyping(r);
}

function renderTyping(r) {
  if (r.name !== ui.active) return;
  const names = [...r.typing.values()].map((t) => t.username);
  const text = names.length === 0 ? ''
    : names.length === 1 ? `${names[0]} is typing…`
      : names.length <= 3 ? `${names.slice(0, -1).join(', ')} and ${names.at(-1)} are typing…`
        : 'Several people are typing…';
  const box = $('#typing-indicator');
  if (box.textContent !== text) box.textContent = text;
}

// ============================================================================
// Composer, search, scrolling
// ============================================================================

function initComposer() {
  const input = $('#composer-input');
  const form = $('#composer');
  const autosize = () => {
    input.style.height = 'auto';
    input.style.height = `${Math.min(input.scrollHeight, 160)}px`;
  };
  input.addEventListener('input', () => {
    autosize();
    if (!ui.active || !input.value.trim()) return;
    const now = Date.now();
    if (now - ui.lastTypingSent >= TYPING_SEND_EVERY_MS) {
      ui.lastTypingSent = now;
      ui.client?.typing(ui.active);
    }
  });
  input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      form.requestSubmit();
    }
  });
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const body = input.value.trim();
    if (!body || !ui.active || !ui.client) return;
    ui.client.send(ui.active, body);
    ui.lastTypingSent = 0;
    input.value = '';
    autosize();
    const r = ui.rooms.get(ui.active);
    if (r) renderMessages(r, { scrollToBottom: true });
    input.focus();
  });
}

function initScroller() {
  const scroller = $('#message-scroller');
  scroller.addEventListener('scroll', () => {
    const r = ui.rooms.get(ui.active);
    if (!r) return;
    if (scroller.scrollTop < 120 && r.hasMore && !r.loadingOlder) loadOlder(r);
    const atBottom = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 80;
    if (atBottom) { $('#jump-latest').hidden = true; scheduleRead(); }
  }, { passive: true });
  $('#load-older').addEventListener('click', () => {
    const r = ui.rooms.get(ui.active);
    if (r) loadOlder(r);
  });
  $('#jump-latest').addEventListener('click', () => {
    scroller.scrollTop = scroller.scrollHeight;
    $('#jump-latest').hidden = true;
    scheduleRead();
    $('#composer-input').focus();
  });
  document.addEventListener('visibilitychange', scheduleRead);
  window.addEventListener('focus', scheduleRead);
}

function closeSearch() {
  $('#search-results').hidden = true;
  $('#search-results-list').replaceChildren();
  $('#search-input').value = '';
}

function highlight(text, q) {
  const frag = document.createDocumentFragment();
  const terms = q.split(/\s+/).filter(Boolean).map((t) => t.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  if (!terms.length) { frag.append(text); return frag; }
  const re = new RegExp(`(${terms.join('|')})`, 'gi');
  text.split(re).forEach((part, i) => frag.append(i % 2 ? el('mark', { text: part }) : part));
  return frag;
}

function initSearch() {
  $('#search-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const q = $('#search-input').value.trim();
    const room = ui.active;
    if (!room) return;
    if (!q) return closeSearch();
    const box = $('#search-results');
    const title = $('#search-results-title');
    box.hidden = false;
    title.textContent = 'Searching…';
    $('#search-results-list').replaceChildren();
    try {
      const data = await api(`/api/rooms/${enc(room)}/messages?q=${enc(q)}&limit=50`);
      if (ui.active !== room) return;
      const msgs = data?.messages || [];
      title.textContent = msgs.length ? `${msgs.length}${data.has_more ? '+' : ''} result${msgs.length === 1 ? '' : 's'} for “${q}”` : `No messages match “${q}”`;
      $('#search-results-list').replaceChildren(...msgs.slice().reverse().map((m) => el('li', { class: 'search-hit', 'data-testid': 'search-result' },
        el('div', { class: 'msg-meta' }, el('span', { class: 'author', text: m.user?.username || '' }), timeEl(m.ts)),
        el('div', { class: 'msg-body' }, highlight(m.body || '', q)))));
    } catch (err) {
      title.textContent = `Search failed: ${err.message}`;
    }
  });
  $('#close-search').addEventListener('click', () => { closeSearch(); $('#search-input').focus(); });
  $('#search-input').addEventListener('keydown', (e) => { if (e.key === 'Escape') closeSearch(); });
}

// ============================================================================
// Dialogs, drawers, sessions
// ============================================================================

function openDialog(d) {
  if (!d.open) d.showModal();
}

function closeDialog(d) {
  if (d.open) d.close();
}

function confirmDialog(title, text, okLabel, action) {
  const d = $('#confirm-dialog');
  $('#confirm-title').textContent = title;
  $('#confirm-text').textContent = text;
  $('#confirm-error').textContent = '';
  $('#confirm-ok').textContent = okLabel;
  openDialog(d);
  $('#confirm-cancel').focus();
  return new Promise((resolve) => {
    const ok = $('#confirm-ok');
    const cancel = $('#confirm-cancel');
    const cleanup = () => {
      ok.removeEventListener('click', onOk);
      cancel.removeEventListener('click', onCancel);
      d.removeEventListener('cancel', onCancel);
    };
    const onOk = async (e) => {
      e.preventDefault();
      ok.disabled = true;
      try {
        await action();
        cleanup();
        closeDialog(d);
        resolve(true);
      } catch (err) {
        $('#confirm-error').textContent = err.message || 'Failed';
      } finally {
        ok.disabled = false;
      }
    };
    const onCancel = () => { cleanup(); closeDialog(d); resolve(false); };
    ok.addEventListener('click', onOk);
    cancel.addEventListener('click', onCancel);
    d.addEventListener('cancel', onCancel);
  });
}

async function openSessions() {
  const d = $('#sessions-dialog');
  openDialog(d);
  $('#sessions-close').focus();
  await renderSessions();
}

async function renderSessions() {
  const list = $('#sessions-list');
  $('#sessions-error').textContent = '';
  list.replaceChildren(el('li', { class: 'muted', text: 'Loading…' }));
  let data;
  try {
    data = await api('/api/sessions');
  } catch (err) {
    list.replaceChildren();
    $('#sessions-error').textContent = `Could not load sessions: ${err.message}`;
    return;
  }
  const sessions = (data?.sessions || []).slice().sort((a, b) => (b.current ? 1 : 0) - (a.current ? 1 : 0));
  list.replaceChildren(...sessions.map((s) => {
    const current = s.current || s.id === auth?.session_id;
    const label = describeUserAgent(s.user_agent);
    return el('li', { class: 'session-item', 'data-testid': 'session-item', 'data-session-id': s.id, 'data-current': current ? 'true' : 'false' },
      el('div', { class: 'session-main' },
        el('div', { class: 'session-title' }, el('strong', { text: label }), current ? el('span', { class: 'badge badge-ok', text: 'This device' }) : null),
        el('div', { class: 'muted small' },
          `${s.ip || 'unknown IP'} · signed in `, timeEl(s.created_at), ' · last active ', timeEl(s.last_seen))),
      el('button', {
        type: 'button',
        class: 'btn btn-danger-ghost btn-sm',
        'data-testid': 'revoke-session',
        'aria-label': current ? 'Sign out this device' : `Revoke session ${label} from ${s.ip || 'unknown IP'}`,
        onclick: async (e) => {
          if (current) { closeDialog($('#sessions-dialog')); return signOut(); }
          e.currentTarget.disabled = true;
          try {
            await api(`/api/sessions/${enc(s.id)}`, { method: 'DELETE' });
            toast('Session revoked.', 'info');
          } catch (err) {
            $('#sessions-error').textContent = `Could not revoke: ${err.message}`;
          }
          await renderSessions();
          $('#sessions-close').focus();
        },
      }, current ? 'Sign out' : 'Revoke'));
  }));
  if (!sessions.length) list.append(el('li', { class: 'muted', text: 'No sessions.' }));
}

function closeDrawers() {
  const sidebar = $('#sidebar');
  const members = $('#members');
  const wasOpen = sidebar.classList.contains('open') || members.classList.contains('open');
  sidebar.classList.remove('open');
  members.classList.remove('open');
  $('#toggle-sidebar').setAttribute('aria-expanded', 'false');
  $('#toggle-members').setAttribute('aria-expanded', 'false');
  $('#scrim').hidden = true;
  return wasOpen;
}

function toggleDrawer(panel, button, focusSel) {
  const open = !panel.classList.contains('open');
  closeDrawers();
  if (!open) { button.focus(); return; }
  panel.classList.add('open');
  button.setAttribute('aria-expanded', 'true');
  $('#scrim').hidden = false;
  panel.querySelector(focusSel)?.focus();
}

function initChrome() {
  $('#sign-out').addEventListener('click', signOut);
  $('#open-sessions').addEventListener('click', openSessions);
  $('#sign-out-narrow').addEventListener('click', () => { closeDrawers(); signOut(); });
  $('#open-sessions-narrow').addEventListener('click', () => { closeDrawers(); openSessions(); });
  $('#sessions-close').addEventListener('click', () => closeDialog($('#sessions-dialog')));
  $('#conn-retry').addEventListener('click', () => ui.client?.reconnectNow());
  $('#refresh-rooms').addEventListener('click', loadRoomList);
  $('#leave-room').addEventListener('click', () => ui.active && leaveRoom(ui.active));
  $('#delete-room').addEventListener('click', () => ui.active && deleteRoom(ui.active));
  $('#toggle-sidebar').addEventListener('click', () => toggleDrawer($('#sidebar'), $('#toggle-sidebar'), 'button, input'));
  $('#toggle-members').addEventListener('click', () => toggleDrawer($('#members'), $('#toggle-members'), 'button'));
  $('#close-members').addEventListener('click', () => { closeDrawers(); $('#toggle-members').focus(); });
  $('#scrim').addEventListener('click', closeDrawers);
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && !document.querySelector('dialog[open]') && closeDrawers()) e.preventDefault();
  });
  // Another tab signed out (or in as someone else): follow it.
  window.addEventListener('storage', (e) => {
    if (e.key !== AUTH_KEY) return;
    const next = loadAuth();
    if (!next && ui.me) endSession('You signed out in another tab.');
    else if (next && ui.me && next.user?.id !== ui.me.id) location.reload();
    else if (next) auth = next;
  });
}

// ============================================================================
// Boot
// ============================================================================

initAuthForms();
initPasswordDialog();
initRoomForms();
initComposer();
initScroller();
initSearch();
initChrome();
if (auth) startApp(); else showAuth();

// Exposed for debugging in the console (not used by the tests).
window.chatx = { ui, get auth() { return auth; } };
