#!/usr/bin/env node
// Independent server of two vendor HTTP chat APIs: Anthropic's Messages API
// (POST /v1/messages) and OpenAI's Chat Completions API
// (POST /v1/chat/completions), each with streaming (server-sent events).
//
// Written ONLY from the vendors' public API documentation (as summarised in
// /work/shared/platform-notes.md, "Anthropic Messages API") and the echo
// model of /work/shared/protocol.md section 8, without reading the project's
// C client or its reference server, so that interop tests against it catch
// misreadings the two C sides share. Plain Node.js, no dependency.
//
// Usage:
//   node vendor_server.js [--port N] [--api-key KEY] [--rate-limit-every K]
//                         [--chunk-bytes N] [--token-ms N] [--verbose]
// Prints exactly "listening on 127.0.0.1:PORT" on stdout once it accepts
// connections. Diagnostics (with --verbose) go to stderr.

'use strict';

const http = require('http');
const { parseArgs, chunk } = require('./common');
const crypto = require('crypto');

const MODEL = 'parley-echo-1';                       // the only model (protocol.md s.8)
const ANTHROPIC_VERSIONS = new Set(['2023-06-01', '2023-01-01']);  // documented values
const MAX_BODY_BYTES = 32 * 1024 * 1024;             // Anthropic's documented request cap
const RETRY_AFTER_MS = 50;                           // used by --rate-limit-every

// Top-level body fields each API documents. Both APIs reject fields they do
// not know (400), so a client that sends a misspelt field fails here too.
// Documented fields other than the ones the echo model uses are accepted and
// ignored.
const ANTHROPIC_FIELDS = new Set([
  'model', 'messages', 'max_tokens', 'system', 'stream', 'metadata',
  'stop_sequences', 'temperature', 'top_p', 'top_k', 'tools', 'tool_choice',
  'thinking', 'service_tier', 'container', 'mcp_servers', 'context_management',
]);
const OPENAI_FIELDS = new Set([
  'model', 'messages', 'stream', 'stream_options', 'max_tokens',
  'max_completion_tokens', 'audio', 'frequency_penalty', 'function_call',
  'functions', 'logit_bias', 'logprobs', 'metadata', 'modalities', 'n',
  'parallel_tool_calls', 'prediction', 'presence_penalty', 'prompt_cache_key',
  'reasoning_effort', 'response_format', 'safety_identifier', 'seed',
  'service_tier', 'stop', 'store', 'temperature', 'tool_choice', 'tools',
  'top_logprobs', 'top_p', 'user', 'verbosity', 'web_search_options',
]);

// ---------------------------------------------------------------------------
// Command line
// ---------------------------------------------------------------------------

function usage(msg) {
  if (msg) process.stderr.write(`vendor_server.js: ${msg}\n`);
  process.stderr.write(
    'usage: node vendor_server.js [--port N] [--api-key KEY] [--rate-limit-every K]\n' +
    '                             [--chunk-bytes N] [--token-ms N] [--verbose]\n');
  process.exit(2);
}

const DEFAULTS = {
  port: 0,
  apiKey: process.env.PARLEY_API_KEY || '',
  rateLimitEvery: 0,   // 0 = never rate-limit
  chunkBytes: 16,
  tokenMs: 0,
  verbose: false,
};
// name -> [option key, minimum allowed value]; all numeric knobs are integers.
const NUMERIC = {
  '--port': ['port', 0],
  '--rate-limit-every': ['rateLimitEvery', 0],
  '--chunk-bytes': ['chunkBytes', 1],
  '--token-ms': ['tokenMs', 0],
};

const opts = parseArgs(process.argv.slice(2), DEFAULTS, NUMERIC, usage);

function log(...args) {
  if (opts.verbose) process.stderr.write(`[vendor] ${args.join(' ')}\n`);
}

// ---------------------------------------------------------------------------
// The echo model (protocol.md s.8)
// ---------------------------------------------------------------------------

// chunk() (common.js) cuts a reply into pieces.

/**
 * The reply to a conversation given as [{role, text}] (user/assistant only):
 * "[turn N] C" with C the last user text and N = 1 + the user turns before it.
 * Returns the pieces to send (capped at maxTokens), whether the cap cut the
 * reply, and the token counts of s.8.
 */
function echo(turns, maxTokens) {
  let last = -1;
  for (let i = 0; i < turns.length; i++) if (turns[i].role === 'user') last = i;
  const earlier = turns.slice(0, last).filter((t) => t.role === 'user').length;
  const all = chunk(`[turn ${earlier + 1}] ${turns[last].text}`, opts.chunkBytes);
  const pieces = all.slice(0, Math.min(all.length, maxTokens));
  let inBytes = 0;
  for (const t of turns) inBytes += Buffer.byteLength(t.text, 'utf8');
  return {
    pieces,
    cut: pieces.length < all.length,
    inputTokens: Math.ceil(inBytes / 4),
    outputTokens: pieces.length,
  };
}

// ---------------------------------------------------------------------------
// Helpers shared by both dialects
// ---------------------------------------------------------------------------

/** A client error with the HTTP status and the vendor's error type/code. */
class ApiError extends Error {
  constructor(status, type, message, extra = {}) {
    super(message);
    this.status = status;
    this.type = type;
    this.extra = extra;
  }
}

function isObject(v) { return typeof v === 'object' && v !== null && !Array.isArray(v); }

/** A string with no lone UTF-16 surrogate (JSON.parse lets "\ud800" through). */
function wellFormed(s) {
  if (typeof s.isWellFormed === 'function') return s.isWellFormed();
  return !/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(s);
}

/** Constant-time string comparison; no key configured means any key passes. */
function keyMatches(got) {
  if (!opts.apiKey) return true;
  if (typeof got !== 'string') return false;
  const a = Buffer.from(got, 'utf8');
  const b = Buffer.from(opts.apiKey, 'utf8');
  return a.length === b.length && crypto.timingSafeEqual(a, b);
}

function randomId(prefix) { return prefix + crypto.randomBytes(12).toString('hex'); }

/**
 * Text of a message's `content`: a string, or an array of content blocks of
 * which only {type: "text", text} is supported by the echo model; the texts
 * are concatenated. `where` names the field in error messages.
 */
function contentText(content, where, blockTypeField) {
  if (typeof content === 'string') {
    if (!wellFormed(content)) throw new ApiError(400, 'invalid_request_error', `${where}: not valid Unicode`);
    return content;
  }
  if (!Array.isArray(content)) {
    throw new ApiError(400, 'invalid_request_error', `${where}: must be a string or an array of content blocks`);
  }
  let text = '';
  content.forEach((b, j) => {
    if (!isObject(b) || typeof b[blockTypeField] !== 'string') {
      throw new ApiError(400, 'invalid_request_error', `${where}.${j}: a content block needs a string "${blockTypeField}"`);
    }
    if (b[blockTypeField] !== 'text') {
      throw new ApiError(400, 'invalid_request_error',
        `${where}.${j}: content block type "${b[blockTypeField]}" is not supported by ${MODEL}`);
    }
    if (typeof b.text !== 'string' || !wellFormed(b.text)) {
      throw new ApiError(400, 'invalid_request_error', `${where}.${j}.text: must be a valid string`);
    }
    text += b.text;
  });
  return text;
}

function positiveInt(v) { return typeof v === 'number' && Number.isInteger(v) && v >= 1; }

function sleep(ms) { return new Promise((resolve) => setTimeout(resolve, ms)); }

/** Write one chunk of a streamed answer; wait for the delay knob if set. */
async function emit(res, data) {
  if (res.destroyed) return false;
  log(`>> ${data.trimEnd()}`);
  res.write(data);
  if (opts.tokenMs > 0) await sleep(opts.tokenMs);
  return !res.destroyed;
}

// ---------------------------------------------------------------------------
// Anthropic Messages API: POST /v1/messages
// ---------------------------------------------------------------------------

const anthropic = {
  path: '/v1/messages',
  requestIdHeader: 'request-id',

  errorBody(type, message, requestId) {
    return { type: 'error', error: { type, message }, request_id: requestId };
  },

  rateLimitError() {
    return new ApiError(429, 'rate_limit_error',
      'Number of requests has exceeded your rate limit (test knob --rate-limit-every)');
  },

  /** Header checks: the key first, then the API version. */
  checkHeaders(req) {
    const key = req.headers['x-api-key'];
    if (key === undefined) {
      throw new ApiError(401, 'authentication_error', 'x-api-key header is required');
    }
    if (!keyMatches(key)) throw new ApiError(401, 'authentication_error', 'invalid x-api-key');
    const version = req.headers['anthropic-version'];
    if (version === undefined) {
      throw new ApiError(400, 'invalid_request_error', 'anthropic-version: header is required');
    }
    if (!ANTHROPIC_VERSIONS.has(version)) {
      throw new ApiError(400, 'invalid_request_error', `anthropic-version: unknown version "${version}"`);
    }
  },

  /** Validate the body; return {model, turns, maxTokens, stream}. */
  parse(body) {
    const bad = (msg) => new ApiError(400, 'invalid_request_error', msg);
    for (const k of Object.keys(body)) if (!ANTHROPIC_FIELDS.has(k)) throw bad(`${k}: Extra inputs are not permitted`);
    if (typeof body.model !== 'string') throw bad('model: Field required (a string)');
    if (body.model !== MODEL) throw new ApiError(404, 'not_found_error', `model: ${body.model}`);
    if (!positiveInt(body.max_tokens)) throw bad('max_tokens: Field required (an integer >= 1)');
    if (body.stream !== undefined && typeof body.stream !== 'boolean') throw bad('stream: must be a boolean');
    if (body.system !== undefined) contentText(body.system, 'system', 'type');
    if (!Array.isArray(body.messages) || body.messages.length === 0) {
      throw bad('messages: Field required (a non-empty array)');
    }
    const turns = body.messages.map((m, i) => {
      if (!isObject(m)) throw bad(`messages.${i}: must be an object`);
      if (m.role !== 'user' && m.role !== 'assistant') {
        throw bad(`messages.${i}.role: Input should be 'user' or 'assistant'`);
      }
      const text = contentText(m.content, `messages.${i}.content`, 'type');
      // Only a final assistant message (a prefill) may be empty.
      if (text === '' && !(m.role === 'assistant' && i === body.messages.length - 1)) {
        throw bad(`messages.${i}: all messages must have non-empty content except for the optional final assistant message`);
      }
      return { role: m.role, text };
    });
    if (turns[0].role !== 'user') throw bad('messages: first message must use the "user" role');
    return { model: body.model, turns, maxTokens: body.max_tokens, stream: body.stream === true };
  },

  reply(res, p, requestId) {
    const r = echo(p.turns, p.maxTokens);
    const stopReason = r.cut ? 'max_tokens' : 'end_turn';
    const message = {
      id: randomId('msg_'),
      type: 'message',
      role: 'assistant',
      model: p.model,
      content: [],
      stop_reason: null,
      stop_sequence: null,
      usage: { input_tokens: r.inputTokens, output_tokens: 0 },
    };
    if (!p.stream) {
      message.content = [{ type: 'text', text: r.pieces.join('') }];
      message.stop_reason = stopReason;
      message.usage.output_tokens = r.outputTokens;
      sendJson(res, 200, message, { [this.requestIdHeader]: requestId });
      return;
    }
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      [this.requestIdHeader]: requestId,
    });
    const event = (name, data) => `event: ${name}\ndata: ${JSON.stringify({ type: name, ...data })}\n\n`;
    (async () => {
      if (!await emit(res, event('message_start', { message }))) return;
      if (!await emit(res, event('content_block_start', { index: 0, content_block: { type: 'text', text: '' } }))) return;
      if (!await emit(res, event('ping', {}))) return;
      for (const text of r.pieces) {
        if (!await emit(res, event('content_block_delta', { index: 0, delta: { type: 'text_delta', text } }))) return;
      }
      if (!await emit(res, event('content_block_stop', { index: 0 }))) return;
      if (!await emit(res, event('message_delta', {
        delta: { stop_reason: stopReason, stop_sequence: null },
        usage: { output_tokens: r.outputTokens },
      }))) return;
      if (!await emit(res, event('message_stop', {}))) return;
      res.end();
    })();
  },
};

// ---------------------------------------------------------------------------
// OpenAI Chat Completions API: POST /v1/chat/completions
// ---------------------------------------------------------------------------

const openai = {
  path: '/v1/chat/completions',
  requestIdHeader: 'x-request-id',

  // ApiError.type carries the error `type`; extra.code/extra.param the rest.
  errorBody(type, message, _requestId, extra) {
    return {
      error: {
        message,
        type,
        param: extra.param === undefined ? null : extra.param,
        code: extra.code === undefined ? null : extra.code,
      },
    };
  },

  rateLimitError() {
    return new ApiError(429, 'requests',
      'Rate limit reached for requests (test knob --rate-limit-every)',
      { code: 'rate_limit_exceeded' });
  },

  checkHeaders(req) {
    const m = /^Bearer[ \t]+(.*?)[ \t]*$/i.exec(req.headers.authorization || '');
    if (!m) {
      throw new ApiError(401, 'invalid_request_error',
        "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
        { code: 'invalid_api_key' });
    }
    if (!keyMatches(m[1])) {
      throw new ApiError(401, 'invalid_request_error', 'Incorrect API key provided.',
        { code: 'invalid_api_key' });
    }
  },

  parse(body) {
    const bad = (msg, param, code = null) => new ApiError(400, 'invalid_request_error', msg, { param, code });
    for (const k of Object.keys(body)) {
      if (!OPENAI_FIELDS.has(k)) throw bad(`Unrecognized request argument supplied: ${k}`, null);
    }
    if (typeof body.model !== 'string') throw bad('you must provide a model parameter', 'model');
    if (body.model !== MODEL) {
      throw new ApiError(404, 'invalid_request_error',
        `The model \`${body.model}\` does not exist or you do not have access to it.`,
        { param: null, code: 'model_not_found' });
    }
    if (body.stream !== undefined && body.stream !== null && typeof body.stream !== 'boolean') {
      throw bad('stream must be a boolean', 'stream');
    }
    const stream = body.stream === true;
    let includeUsage = false;
    if (body.stream_options !== undefined && body.stream_options !== null) {
      if (!stream) {
        throw bad("The 'stream_options' parameter is only allowed when 'stream' is enabled.", 'stream_options');
      }
      if (!isObject(body.stream_options)) throw bad('stream_options must be an object', 'stream_options');
      const iu = body.stream_options.include_usage;
      if (iu !== undefined && typeof iu !== 'boolean') {
        throw bad('stream_options.include_usage must be a boolean', 'stream_options.include_usage');
      }
      includeUsage = iu === true;
    }
    // max_completion_tokens replaces the deprecated max_tokens; either caps the reply.
    let maxTokens = Infinity;
    for (const f of ['max_tokens', 'max_completion_tokens']) {
      if (body[f] === undefined || body[f] === null) continue;
      if (!positiveInt(body[f])) throw bad(`${f} must be an integer >= 1`, f);
      maxTokens = Math.min(maxTokens, body[f]);
    }
    if (!Array.isArray(body.messages) || body.messages.length === 0) {
      throw bad("'messages' must be a non-empty array", 'messages');
    }
    const turns = [];
    body.messages.forEach((m, i) => {
      if (!isObject(m)) throw bad(`messages[${i}] must be an object`, `messages[${i}]`);
      if (!['system', 'developer', 'user', 'assistant'].includes(m.role)) {
        throw bad(`Invalid value for 'messages[${i}].role': expected 'system', 'developer', 'user' or 'assistant'`,
          `messages[${i}].role`);
      }
      const text = contentText(m.content, `messages[${i}].content`, 'type');
      if (m.role === 'user' || m.role === 'assistant') turns.push({ role: m.role, text });
    });
    if (!turns.some((t) => t.role === 'user')) throw bad('messages must contain a user message', 'messages');
    return { model: body.model, turns, maxTokens, stream, includeUsage };
  },

  reply(res, p, requestId) {
    const r = echo(p.turns, p.maxTokens);
    const finishReason = r.cut ? 'length' : 'stop';
    const id = randomId('chatcmpl-');
    const created = Math.floor(Date.now() / 1000);
    const usage = {
      prompt_tokens: r.inputTokens,
      completion_tokens: r.outputTokens,
      total_tokens: r.inputTokens + r.outputTokens,
    };
    if (!p.stream) {
      sendJson(res, 200, {
        id, object: 'chat.completion', created, model: p.model,
        choices: [{
          index: 0,
          message: { role: 'assistant', content: r.pieces.join(''), refusal: null },
          logprobs: null,
          finish_reason: finishReason,
        }],
        usage,
      }, { [this.requestIdHeader]: requestId });
      return;
    }
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      [this.requestIdHeader]: requestId,
    });
    // With include_usage every chunk carries "usage": null except the last,
    // whose choices are empty and whose usage covers the whole request.
    const chunkOf = (choices, u) => {
      const c = { id, object: 'chat.completion.chunk', created, model: p.model, choices };
      if (p.includeUsage) c.usage = u;
      return `data: ${JSON.stringify(c)}\n\n`;
    };
    const choice = (delta, finish) => [{ index: 0, delta, logprobs: null, finish_reason: finish }];
    (async () => {
      // Like the vendor: the first chunk announces the role with empty content.
      if (!await emit(res, chunkOf(choice({ role: 'assistant', content: '', refusal: null }, null), null))) return;
      for (const content of r.pieces) {
        if (!await emit(res, chunkOf(choice({ content }, null), null))) return;
      }
      if (!await emit(res, chunkOf(choice({}, finishReason), null))) return;
      if (p.includeUsage && !await emit(res, chunkOf([], usage))) return;
      if (!await emit(res, 'data: [DONE]\n\n')) return;
      res.end();
    })();
  },
};

// ---------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------

function sendJson(res, status, obj, headers = {}) {
  const body = JSON.stringify(obj);
  log(`>> ${status} ${body.length > 300 ? body.slice(0, 300) + '...' : body}`);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
    ...headers,
  });
  res.end(body);
}

function sendError(res, dialect, err, requestId) {
  const headers = { [dialect.requestIdHeader]: requestId };
  if (err.status === 429) {
    headers['retry-after'] = '0';
    headers['retry-after-ms'] = String(RETRY_AFTER_MS);
  }
  if (err.status === 405) headers.allow = 'POST';
  sendJson(res, err.status, dialect.errorBody(err.type, err.message, requestId, err.extra), headers);
}

/** Read the whole body (also when the answer is an error, so keep-alive stays usable). */
function readBody(req) {
  return new Promise((resolve, reject) => {
    const parts = [];
    let size = 0;
    let tooLarge = false;
    req.on('data', (d) => {
      size += d.length;
      if (size > MAX_BODY_BYTES) tooLarge = true;
      else parts.push(d);
    });
    req.on('end', () => resolve(tooLarge ? null : Buffer.concat(parts)));
    req.on('error', reject);
  });
}

let requestCount = 0;   // every request received, for --rate-limit-every

async function handle(req, res) {
  const path = req.url.split('?')[0];
  const dialect = path === anthropic.path ? anthropic : path === openai.path ? openai : null;
  // Anthropic's id header for unknown paths; both ids are opaque strings.
  const requestId = randomId(dialect === openai ? 'req-' : 'req_');
  const n = ++requestCount;
  log(`<< #${n} ${req.method} ${req.url} ${JSON.stringify(req.headers)}`);
  const raw = await readBody(req);
  if (raw !== null) log(`<< #${n} body ${raw.length > 2000 ? raw.toString('utf8', 0, 2000) + '...' : raw.toString('utf8')}`);
  const d = dialect || anthropic;
  try {
    if (opts.rateLimitEvery > 0 && n % opts.rateLimitEvery === 0) throw d.rateLimitError();
    if (!dialect) throw new ApiError(404, 'not_found_error', `${req.method} ${path}: not found`);
    if (req.method !== 'POST') throw new ApiError(405, 'invalid_request_error', `${req.method} not allowed; use POST`);
    dialect.checkHeaders(req);
    if (raw === null) {
      throw dialect === anthropic
        ? new ApiError(413, 'request_too_large', `request exceeds ${MAX_BODY_BYTES} bytes`)
        : new ApiError(413, 'invalid_request_error', `request exceeds ${MAX_BODY_BYTES} bytes`);
    }
    let body;
    try {
      body = JSON.parse(raw.toString('utf8'));
    } catch (e) {
      throw new ApiError(400, 'invalid_request_error', `malformed JSON body: ${e.message}`);
    }
    if (!isObject(body)) throw new ApiError(400, 'invalid_request_error', 'the body must be a JSON object');
    dialect.reply(res, dialect.parse(body), requestId);
  } catch (e) {
    if (!(e instanceof ApiError)) {
      process.stderr.write(`[vendor] internal error: ${e.stack}\n`);
      e = dialect === openai
        ? new ApiError(500, 'server_error', 'internal server error')
        : new ApiError(500, 'api_error', 'internal server error');
    }
    sendError(res, d, e, requestId);
  }
}

const server = http.createServer((req, res) => {
  res.on('error', () => {});
  handle(req, res).catch((e) => {
    process.stderr.write(`[vendor] ${e.stack}\n`);
    res.destroy();
  });
});

function shutdown() {
  server.closeAllConnections();
  server.close();
  process.exit(0);
}
process.on('SIGINT', shutdown);
process.on('SIGTERM', shutdown);

server.on('error', (err) => {
  process.stderr.write(`vendor_server.js: ${err.message}\n`);
  process.exit(1);
});
server.listen(opts.port, '127.0.0.1', () => {
  process.stdout.write(`listening on 127.0.0.1:${server.address().port}\n`);
});
