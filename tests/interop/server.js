#!/usr/bin/env node
// Independent server of the parley streaming protocol, version 1.
//
// Written ONLY from the wire contract (/work/shared/protocol.md), without
// reading the project's C client or its reference server, so that interop
// tests against it can catch misreadings the two C sides share. Section
// numbers in the comments refer to that page.
//
// Usage:
//   node server.js [--port N] [--api-key KEY] [--drop-after-texts N]
//                  [--rate-limit-every K] [--stall-every K] [--token-ms N]
//                  [--chunk-bytes N] [--latency-ms N] [--verbose]
// Prints exactly "listening on 127.0.0.1:PORT" on stdout once it accepts
// connections. Diagnostics (with --verbose) go to stderr.

'use strict';

const http = require('http');
const { parseArgs, chunk } = require('./common');
const crypto = require('crypto');
const { WebSocketServer, WebSocket } = require('ws');

// ---------------------------------------------------------------------------
// Constants of the contract
// ---------------------------------------------------------------------------

const SUBPROTOCOL = 'parley.v1';          // the only subprotocol offered (s.1)
const PATH = '/v1/stream';                // the only path served (s.1)
const MAX_MESSAGE_BYTES = 1024 * 1024;    // announced in hello (s.2, s.4.1)
const HEARTBEAT_S = 30;                   // announced in hello (s.2)
const IDEMPOTENCY_WINDOW_S = 600;         // announced in hello (s.6)
const MODEL = 'parley-echo-1';            // the only (and default) model (s.8)
const SERVER_NAME = 'parley-interop-node/0.1.0';
const MAX_ID = (1n << 63n) - 1n;          // id range [1, 2^63-1] (s.3)
const SESSION_RE = /^[A-Za-z0-9._:-]{1,128}$/;   // ASCII only, so chars = bytes
const ID_RE = /^[1-9][0-9]{0,18}$/;       // canonical decimal, at most 19 digits
const RETRY_AFTER_MS = 50;                // used by --rate-limit-every

// ws cannot stream a frame to us piecewise: it buffers a whole message before
// handing it over. Messages above MAX_MESSAGE_BYTES but below this cap get the
// contract's `too_large` error and the connection stays; above this cap ws
// itself closes the connection with 1009. This bounds memory per message.
const HARD_FRAME_CAP = 16 * 1024 * 1024;

// ---------------------------------------------------------------------------
// Command line
// ---------------------------------------------------------------------------

function usage(msg) {
  if (msg) process.stderr.write(`server.js: ${msg}\n`);
  process.stderr.write(
    'usage: node server.js [--port N] [--api-key KEY] [--drop-after-texts N]\n' +
    '                      [--rate-limit-every K] [--stall-every K] [--token-ms N]\n' +
    '                      [--chunk-bytes N] [--latency-ms N] [--verbose]\n');
  process.exit(2);
}

const DEFAULTS = {
  port: 0,
  apiKey: process.env.PARLEY_API_KEY || '',
  dropAfterTexts: 0,   // 0 = never drop
  rateLimitEvery: 0,   // 0 = never rate-limit
  stallEvery: 0,       // 0 = never stall a connection
  tokenMs: 0,
  latencyMs: 0,
  chunkBytes: 16,
  verbose: false,
};
// name -> [option key, minimum allowed value]; all numeric knobs are integers.
const NUMERIC = {
  '--port': ['port', 0],
  '--drop-after-texts': ['dropAfterTexts', 0],
  '--rate-limit-every': ['rateLimitEvery', 0],
  '--stall-every': ['stallEvery', 0],
  '--token-ms': ['tokenMs', 0],
  '--latency-ms': ['latencyMs', 0],
  '--chunk-bytes': ['chunkBytes', 1],
};

const opts = parseArgs(process.argv.slice(2), DEFAULTS, NUMERIC, usage);

function log(...args) {
  if (opts.verbose) process.stderr.write(`[interop] ${args.join(' ')}\n`);
}

// ---------------------------------------------------------------------------
// The echo model (s.8)
// ---------------------------------------------------------------------------

// chunk() (common.js) cuts a reply into pieces.

// ---------------------------------------------------------------------------
// Server-wide state: requests are global (not per connection) so that a
// repeat on any connection can resume them (s.6).
// ---------------------------------------------------------------------------

/** id -> Request, for every acked id still inside the idempotency window. */
const requests = new Map();
/** Ids already answered once with rate_limited; their retry is never limited. */
const rateLimitedOnce = new Set();
/** Count of distinct new requests seen, for --rate-limit-every. */
let newRequestCount = 0;
/** Count of new requests acked, for --stall-every. */
let ackedCount = 0;
let nextConnNo = 1;

/**
 * One acked request and its generated reply. The reply is generated once and
 * kept; whoever currently owns the id (the latest request or repeat, s.6)
 * receives it from its own cursor.
 */
class Request {
  constructor(id, session, plan, cut, inputTokens) {
    this.id = id;
    this.session = session;
    this.plan = plan;                 // pieces that will be generated
    this.cut = cut;                   // true when max_tokens shortened the reply
    this.inputTokens = inputTokens;
    this.generated = [];              // pieces generated so far (seq = index)
    this.finished = false;
    this.stopReason = null;
    this.timer = null;                // pending generation step
    this.owner = null;                // {conn, cursor, terminalSent} or null
  }

  doneMessage() {
    return {
      type: 'done', id: this.id, session: this.session,
      stop_reason: this.stopReason,
      seq_end: this.generated.length,
      usage: { input_tokens: this.inputTokens, output_tokens: this.generated.length },
    };
  }
}

/** Make `conn` the owner of `req` from seq `resumeFrom`, ack, and catch up. */
function attach(req, conn, resumeFrom) {
  if (req.owner && req.owner.conn !== conn) req.owner.conn.owned.delete(req);
  req.owner = { conn, cursor: resumeFrom, terminalSent: false };
  conn.owned.add(req);
  conn.send({ type: 'ack', id: req.id });
  flush(req);
}

/** Send the owner every generated piece it has not had yet, then the terminal. */
function flush(req) {
  const o = req.owner;
  if (!o) return;
  while (o.cursor < req.generated.length) {
    const seq = o.cursor++;
    const ok = o.conn.send({
      type: 'text', id: req.id, session: req.session, seq, content: req.generated[seq],
    });
    if (!ok) return;                  // connection gone or being dropped
  }
  if (req.finished && !o.terminalSent) {
    o.terminalSent = true;
    o.conn.send(req.doneMessage());
  }
}

/** Produce the next piece; schedule the one after (or run on when token_ms is 0). */
function step(req) {
  req.timer = null;
  while (!req.finished) {
    req.generated.push(req.plan[req.generated.length]);
    if (req.generated.length === req.plan.length) {
      finish(req, req.cut ? 'max_tokens' : 'end_turn');
      return;
    }
    flush(req);
    if (opts.tokenMs > 0) {
      req.timer = setTimeout(step, opts.tokenMs, req);
      return;
    }
  }
}

/** End a request: deliver the terminal and start its idempotency window. */
function finish(req, stopReason) {
  if (req.timer) clearTimeout(req.timer);
  req.timer = null;
  req.finished = true;
  req.stopReason = stopReason;
  flush(req);
  // Remember the id (and its reply) for the window after the terminal (s.6).
  setTimeout(() => {
    if (requests.get(req.id) === req) requests.delete(req.id);
    if (req.owner) req.owner.conn.owned.delete(req);
  }, IDEMPOTENCY_WINDOW_S * 1000).unref();
}

// ---------------------------------------------------------------------------
// Validation of client messages (s.3, s.5)
// ---------------------------------------------------------------------------

class InvalidRequest extends Error {}

/** Optional field: null counts as absent (s.3). */
function present(v) { return v !== undefined && v !== null; }

function isInt(v) { return typeof v === 'number' && Number.isInteger(v); }

/** A string with no lone UTF-16 surrogate (JSON.parse lets "\ud800" through). */
function wellFormed(s) {
  if (typeof s.isWellFormed === 'function') return s.isWellFormed();
  return !/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(s);
}

function checkId(id) {
  if (typeof id !== 'string') throw new InvalidRequest('id must be a string');
  if (!ID_RE.test(id) || BigInt(id) > MAX_ID) {
    throw new InvalidRequest('id must be a canonical decimal string in [1, 2^63-1]');
  }
}

/** Validate a `message`; return its normalized fields or throw InvalidRequest. */
function parseMessage(m) {
  checkId(m.id);
  if (typeof m.session !== 'string' || !SESSION_RE.test(m.session)) {
    throw new InvalidRequest('session must be 1-128 bytes of [A-Za-z0-9._:-]');
  }
  if (typeof m.content !== 'string') throw new InvalidRequest('content must be a string');
  if (!wellFormed(m.content)) throw new InvalidRequest('content is not valid Unicode');
  if (!isInt(m.timestamp)) throw new InvalidRequest('timestamp must be an integer');

  let history = [];
  if (present(m.history)) {
    if (!Array.isArray(m.history)) throw new InvalidRequest('history must be an array');
    history = m.history.map((h, i) => {
      if (typeof h !== 'object' || h === null || Array.isArray(h)) {
        throw new InvalidRequest(`history[${i}] must be an object`);
      }
      if (h.role !== 'user' && h.role !== 'assistant') {
        throw new InvalidRequest(`history[${i}].role must be "user" or "assistant"`);
      }
      if (typeof h.content !== 'string') {
        throw new InvalidRequest(`history[${i}].content must be a string`);
      }
      if (!wellFormed(h.content)) {
        throw new InvalidRequest(`history[${i}].content is not valid Unicode`);
      }
      return h;
    });
  }
  if (present(m.model)) {
    if (typeof m.model !== 'string') throw new InvalidRequest('model must be a string');
    if (m.model !== MODEL) throw new InvalidRequest(`unknown model "${m.model}"`);
  }
  let maxTokens = Infinity;
  if (present(m.max_tokens)) {
    if (!isInt(m.max_tokens) || m.max_tokens < 1) {
      throw new InvalidRequest('max_tokens must be an integer >= 1');
    }
    maxTokens = m.max_tokens;
  }
  let resumeFrom = 0;
  if (present(m.resume_from)) {
    if (!isInt(m.resume_from) || m.resume_from < 0) {
      throw new InvalidRequest('resume_from must be an integer >= 0');
    }
    resumeFrom = m.resume_from;
  }
  return { id: m.id, session: m.session, content: m.content, history, maxTokens, resumeFrom };
}

// ---------------------------------------------------------------------------
// Per-connection handling
// ---------------------------------------------------------------------------

class Conn {
  constructor(ws, remote) {
    this.ws = ws;
    this.no = nextConnNo++;
    this.remote = remote;
    this.owned = new Set();       // requests this connection currently owns
    this.textsSent = 0;           // for --drop-after-texts
    this.dropping = false;        // set once a drop is scheduled: send nothing more
    this.stalled = false;         // --stall-every: sends and reads nothing more
    this.lastSeen = Date.now();   // for the 2 x heartbeat_s idle close (s.2)
  }

  /**
   * Send one message as a text frame. Returns false (and sends nothing) when
   * the connection is closed or about to be dropped.
   */
  send(obj) {
    if (this.dropping || this.stalled || this.ws.readyState !== WebSocket.OPEN) return false;
    const data = JSON.stringify(obj);
    log(`#${this.no} >> ${data.length > 300 ? data.slice(0, 300) + '...' : data}`);
    if (obj.type === 'text' && opts.dropAfterTexts > 0 &&
        ++this.textsSent >= opts.dropAfterTexts) {
      // Fault knob: after N text messages, kill the TCP connection without a
      // close frame. Destroy only once this last frame reached the kernel, so
      // the client deterministically sees exactly N texts on this connection.
      this.dropping = true;
      this.ws.send(data, () => {
        log(`#${this.no} dropping connection after ${this.textsSent} texts`);
        this.ws.terminate();      // socket.destroy(): no close handshake
      });
      return false;
    }
    this.ws.send(data);
    return true;
  }

  /**
   * Fault knob: the connection goes silent, as behind a dead NAT mapping or a
   * frozen load balancer. The socket stays open but is no longer read (so
   * pings get no pong) and nothing more is written on it. Requests it owns
   * keep generating; a repeat on another connection takes them over (s.6).
   */
  stall() {
    log(`#${this.no} stalling: nothing more is sent or read`);
    this.stalled = true;
    this.ws.pause();
  }

  /** Send an `error`; `id` is included only when given (s.4.5). */
  sendError(code, content, id, extra) {
    const msg = { type: 'error' };
    if (typeof id === 'string') msg.id = id;
    msg.code = code;
    msg.content = content;
    Object.assign(msg, extra);
    this.send(msg);
  }

  onData(data, isBinary) {
    this.lastSeen = Date.now();
    if (data.length > MAX_MESSAGE_BYTES) {
      log(`#${this.no} << (${data.length} bytes, too large)`);
      this.sendError('too_large', `message of ${data.length} bytes exceeds max_message_bytes ${MAX_MESSAGE_BYTES}`);
      return;
    }
    if (isBinary) {
      // Only parley.v1 is offered, so binary frames are never valid (s.2).
      log(`#${this.no} << (binary frame, ${data.length} bytes)`);
      this.sendError('invalid_request', 'binary frames are not allowed on parley.v1');
      return;
    }
    const text = data.toString('utf8');   // ws already closed with 1007 on bad UTF-8
    log(`#${this.no} << ${text.length > 300 ? text.slice(0, 300) + '...' : text}`);
    let m;
    try {
      m = JSON.parse(text);
    } catch (e) {
      this.sendError('invalid_request', `malformed JSON: ${e.message}`);
      return;
    }
    if (typeof m !== 'object' || m === null || Array.isArray(m)) {
      this.sendError('invalid_request', 'a message must be a JSON object');
      return;
    }
    // From here the message parsed: echo `id` whenever it is a string (s.3).
    try {
      if (typeof m.type !== 'string') throw new InvalidRequest('type must be a string');
      if (m.type === 'message') this.onMessage(parseMessage(m));
      else if (m.type === 'cancel') this.onCancel(m);
      else throw new InvalidRequest(`unknown type "${m.type}"`);
    } catch (e) {
      if (!(e instanceof InvalidRequest)) {
        // A fault of this server before any ack: retryable `internal` (s.4.5).
        process.stderr.write(`[interop] internal error: ${e.stack}\n`);
        this.sendError('internal', 'internal server error', m.id);
        return;
      }
      this.sendError('invalid_request', e.message, m.id);
    }
  }

  /** A `message` (s.5.1), with idempotency and resume (s.6). */
  onMessage(msg) {
    const known = requests.get(msg.id);
    if (known) {
      // Repeat of an acked id: no new generation; this connection takes over
      // from resume_from, the earlier owner gets nothing more.
      attach(known, this, msg.resumeFrom);
      return;
    }
    if (msg.resumeFrom > 0) {
      this.sendError('resume_failed', `unknown request id ${msg.id}: cannot resume`, msg.id);
      return;
    }
    // A new request. Fault knob: every K-th distinct new id is rate-limited
    // once; its retry (same id) is then served normally.
    if (opts.rateLimitEvery > 0 && !rateLimitedOnce.has(msg.id)) {
      newRequestCount++;
      if (newRequestCount % opts.rateLimitEvery === 0) {
        rateLimitedOnce.add(msg.id);
        this.sendError('rate_limited', 'rate limited (test knob), retry with the same id',
          msg.id, { retry_after_ms: RETRY_AFTER_MS });
        return;                       // errors instead of ack record nothing
      }
    }

    // Model parley-echo-1 (s.8).
    const turn = msg.history.filter((h) => h.role === 'user').length + 1;
    const reply = `[turn ${turn}] ${msg.content}`;
    const all = chunk(reply, opts.chunkBytes);
    const plan = all.slice(0, Math.min(all.length, msg.maxTokens));
    let inBytes = Buffer.byteLength(msg.content, 'utf8');
    for (const h of msg.history) inBytes += Buffer.byteLength(h.content, 'utf8');
    const req = new Request(msg.id, msg.session, plan, plan.length < all.length,
      Math.ceil(inBytes / 4));
    requests.set(req.id, req);
    // Fault knob: every K-th acked new request silences its connection
    // before the ack goes out.
    if (opts.stallEvery > 0 && ++ackedCount % opts.stallEvery === 0) this.stall();
    attach(req, this, 0);             // ack before any text (s.4.2)
    if (opts.latencyMs > 0) req.timer = setTimeout(step, opts.latencyMs, req);
    else step(req);
  }

  /** A `cancel` (s.5.2): ends the request wherever it runs; unknown/finished ignored. */
  onCancel(m) {
    checkId(m.id);
    const req = requests.get(m.id);
    if (req && !req.finished) finish(req, 'cancelled');
  }

  onClose(code, reason) {
    log(`#${this.no} closed (${code}${reason && reason.length ? ' ' + reason : ''})`);
    // Generation goes on; a repeat on another connection can resume it (s.6).
    for (const req of this.owned) if (req.owner && req.owner.conn === this) req.owner = null;
    this.owned.clear();
    conns.delete(this);
  }
}

const conns = new Set();

// ---------------------------------------------------------------------------
// HTTP and upgrade (s.1)
// ---------------------------------------------------------------------------

function pathOf(url) {
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
}

/** Bearer check in constant time; no key configured means no check. */
function authorized(req) {
  if (!opts.apiKey) return true;
  const m = /^Bearer[ \t]+(.*?)[ \t]*$/i.exec(req.headers.authorization || '');
  if (!m) return false;
  const got = Buffer.from(m[1], 'utf8');
  const want = Buffer.from(opts.apiKey, 'utf8');
  return got.length === want.length && crypto.timingSafeEqual(got, want);
}

/** Write a complete HTTP response on a raw (not yet upgraded) socket and close it. */
function rejectUpgrade(socket, status, reason, contentType, body, extraHeaders = []) {
  const lines = [
    `HTTP/1.1 ${status} ${reason}`,
    `Content-Type: ${contentType}`,
    `Content-Length: ${Buffer.byteLength(body)}`,
    'Connection: close',
    ...extraHeaders,
  ];
  socket.end(lines.join('\r\n') + '\r\n\r\n' + body);
}

const httpServer = http.createServer((req, res) => {
  // Plain HTTP (no upgrade): the stream path wants an upgrade, others 404.
  if (pathOf(req.url) === PATH) {
    res.writeHead(426, { 'Content-Type': 'text/plain', Upgrade: 'websocket' });
    res.end('upgrade required\n');
  } else {
    res.writeHead(404, { 'Content-Type': 'text/plain' });
    res.end('not found\n');
  }
});

const wss = new WebSocketServer({
  noServer: true,
  perMessageDeflate: false,           // not part of the contract
  maxPayload: HARD_FRAME_CAP,
  // Offer only parley.v1: select it when offered, otherwise select none
  // (no Sec-WebSocket-Protocol in the 101), which also means parley.v1.
  handleProtocols: (offered) => (offered.has(SUBPROTOCOL) ? SUBPROTOCOL : false),
});

httpServer.on('upgrade', (req, socket, head) => {
  socket.on('error', () => {});
  log(`upgrade ${req.url} protocols=[${req.headers['sec-websocket-protocol'] || ''}]` +
      ` ua=${req.headers['user-agent'] || '-'}`);
  if (pathOf(req.url) !== PATH) {
    rejectUpgrade(socket, 404, 'Not Found', 'text/plain', 'not found\n');
    return;
  }
  if (!authorized(req)) {
    log('upgrade rejected: 401');
    const body = JSON.stringify({
      type: 'error', code: 'unauthorized', content: 'missing or invalid API key',
    });
    rejectUpgrade(socket, 401, 'Unauthorized', 'application/json', body,
      ['WWW-Authenticate: Bearer']);
    return;
  }
  wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
});

wss.on('connection', (ws, req) => {
  const conn = new Conn(ws, `${req.socket.remoteAddress}:${req.socket.remotePort}`);
  conns.add(conn);
  log(`#${conn.no} open from ${conn.remote}, subprotocol "${ws.protocol}"`);
  ws.on('message', (data, isBinary) => conn.onData(data, isBinary));
  ws.on('ping', () => { conn.lastSeen = Date.now(); });
  ws.on('pong', () => { conn.lastSeen = Date.now(); });
  ws.on('close', (code, reason) => conn.onClose(code, reason.toString()));
  ws.on('error', (err) => log(`#${conn.no} error: ${err.message}`));
  // The first message on every connection (s.4.1).
  conn.send({
    type: 'hello',
    protocol: ws.protocol || SUBPROTOCOL,
    max_message_bytes: MAX_MESSAGE_BYTES,
    heartbeat_s: HEARTBEAT_S,
    idempotency_window_s: IDEMPOTENCY_WINDOW_S,
    server: SERVER_NAME,
  });
});

// The server may close a connection on which it received nothing for
// 2 x heartbeat_s (s.2).
setInterval(() => {
  const limit = Date.now() - 2 * HEARTBEAT_S * 1000;
  for (const c of conns) {
    if (c.lastSeen < limit && c.ws.readyState === WebSocket.OPEN) {
      log(`#${c.no} idle for 2 x heartbeat_s, closing`);
      c.ws.close(1001, 'idle');
    }
  }
}, 1000).unref();

function shutdown() {
  for (const c of conns) c.ws.terminate();
  httpServer.close();
  process.exit(0);
}
process.on('SIGINT', shutdown);
process.on('SIGTERM', shutdown);

httpServer.on('error', (err) => {
  process.stderr.write(`server.js: ${err.message}\n`);
  process.exit(1);
});
httpServer.listen(opts.port, '127.0.0.1', () => {
  process.stdout.write(`listening on 127.0.0.1:${httpServer.address().port}\n`);
});
