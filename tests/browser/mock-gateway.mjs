#!/usr/bin/env node
// A small stand-in for the ChatX gateway, written from DESIGN.md sections 7 and 8, to
// develop and test the web client before (or without) the Rust server. It is NOT the
// server: the browser tests run against the real binary unless CHATX_GATEWAY_BIN points
// here. Same environment as the gateway: BIND_ADDR, DATABASE_URL (sqlite://<file>...;
// the mock keeps its state in <file>.mock.json), JWT_SECRET.
//
// Extra knob: CHATX_MOCK_ACCESS_TTL_SECS (access token lifetime, default 900).

import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { WebSocketServer } from 'ws';

const here = path.dirname(fileURLToPath(import.meta.url));
const staticDir = path.resolve(here, '../../gateway/static');
const [host, port] = (process.env.BIND_ADDR || '127.0.0.1:8080').split(':');
const dbUrl = process.env.DATABASE_URL || 'sqlite://chatx.db';
const dbFile = `${dbUrl.replace(/^sqlite:\/\//, '').replace(/\?.*$/, '')}.mock.json`;
const secret = process.env.JWT_SECRET || crypto.randomBytes(32).toString('hex');
const accessTtl = Number(process.env.CHATX_MOCK_ACCESS_TTL_SECS || 900);

// ---------------------------------------------------------------- state
let db = { users: [], rooms: [], members: [], messages: [], sessions: [], seq: 0 };
if (fs.existsSync(dbFile)) db = JSON.parse(fs.readFileSync(dbFile, 'utf8'));
const save = () => fs.writeFileSync(dbFile, JSON.stringify(db));
const now = () => new Date().toISOString();
const uuid = () => crypto.randomUUID();
const sha = (s) => crypto.createHash('sha256').update(s).digest('hex');
if (!db.rooms.some((r) => r.name === 'lobby')) {
  db.rooms.push({ id: uuid(), name: 'lobby', kind: 'public', owner_id: null, created_at: now(), password_hash: null });
  save();
}
const publicRoom = ({ id, name, kind, owner_id, created_at }) => ({ id, name, kind, owner_id, created_at });
const isMember = (room, uid) => db.members.some((m) => m.room_id === room.id && m.user_id === uid);

// ---------------------------------------------------------------- jwt
const b64 = (b) => Buffer.from(b).toString('base64url');
function sign(payload) {
  const head = b64(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const body = b64(JSON.stringify(payload));
  return `${head}.${body}.${crypto.createHmac('sha256', secret).update(`${head}.${body}`).digest('base64url')}`;
}
function verify(token) {
  const [h, b, s] = String(token || '').split('.');
  if (!s) return null;
  const good = crypto.createHmac('sha256', secret).update(`${h}.${b}`).digest('base64url');
  if (good.length !== s.length || !crypto.timingSafeEqual(Buffer.from(good), Buffer.from(s))) return null;
  const p = JSON.parse(Buffer.from(b, 'base64url').toString());
  if (p.exp * 1000 < Date.now()) return null;
  const sess = db.sessions.find((x) => x.id === p.sid);
  if (!sess) return null;
  return { user: db.users.find((u) => u.id === p.sub), session: sess };
}
function issue(user, session) {
  const refresh = crypto.randomBytes(24).toString('base64url');
  session.refresh_hash = sha(refresh);
  save();
  return {
    access_token: sign({ sub: user.id, sid: session.id, exp: Math.floor(Date.now() / 1000) + accessTtl }),
    refresh_token: refresh,
    expires_in: accessTtl,
    session_id: session.id,
    user: { id: user.id, username: user.username },
  };
}

// ---------------------------------------------------------------- sockets
const sockets = new Set(); // {ws, user, session, rooms:Set}
const presence = new Map(); // room id -> Map(user id -> count)
const sendTo = (c, f) => { if (c.ws.readyState === 1) c.ws.send(JSON.stringify(f)); };
function broadcast(room, frame, except) {
  for (const c of sockets) if (c !== except && c.rooms.has(room.name)) sendTo(c, frame);
}
function presenceList(room) {
  const m = presence.get(room.id) || new Map();
  return [...m.keys()].map((id) => { const u = db.users.find((x) => x.id === id); return { id, username: u.username }; });
}
function enter(c, room) {
  if (c.rooms.has(room.name)) return;
  c.rooms.add(room.name);
  const m = presence.get(room.id) || new Map();
  presence.set(room.id, m);
  const n = (m.get(c.user.id) || 0) + 1;
  m.set(c.user.id, n);
  if (n === 1) broadcast(room, { type: 'presence', room: room.name, user: pub(c.user), event: 'join' }, c);
}
function exit(c, room) {
  if (!c.rooms.delete(room.name)) return;
  const m = presence.get(room.id);
  const n = (m?.get(c.user.id) || 1) - 1;
  if (n <= 0) { m?.delete(c.user.id); broadcast(room, { type: 'presence', room: room.name, user: pub(c.user), event: 'leave' }); } else m.set(c.user.id, n);
}
const pub = (u) => ({ id: u.id, username: u.username });
const msgOut = (m) => ({ room: db.rooms.find((r) => r.id === m.room_id)?.name, id: m.id, seq: m.seq, user: pub(db.users.find((u) => u.id === m.user_id)), body: m.body, ts: m.ts, client_msg_id: m.client_msg_id });
function closeSession(sid) {
  for (const c of sockets) if (c.session.id === sid) c.ws.close(4001, 'session revoked');
}

function onFrame(c, f) {
  const reply = (x) => sendTo(c, f.ref ? { ...x, ref: f.ref } : x);
  const err = (code, message, extra = {}) => reply({ type: 'error', code, message, ...extra });
  const room = f.room ? db.rooms.find((r) => r.name === f.room) : null;
  switch (f.type) {
    case 'ping': return reply({ type: 'pong' });
    case 'join': {
      if (!room) return err('not_found', 'no such room');
      if (room.kind === 'private' && !isMember(room, c.user.id)) {
        if (!f.password) return err('forbidden', 'this room needs a password');
        if (sha(f.password) !== room.password_hash) return err('wrong_password', 'wrong room password');
      }
      if (!isMember(room, c.user.id)) { db.members.push({ room_id: room.id, user_id: c.user.id }); save(); }
      const since = typeof f.since === 'number' ? f.since : null;
      const roomMsgs = db.messages.filter((m) => m.room_id === room.id);
      enter(c, room);
      return reply({
        type: 'joined', room: { id: room.id, name: room.name, kind: room.kind },
        last_seq: roomMsgs.length ? roomMsgs[roomMsgs.length - 1].seq : 0,
        presence: presenceList(room),
        recovered: since == null ? [] : roomMsgs.filter((m) => m.seq > since).map(msgOut),
      });
    }
    case 'leave':
      if (room) exit(c, room);
      return reply({ type: 'left', room: f.room });
    case 'send': {
      if (!room || !c.rooms.has(room.name)) return err('forbidden', 'join the room first');
      if (typeof f.body !== 'string' || !f.body.trim()) return err('bad_request', 'empty body');
      if (f.body.length > 4000) return err('too_large', 'message too large');
      let m = db.messages.find((x) => x.user_id === c.user.id && x.client_msg_id === f.client_msg_id && f.client_msg_id);
      if (!m) {
        db.seq += 1;
        m = { id: uuid(), room_id: room.id, seq: db.seq, user_id: c.user.id, body: f.body, client_msg_id: f.client_msg_id || null, ts: now() };
        db.messages.push(m);
        save();
        const out = { type: 'message', ...msgOut(m) };
        broadcast(room, out, c);
      }
      return reply({ type: 'ack', client_msg_id: m.client_msg_id, id: m.id, seq: m.seq, ts: m.ts });
    }
    case 'history': {
      if (!room || (room.kind === 'private' && !isMember(room, c.user.id))) return err('forbidden', 'not a member');
      const limit = Math.min(100, f.limit || 50);
      let ms = db.messages.filter((m) => m.room_id === room.id && (f.before == null || m.seq < f.before));
      const has_more = ms.length > limit;
      ms = ms.slice(-limit);
      return reply({ type: 'history', room: room.name, messages: ms.map(msgOut), has_more });
    }
    case 'typing':
      if (room && c.rooms.has(room.name)) broadcast(room, { type: 'typing', room: room.name, user: pub(c.user) }, c);
      return undefined;
    case 'read':
      if (room && c.rooms.has(room.name)) broadcast(room, { type: 'receipt', room: room.name, user: pub(c.user), seq: f.seq }, c);
      return undefined;
    default:
      return err('bad_request', `unknown frame type ${f.type}`);
  }
}

// ---------------------------------------------------------------- http
const types = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8' };
function json(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(body === undefined ? '' : JSON.stringify(body));
}
const fail = (res, status, code, message) => json(res, status, { code, message });

async function readBody(req) {
  let s = '';
  for await (const chunk of req) s += chunk;
  try { return s ? JSON.parse(s) : {}; } catch { return null; }
}

const server = http.createServer(async (req, res) => {
  const url = new URL(req.url, 'http://x');
  const p = url.pathname;
  if (p === '/healthz') return json(res, 200, { status: 'ok' });
  if (req.method === 'GET' && ['/', '/app.js', '/style.css', '/resilient-client.js'].includes(p)) {
    const file = path.join(staticDir, p === '/' ? 'index.html' : p.slice(1));
    res.writeHead(200, { 'content-type': types[path.extname(file)], 'cache-control': 'no-cache' });
    return res.end(fs.readFileSync(file));
  }
  if (!p.startsWith('/api/')) return fail(res, 404, 'not_found', 'not found');
  const body = ['POST', 'PUT'].includes(req.method) ? await readBody(req) : {};
  if (body === null) return fail(res, 400, 'bad_request', 'invalid JSON');

  if (p === '/api/auth/register' && req.method === 'POST') {
    const { username, password } = body;
    if (typeof username !== 'string' || !/^[A-Za-z0-9_-]{3,32}$/.test(username)) return fail(res, 400, 'bad_request', 'username must be 3-32 letters, digits, _ or -');
    if (typeof password !== 'string' || password.length < 8) return fail(res, 400, 'bad_request', 'password must be at least 8 characters');
    if (db.users.some((u) => u.username === username)) return fail(res, 409, 'conflict', 'username taken');
    const u = { id: uuid(), username, password_hash: sha(password), created_at: now() };
    db.users.push(u);
    save();
    return json(res, 201, pub(u));
  }
  if (p === '/api/auth/login' && req.method === 'POST') {
    const u = db.users.find((x) => x.username === body.username);
    if (!u || u.password_hash !== sha(String(body.password))) return fail(res, 401, 'unauthorized', 'invalid credentials');
    const s = { id: uuid(), user_id: u.id, created_at: now(), last_seen: now(), ip: req.socket.remoteAddress, user_agent: req.headers['user-agent'] || '' };
    db.sessions.push(s);
    return json(res, 200, issue(u, s));
  }
  if (p === '/api/auth/refresh' && req.method === 'POST') {
    const h = sha(String(body.refresh_token));
    const s = db.sessions.find((x) => x.refresh_hash === h);
    if (!s) {
      const reused = db.sessions.find((x) => (x.old_hashes || []).includes(h));
      if (reused) { db.sessions = db.sessions.filter((x) => x !== reused); save(); closeSession(reused.id); }
      return fail(res, 401, 'unauthorized', 'invalid refresh token');
    }
    s.old_hashes = [...(s.old_hashes || []), s.refresh_hash];
    s.last_seen = now();
    return json(res, 200, issue(db.users.find((u) => u.id === s.user_id), s));
  }
  if (p === '/api/auth/logout' && req.method === 'POST') {
    const s = db.sessions.find((x) => x.refresh_hash === sha(String(body.refresh_token)));
    if (!s) return fail(res, 401, 'unauthorized', 'invalid refresh token');
    db.sessions = db.sessions.filter((x) => x !== s);
    save();
    closeSession(s.id);
    return json(res, 204);
  }
  const who = verify((req.headers.authorization || '').replace(/^Bearer /, ''));
  if (!who) return fail(res, 401, 'unauthorized', 'missing or invalid token');
  const { user, session } = who;
  session.last_seen = now();
  if (p === '/api/me') return json(res, 200, pub(user));
  if (p === '/api/sessions') {
    return json(res, 200, { sessions: db.sessions.filter((s) => s.user_id === user.id).map(({ id, created_at, last_seen, ip, user_agent }) => ({ id, created_at, last_seen, ip, user_agent, current: id === session.id })) });
  }
  let m = p.match(/^\/api\/sessions\/([^/]+)$/);
  if (m && req.method === 'DELETE') {
    const s = db.sessions.find((x) => x.id === m[1] && x.user_id === user.id);
    if (!s) return fail(res, 404, 'not_found', 'no such session');
    db.sessions = db.sessions.filter((x) => x !== s);
    save();
    closeSession(s.id);
    return json(res, 204);
  }
  if (p === '/api/rooms' && req.method === 'GET') {
    return json(res, 200, { rooms: db.rooms.filter((r) => r.kind === 'public' || isMember(r, user.id)).map(publicRoom) });
  }
  if (p === '/api/rooms' && req.method === 'POST') {
    const { name, kind, password } = body;
    if (typeof name !== 'string' || !/^[a-z0-9][a-z0-9_-]{1,31}$/i.test(name)) return fail(res, 400, 'bad_request', 'room name must be 2-32 letters, digits, _ or -');
    if (!['public', 'private'].includes(kind)) return fail(res, 400, 'bad_request', 'kind must be public or private');
    if (kind === 'private' && (typeof password !== 'string' || password.length < 4)) return fail(res, 400, 'bad_request', 'password must be at least 4 characters');
    if (db.rooms.some((r) => r.name === name)) return fail(res, 409, 'conflict', 'room exists');
    const r = { id: uuid(), name, kind, owner_id: user.id, created_at: now(), password_hash: kind === 'private' ? sha(password) : null };
    db.rooms.push(r);
    db.members.push({ room_id: r.id, user_id: user.id });
    save();
    return json(res, 201, publicRoom(r));
  }
  m = p.match(/^\/api\/rooms\/([^/]+)(\/messages|\/presence)?$/);
  if (m) {
    const room = db.rooms.find((r) => r.name === decodeURIComponent(m[1]));
    if (!room) return fail(res, 404, 'not_found', 'no such room');
    const visible = room.kind === 'public' || isMember(room, user.id);
    if (!visible) return fail(res, 403, 'forbidden', 'members only');
    if (!m[2] && req.method === 'GET') return json(res, 200, publicRoom(room));
    if (!m[2] && req.method === 'DELETE') {
      if (room.owner_id !== user.id) return fail(res, 403, 'forbidden', 'owner only');
      broadcast(room, { type: 'room_deleted', room: room.name });
      for (const c of sockets) c.rooms.delete(room.name);
      db.rooms = db.rooms.filter((r) => r !== room);
      db.messages = db.messages.filter((x) => x.room_id !== room.id);
      db.members = db.members.filter((x) => x.room_id !== room.id);
      save();
      return json(res, 204);
    }
    if (m[2] === '/presence') return json(res, 200, { users: presenceList(room) });
    if (m[2] === '/messages') {
      const q = url.searchParams;
      const limit = Math.min(100, Number(q.get('limit') || 50));
      let ms = db.messages.filter((x) => x.room_id === room.id);
      if (q.get('before')) ms = ms.filter((x) => x.seq < Number(q.get('before')));
      if (q.get('after')) ms = ms.filter((x) => x.seq > Number(q.get('after')));
      if (q.get('q')) ms = ms.filter((x) => x.body.toLowerCase().includes(q.get('q').toLowerCase()));
      const has_more = ms.length > limit;
      ms = q.get('after') ? ms.slice(0, limit) : ms.slice(-limit);
      return json(res, 200, { messages: ms.map(msgOut), has_more });
    }
  }
  return fail(res, 404, 'not_found', 'not found');
});

const wss = new WebSocketServer({ noServer: true });
server.on('upgrade', (req, socket, head) => {
  const url = new URL(req.url, 'http://x');
  if (url.pathname !== '/ws') return socket.destroy();
  const who = verify(url.searchParams.get('token'));
  if (!who) { socket.write('HTTP/1.1 401 Unauthorized\r\n\r\n'); return socket.destroy(); }
  wss.handleUpgrade(req, socket, head, (ws) => {
    const c = { ws, user: who.user, session: who.session, rooms: new Set(), connId: uuid() };
    sockets.add(c);
    sendTo(c, { type: 'hello', user: pub(c.user), session_id: c.session.id, conn_id: c.connId, server_time: now() });
    ws.on('message', (data) => {
      let f;
      try { f = JSON.parse(String(data)); } catch { return sendTo(c, { type: 'error', code: 'bad_request', message: 'invalid JSON' }); }
      onFrame(c, f);
    });
    ws.on('close', () => {
      sockets.delete(c);
      for (const name of [...c.rooms]) { const r = db.rooms.find((x) => x.name === name); if (r) exit(c, r); }
    });
  });
});

server.listen(Number(port), host, () => console.log(`mock gateway on http://${host}:${port} (state ${dbFile})`));
process.on('SIGTERM', () => {
  for (const c of sockets) sendTo(c, { type: 'reconnect', reason: 'draining', after_ms: 500 });
  setTimeout(() => process.exit(0), 600);
});
