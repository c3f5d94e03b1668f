// ChatX WebSocket client that survives dropped connections.
//
// It owns the socket and nothing else of the UI: it reconnects with exponential
// backoff and full jitter, re-joins every room it was asked to keep with `since` =
// the last seq it delivered for that room, and re-sends every unacknowledged `send`
// with its original `client_msg_id` (the server deduplicates on it, so a message is
// never created twice). The UI listens to its events (see `emit` calls).
//
// Events (CustomEvent, payload in `detail`):
//   state      {state: 'connecting'|'connected'|'reconnecting'|'offline'|'closed', attempt, retryAt, reason}
//   hello      the server's hello frame
//   joined     {frame, resumed}          a room was joined (first time or after a reconnect)
//   join-error {room, error}             a kept room could not be re-joined
//   message    message frame (deduplicated by seq per room, in seq order per socket)
//   outbox     {entry}                   a pending send changed (status pending|sent|failed, or acked)
//   presence | typing | receipt | room_deleted   the server frames as they are
//   revoked    {code, reason}            the session was revoked (close 4001): do not reconnect
//   closed-by-server {code, reason}

const CLOSE_REVOKED = 4001;
const CLOSE_UNAUTHORIZED = 4003;

export class ResilientClient extends EventTarget {
  /**
   * @param {object} opts
   * @param {() => Promise<string>} opts.url       builds the ws URL with a fresh access token
   * @param {() => Promise<boolean>} [opts.authCheck] called after repeated failed connects
   *        and on close 4003 (token refused); resolves false when the credentials are dead
   *        (the client then stops). It is the place to refresh the access token.
   * @param {number} [opts.baseDelayMs]  first backoff step (default 500 ms)
   * @param {number} [opts.maxDelayMs]   backoff cap (default 30 s)
   * @param {number} [opts.ackTimeoutMs] a send without ack for this long is marked failed
   * @param {number} [opts.pingIntervalMs]
   */
  constructor(opts) {
    super();
    this.opts = {
      baseDelayMs: 500,
      maxDelayMs: 30_000,
      ackTimeoutMs: 15_000,
      requestTimeoutMs: 15_000,
      pingIntervalMs: 25_000,
      pongTimeoutMs: 10_000,
      ...opts,
    };
    this.ws = null;
    this.state = 'idle';
    this.attempt = 0;
    this.stopped = true;
    this.user = null;
    this.refCounter = 0;
    /** ref -> {resolve, reject, timer} */
    this.pending = new Map();
    /** room name -> {name, password, lastSeq, joined, waiters: [{resolve, reject}]} */
    this.rooms = new Map();
    /** client_msg_id -> {client_msg_id, room, body, status, error, createdAt} (insertion order = send order) */
    this.outbox = new Map();
    /** send ref -> client_msg_id */
    this.sendRefs = new Map();
    this.readSent = new Map();
    this.timers = { reconnect: null, ping: null, pong: null, notice: null };
    this.noticeReconnectAt = null;
    this.helloAt = 0;
    this.failuresWithoutHello = 0;

    this._onOnline = () => { if (!this.stopped) this.reconnectNow(); };
    this._onOffline = () => { if (!this.stopped && this.state !== 'connected') this._setState('offline'); };
  }

  // ---- lifecycle -------------------------------------------------------------

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    globalThis.addEventListener?.('online', this._onOnline);
    globalThis.addEventListener?.('offline', this._onOffline);
    this._connect();
  }

  /** Close for good (sign-out). Forget rooms and the outbox. */
  stop() {
    this.stopped = true;
    globalThis.removeEventListener?.('online', this._onOnline);
    globalThis.removeEventListener?.('offline', this._onOffline);
    this._clearTimers();
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      ws.onclose = ws.onmessage = ws.onerror = ws.onopen = null;
      try { ws.close(1000, 'bye'); } catch { /* already closed */ }
    }
    this._failPending({ code: 'closed', message: 'Client stopped' });
    this.rooms.clear();
    this.outbox.clear();
    this._setState('closed');
  }

  /** Skip the backoff wait (a "retry now" button, the browser coming back online). */
  reconnectNow() {
    if (this.stopped) return;
    if (this.ws && (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING)) return;
    clearTimeout(this.timers.reconnect);
    this.timers.reconnect = null;
    this._connect();
  }

  get connected() {
    return this.state === 'connected';
  }

  async _connect() {
    if (this.stopped) return;
    this.timers.reconnect = null;
    this._setState(this.attempt === 0 && !this.everConnected ? 'connecting' : 'reconnecting', { connectingNow: true });
    let url;
    try {
      url = await this.opts.url();
    } catch (err) {
      if (err && err.fatal) return this._fatal(err);
      return this._scheduleReconnect(String(err?.message || err));
    }
    if (this.stopped) return;
    let ws;
    try {
      ws = new WebSocket(url);
    } catch (err) {
      return this._scheduleReconnect(String(err?.message || err));
    }
    this.ws = ws;
    let gotHello = false;
    ws.onmessage = (ev) => {
      let frame;
      try { frame = JSON.parse(ev.data); } catch { return; }
      if (frame.type === 'hello') gotHello = true;
      this._onFrame(frame);
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this._onClose(ev, gotHello);
    };
    ws.onerror = () => { /* onclose follows */ };
  }

  _onClose(ev, gotHello) {
    clearInterval(this.timers.ping);
    clearTimeout(this.timers.pong);
    clearTimeout(this.timers.notice);
    for (const room of this.rooms.values()) room.joined = false;
    for (const entry of this.outbox.values()) {
      clearTimeout(entry.ackTimer);
      if (entry.status === 'sent') this._updateEntry(entry, 'pending');
    }
    this.sendRefs.clear();
    this._failPending({ code: 'disconnected', message: 'Connection lost' });
    if (this.stopped) return;
    if (ev.code === CLOSE_REVOKED) {
      this.stopped = true;
      this._setState('closed', { reason: 'revoked' });
      this.emit('revoked', { code: ev.code, reason: ev.reason });
      return;
    }
    if (ev.code === CLOSE_UNAUTHORIZED) this.authSuspect = true;
    if (gotHello) {
      this.failuresWithoutHello = 0;
      // A connection that lived a while starts the backoff from scratch.
      if (Date.now() - this.helloAt > 10_000) this.attempt = 0;
    } else {
      this.failuresWithoutHello += 1;
    }
    this.emit('closed-by-server', { code: ev.code, reason: ev.reason });
    if (this.noticeReconnectAt != null) {
      const wait = Math.max(0, this.noticeReconnectAt - Date.now());
      this.noticeReconnectAt = null;
      this._scheduleReconnect('server asked to reconnect', wait);
    } else {
      this._scheduleReconnect(ev.reason || `closed (${ev.code})`);
    }
  }

  async _scheduleReconnect(reason, fixedDelay) {
    if (this.stopped) return;
    // Repeated failures before `hello`: maybe the token is dead rather than the server.
    if ((this.failuresWithoutHello >= 2 || this.authSuspect) && this.opts.authCheck && fixedDelay === undefined) {
      this.authSuspect = false;
      try {
        const ok = await this.opts.authCheck();
        if (!ok) return this._fatal({ code: 'unauthorized', message: 'Session expired' });
      } catch { /* network error: the server is down, keep trying */ }
      if (this.stopped) return;
    }
    let delay = fixedDelay;
    if (delay === undefined) {
      // Exponential backoff with full jitter: uniform in [0, min(cap, base * 2^attempt)].
      const ceiling = Math.min(this.opts.maxDelayMs, this.opts.baseDelayMs * 2 ** this.attempt);
      delay = Math.random() * ceiling;
      this.attempt += 1;
    }
    const offline = globalThis.navigator && navigator.onLine === false;
    this._setState(offline ? 'offline' : 'reconnecting', { retryAt: Date.now() + delay, reason });
    clearTimeout(this.timers.reconnect);
    this.timers.reconnect = setTimeout(() => this._connect(), delay);
  }

  _fatal(err) {
    this.stopped = true;
    this._clearTimers();
    this._setState('closed', { reason: err.code || 'fatal' });
    this.emit('revoked', { code: 0, reason: err.message || 'Session expired' });
  }

  _clearTimers() {
    clearTimeout(this.timers.reconnect);
    clearInterval(this.timers.ping);
    clearTimeout(this.timers.pong);
    clearTimeout(this.timers.notice);
    for (const entry of this.outbox.values()) clearTimeout(entry.ackTimer);
  }

  _setState(state, extra = {}) {
    this.state = state;
    this.emit('state', { state, attempt: this.attempt, ...extra });
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  // ---- frames ---------------------------------------------------------------

  _raw(frame) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  _nextRef(prefix = 'r') {
    this.refCounter += 1;
    return `${prefix}${this.refCounter}`;
  }

  /** Send a frame with a ref and wait for the reply that echoes it. */
  request(frame, timeoutMs = this.opts.requestTimeoutMs) {
    return new Promise((resolve, reject) => {
      if (this.state !== 'connected') {
        reject(Object.assign(new Error('Not connected'), { code: 'disconnected' }));
        return;
      }
      const ref = this._nextRef();
      const timer = setTimeout(() => {
        this.pending.delete(ref);
        reject(Object.assign(new Error('No reply from server'), { code: 'timeout' }));
      }, timeoutMs);
      this.pending.set(ref, { resolve, reject, timer });
      this._raw({ ...frame, ref });
    });
  }

  _failPending(err) {
    for (const [ref, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(Object.assign(new Error(err.message), { code: err.code }));
      this.pending.delete(ref);
    }
  }

  _onFrame(frame) {
    this._heard();
    switch (frame.type) {
      case 'hello': return this._onHello(frame);
      case 'ack': return this._onAck(frame);
      case 'message': return this._onMessage(frame);
      case 'reconnect': return this._onReconnectNotice(frame);
      case 'error':
        if (frame.ref && this.sendRefs.has(frame.ref)) return this._onSendError(frame);
        break;
      default:
        break;
    }
    if (frame.ref && this.pending.has(frame.ref)) {
      const p = this.pending.get(frame.ref);
      this.pending.delete(frame.ref);
      clearTimeout(p.timer);
      if (frame.type === 'error') {
        p.reject(Object.assign(new Error(frame.message || frame.code), frame));
      } else {
        p.resolve(frame);
      }
      return;
    }
    if (['presence', 'typing', 'receipt', 'room_deleted'].includes(frame.type)) {
      if (frame.type === 'room_deleted') this._forgetRoom(frame.room);
      this.emit(frame.type, frame);
    } else if (frame.type === 'error') {
      this.emit('server-error', frame);
    }
  }

  _onHello(frame) {
    this.user = frame.user;
    this.helloAt = Date.now();
    this.everConnected = true;
    this.failuresWithoutHello = 0;
    this._setState('connected');
    this.emit('hello', frame);
    this._startHeartbeat();
    // Resume every kept room; queued sends go out once their room is joined.
    for (const name of this.rooms.keys()) this._joinNow(name);
  }

  _startHeartbeat() {
    clearInterval(this.timers.ping);
    this.timers.ping = setInterval(() => {
      if (!this._raw({ type: 'ping' })) return;
      clearTimeout(this.timers.pong);
      this.timers.pong = setTimeout(() => {
        // Nothing heard since the ping: the connection is dead (half-open). Drop it.
        const ws = this.ws;
        if (!ws) return;
        this.ws = null;
        try { ws.close(4000, 'heartbeat timeout'); } catch { /* ignore */ }
        this._onClose({ code: 4000, reason: 'heartbeat timeout' }, true);
      }, this.opts.pongTimeoutMs);
    }, this.opts.pingIntervalMs);
  }

  _heard() {
    clearTimeout(this.timers.pong);
  }

  _onReconnectNotice(frame) {
    const after = Math.max(0, Number(frame.after_ms) || 0);
    this.noticeReconnectAt = Date.now() + after;
    this.emit('notice', frame);
    clearTimeout(this.timers.notice);
    // The server closes the socket itself; if it does not, close it at the deadline.
    this.timers.notice = setTimeout(() => {
      if (this.ws) {
        const ws = this.ws;
        try { ws.close(1000, 'reconnect requested'); } catch { /* ignore */ }
        this.ws = null;
        this._onClose({ code: 1000, reason: frame.reason || 'reconnect requested' }, true);
      }
    }, after);
  }

  // ---- rooms ---------------------------------------------------------------

  /**
   * Join a room and keep it joined across reconnects. Resolves with the `joined` frame.
   * While disconnected the join waits for the next connection.
   */
  join(name, { password, since } = {}) {
    let room = this.rooms.get(name);
    if (!room) {
      room = { name, password: undefined, lastSeq: null, joined: false, waiters: [] };
      this.rooms.set(name, room);
    }
    if (password !== undefined) room.password = password;
    if (since !== undefined) room.lastSeq = since;
    const p = new Promise((resolve, reject) => room.waiters.push({ resolve, reject }));
    if (this.state === 'connected') this._joinNow(name);
    return p;
  }

  isJoined(name) {
    return !!this.rooms.get(name)?.joined;
  }

  /** Highest seq delivered to the app for this room (the `since` of the next resume). */
  lastSeq(name) {
    return this.rooms.get(name)?.lastSeq ?? null;
  }

  async _joinNow(name) {
    const room = this.rooms.get(name);
    if (!room || room.joining) return;
    room.joining = true;
    const frame = { type: 'join', room: name };
    if (room.password) frame.password = room.password;
    const resumed = room.lastSeq != null;
    if (resumed) frame.since = room.lastSeq;
    let reply;
    try {
      reply = await this.request(frame);
    } catch (error) {
      room.joining = false;
      if (error.code === 'disconnected' || error.code === 'timeout') {
        if (error.code === 'timeout') { try { this.ws?.close(4000, 'join timeout'); } catch { /* ignore */ } }
        return; // retried on the next connection
      }
      if (error.code === 'rate_limited') {
        setTimeout(() => { if (this.rooms.has(name) && this.connected) this._joinNow(name); }, error.retry_after_ms || 1000);
        return;
      }
      // The room is gone, or we may no longer enter it: stop keeping it.
      this.rooms.delete(name);
      for (const entry of [...this.outbox.values()]) {
        if (entry.room === name && entry.status !== 'failed') this._updateEntry(entry, 'failed', error.message || error.code);
      }
      const waiters = room.waiters.splice(0);
      for (const w of waiters) w.reject(error);
      if (!waiters.length) this.emit('join-error', { room: name, error });
      return;
    }
    room.joining = false;
    if (this.rooms.get(name) !== room) return; // left meanwhile
    room.joined = true;
    // `recovered` messages are delivered as ordinary messages (deduplicated by seq).
    const recovered = Array.isArray(reply.recovered) ? reply.recovered : [];
    this.emit('joined', { frame: reply, resumed });
    for (const m of recovered) this._onMessage({ type: 'message', room: name, ...m });
    if (!resumed || room.lastSeq == null || (reply.last_seq ?? 0) > room.lastSeq) {
      // A gap the server did not replay (or a fresh join): the UI fills it over REST.
      if (resumed && (reply.last_seq ?? 0) > (room.lastSeq ?? 0)) {
        this.emit('gap', { room: name, after: room.lastSeq, upTo: reply.last_seq });
      }
      room.lastSeq = Math.max(room.lastSeq ?? 0, reply.last_seq ?? 0);
    }
    for (const w of room.waiters.splice(0)) w.resolve(reply);
    this._flushOutbox(name);
  }

  leave(name) {
    const room = this.rooms.get(name);
    this.rooms.delete(name);
    if (room) for (const w of room.waiters.splice(0)) w.reject(Object.assign(new Error('left'), { code: 'left' }));
    for (const entry of [...this.outbox.values()]) {
      if (entry.room === name) this.discard(entry.client_msg_id);
    }
    if (this.connected) return this.request({ type: 'leave', room: name }).catch(() => null);
    return Promise.resolve(null);
  }

  _forgetRoom(name) {
    this.rooms.delete(name);
    for (const entry of [...this.outbox.values()]) {
      if (entry.room === name) {
        clearTimeout(entry.ackTimer);
        this.outbox.delete(entry.client_msg_id);
        this.emit('outbox', { entry: { ...entry, status: 'discarded' } });
      }
    }
  }

  history(room, { before, limit = 50 } = {}) {
    const frame = { type: 'history', room, limit };
    if (before != null) frame.before = before;
    return this.request(frame);
  }

  typing(room) {
    if (this.isJoined(room)) this._raw({ type: 'typing', room });
  }

  read(room, seq) {
    if (!this.isJoined(room) || !(seq > (this.readSent.get(room) ?? 0))) return;
    if (this._raw({ type: 'read', room, seq })) this.readSent.set(room, seq);
  }

  // ---- messages ---------------------------------------------------------------

  _onMessage(frame) {
    const room = this.rooms.get(frame.room);
    if (frame.client_msg_id && this.outbox.has(frame.client_msg_id) && frame.user?.id === this.user?.id) {
      // Our own message came back (another socket of ours, or a replay after a lost ack).
      const entry = this.outbox.get(frame.client_msg_id);
      this._acked(entry, { id: frame.id, seq: frame.seq, ts: frame.ts });
    }
    if (room && typeof frame.seq === 'number') {
      room.lastSeq = Math.max(room.lastSeq ?? 0, frame.seq);
    }
    this.emit('message', frame);
  }

  /** Queue a message; it is sent now or as soon as the room is joined again. */
  send(room, body, clientMsgId = crypto.randomUUID()) {
    const entry = { client_msg_id: clientMsgId, room, body, status: 'pending', error: null, createdAt: Date.now() };
    this.outbox.set(clientMsgId, entry);
    this.emit('outbox', { entry });
    this._transmit(entry);
    return entry;
  }

  /** Put back sends that survived a page reload (same client_msg_id, so no duplicates). */
  restoreOutbox(entries) {
    for (const e of entries || []) {
      if (!e?.client_msg_id || this.outbox.has(e.client_msg_id)) continue;
      const entry = { ...e, status: e.status === 'failed' ? 'failed' : 'pending' };
      this.outbox.set(entry.client_msg_id, entry);
      this.emit('outbox', { entry });
    }
  }

  retry(clientMsgId) {
    const entry = this.outbox.get(clientMsgId);
    if (!entry) return;
    entry.retries = 0;
    this._updateEntry(entry, 'pending');
    if (!this.rooms.has(entry.room)) {
      this.join(entry.room).catch(() => {});
    }
    this._transmit(entry);
  }

  discard(clientMsgId) {
    const entry = this.outbox.get(clientMsgId);
    if (!entry) return;
    clearTimeout(entry.ackTimer);
    this.outbox.delete(clientMsgId);
    this.emit('outbox', { entry: { ...entry, status: 'discarded' } });
  }

  _flushOutbox(room) {
    for (const entry of this.outbox.values()) {
      if (entry.room === room && entry.status === 'pending') this._transmit(entry);
    }
  }

  _transmit(entry) {
    if (entry.status !== 'pending' || !this.connected || !this.isJoined(entry.room)) return;
    const ref = this._nextRef('s');
    this.sendRefs.set(ref, entry.client_msg_id);
    entry.ref = ref;
    if (!this._raw({ type: 'send', room: entry.room, body: entry.body, client_msg_id: entry.client_msg_id, ref })) return;
    this._updateEntry(entry, 'sent');
    clearTimeout(entry.ackTimer);
    entry.ackTimer = setTimeout(() => {
      if (this.outbox.get(entry.client_msg_id) === entry && entry.status === 'sent') {
        this._updateEntry(entry, 'failed', 'No confirmation from the server');
      }
    }, this.opts.ackTimeoutMs);
  }

  _onAck(frame) {
    const cmid = frame.client_msg_id || this.sendRefs.get(frame.ref);
    if (frame.ref) this.sendRefs.delete(frame.ref);
    const entry = cmid && this.outbox.get(cmid);
    if (entry) this._acked(entry, frame);
  }

  _acked(entry, { id, seq, ts }) {
    clearTimeout(entry.ackTimer);
    this.outbox.delete(entry.client_msg_id);
    this.emit('outbox', { entry: { ...entry, status: 'acked', id, seq, ts } });
  }

  _onSendError(frame) {
    const cmid = this.sendRefs.get(frame.ref);
    this.sendRefs.delete(frame.ref);
    const entry = this.outbox.get(cmid);
    if (!entry) return;
    clearTimeout(entry.ackTimer);
    const transient = frame.code === 'rate_limited' || frame.code === 'unavailable';
    entry.retries = (entry.retries || 0) + 1;
    if (transient && entry.retries <= 5) {
      this._updateEntry(entry, 'pending', frame.message);
      const wait = frame.retry_after_ms ?? Math.min(8000, 500 * 2 ** entry.retries) * Math.random();
      setTimeout(() => this._transmit(entry), wait);
      return;
    }
    this._updateEntry(entry, 'failed', frame.message || frame.code, frame.code);
  }

  _updateEntry(entry, status, error = null, code = null) {
    entry.status = status;
    entry.error = error;
    entry.errorCode = code;
    this.emit('outbox', { entry });
  }
}

/** Full-jitter exponential backoff delay, exported for tests and the UI countdown. */
export function backoffDelay(attempt, baseMs = 500, capMs = 30_000, random = Math.random) {
  return random() * Math.min(capMs, baseMs * 2 ** attempt);
}
