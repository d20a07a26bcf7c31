'use strict';
// The official Anthropic SDK for Node (@anthropic-ai/sdk, pinned in
// package.json) under the load of `parley bench`: N conversations at once,
// each K turns in sequence with its whole history, a new conversation
// replacing a finished one, until R requests or S seconds, every reply
// streamed (messages.create with stream: true, or --helper: the
// messages.stream() helper) and checked against the reference server's echo
// model ("[turn N] MESSAGE"). The last line of stdout is one JSON object
// with the fields of `parley bench`'s (src/cli/bench.c), so that `make
// bench` (tests/bench/matrix.sh) tabulates both alike.
//
// Transport: the SDK calls fetch. By default that is Node's own (undici
// bundled in Node, HTTP/1.1 only, a new keep-alive connection whenever
// every open one is busy: one per conversation). --http2 gives the SDK
// undici's fetch (the npm package, pinned) with an Agent that negotiates h2
// by ALPN, which only https:// endpoints can do (undici has no h2c); it
// then multiplexes the conversations over few connections. Connections are
// counted from undici's diagnostics channel, which both fetches publish.
//
// Usage: node bench_sdk.js --endpoint URL --requests R [--concurrency N]
//        [--turns K] [--duration S] [--http2] [--helper] [--cacert FILE]
// The key comes from PARLEY_API_KEY (ANTHROPIC_API_KEY first).

const diagnostics = require('node:diagnostics_channel');
const fs = require('node:fs');

const MODEL = 'parley-echo-1';
const MAX_TOKENS = 1024;
const ERRORS_SHOWN = 5;

function usage(message) {
  if (message) process.stderr.write(`bench_sdk: ${message}\n`);
  process.stderr.write('usage: node bench_sdk.js --endpoint URL --requests R [--concurrency N]\n' +
                       '       [--turns K] [--duration S] [--http2] [--helper] [--cacert FILE]\n');
  process.exit(2);
}

function parseArgs(argv) {
  const o = { concurrency: 1, turns: 1, duration: 0, http2: false, helper: false };
  const counts = { '--requests': 'requests', '--concurrency': 'concurrency', '--turns': 'turns' };
  for (let i = 0; i < argv.length; i++) {
    const name = argv[i];
    if (name === '--http2') { o.http2 = true; continue; }
    if (name === '--helper') { o.helper = true; continue; }
    if (name === '--help' || name === '-h') usage();
    if (i + 1 >= argv.length) usage(`${name} needs a value`);
    const value = argv[++i];
    if (name === '--endpoint') o.endpoint = value;
    else if (name === '--cacert') o.cacert = value;
    else if (name === '--duration') {
      o.duration = Number(value);
      if (!(o.duration > 0)) usage(`--duration needs seconds above 0, got "${value}"`);
    } else if (name in counts) {
      if (!/^[1-9][0-9]*$/.test(value)) usage(`${name} needs an integer >= 1, got "${value}"`);
      o[counts[name]] = Number(value);
    } else usage(`unknown option ${name}`);
  }
  if (!o.endpoint) usage('--endpoint is required');
  if (!o.requests) usage('--requests is required');
  if (!/^https?:\/\//.test(o.endpoint)) usage('--endpoint needs http:// or https://');
  if (o.http2 && !o.endpoint.startsWith('https://'))
    usage('--http2 needs an https:// endpoint (undici negotiates h2 by ALPN only)');
  return o;
}

// The turn and its expected reply, as bench_echo.c makes them.
function message(conversation, turn) {
  return `conversation ${conversation}, turn ${turn}: how is it going?`;
}

function percentile(sorted, p) {
  if (!sorted.length) return null;
  const i = Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1);
  return sorted[Math.max(0, i)];
}

const ms3 = (v) => (v === null ? null : Math.round(v * 1000) / 1000);

// The SDK's fetch: Node's, or undici's over an h2-capable Agent.
function transport(o) {
  const ca = o.cacert ? fs.readFileSync(o.cacert) : undefined;
  if (!o.http2) {
    // Node's fetch trusts NODE_EXTRA_CA_CERTS only, read at start-up.
    if (ca && !process.env.NODE_EXTRA_CA_CERTS)
      usage('--cacert without --http2: set NODE_EXTRA_CA_CERTS to the file instead');
    return {};
  }
  const undici = require('undici');
  // HTTP/2 by ALPN, undici's defaults otherwise: what a user wanting it writes.
  const dispatcher = new undici.Agent({ allowH2: true, connect: { ca } });
  return { fetch: undici.fetch, fetchOptions: { dispatcher } };
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const Anthropic = require('@anthropic-ai/sdk');
  const apiKey = process.env.ANTHROPIC_API_KEY || process.env.PARLEY_API_KEY || 'none';
  const client = new Anthropic({ apiKey, baseURL: o.endpoint, ...transport(o) });

  // Connections opened, by the protocol they speak (ALPN over TLS).
  let connections = 0;
  const protocols = {};
  diagnostics.subscribe('undici:client:connected', ({ socket }) => {
    connections++;
    const p = (socket && socket.alpnProtocol) || 'http/1.1';
    protocols[p] = (protocols[p] || 0) + 1;
  });

  const latencies = [];
  const ttfts = [];
  let claimed = 0, errors = 0, mismatches = 0, shown = 0, conversations = 0;
  let firstSend = 0, lastEnd = 0;
  const deadline = o.duration > 0 ? performance.now() + o.duration * 1000 : Infinity;
  const claim = () => claimed < o.requests && performance.now() < deadline && ++claimed;
  const show = (what) => {
    if (shown++ < ERRORS_SHOWN) process.stderr.write(`bench_sdk: ${what}\n`);
  };

  // One request: the history and the new turn; the streamed text, or throws.
  async function ask(messages, onFirst) {
    let text = '';
    if (o.helper) {
      const stream = client.messages.stream({ model: MODEL, max_tokens: MAX_TOKENS, messages });
      stream.on('text', (delta) => { if (!text) onFirst(); text += delta; });
      await stream.finalMessage();
      return text;
    }
    const stream = await client.messages.create({ model: MODEL, max_tokens: MAX_TOKENS,
                                                  messages, stream: true });
    for await (const event of stream) {
      if (event.type === 'content_block_delta' && event.delta.type === 'text_delta') {
        if (!text) onFirst();
        text += event.delta.text;
      }
    }
    return text;
  }

  // A slot: conversations one after the other until no request may start.
  async function slot() {
    while (claim()) {
      const conversation = ++conversations;
      const messages = [];
      for (let turn = 1; ; turn++) {
        const content = message(conversation, turn);
        const expected = `[turn ${turn}] ${content}`;
        messages.push({ role: 'user', content });
        const sent = performance.now();
        if (!firstSend) firstSend = sent;
        let first = 0;
        let ok = false;
        try {
          const text = await ask(messages, () => { first = performance.now(); });
          if (text === expected) ok = true;
          else {
            mismatches++;
            show(`reply differs: got ${JSON.stringify(text)}, expected ${JSON.stringify(expected)}`);
          }
          messages.push({ role: 'assistant', content: text });
        } catch (err) {
          errors++;
          show(`request failed: ${err && err.message ? err.message : err}`);
        }
        const ended = performance.now();
        lastEnd = ended;
        if (ok) {
          latencies.push(ended - sent);
          ttfts.push(first - sent);
        }
        // A failed turn ends its conversation: the history is incomplete.
        if (!ok || turn >= o.turns || !claim()) break;
      }
    }
  }

  const cpu0 = process.cpuUsage();
  await Promise.all(Array.from({ length: o.concurrency }, slot));
  const cpu = process.cpuUsage(cpu0);

  latencies.sort((a, b) => a - b);
  ttfts.sort((a, b) => a - b);
  const seconds = (lastEnd - firstSend) / 1000;
  const mean = latencies.length ? latencies.reduce((a, b) => a + b, 0) / latencies.length : null;
  const result = {
    requests: claimed,
    errors,
    mismatches,
    retries: null, // the SDK retries by itself (max 2) and does not say
    connections,
    rps: seconds > 0 ? Math.round((claimed / seconds) * 10) / 10 : 0,
    lat_ms_mean: ms3(mean),
    lat_ms_p50: ms3(percentile(latencies, 0.5)),
    lat_ms_p90: ms3(percentile(latencies, 0.9)),
    lat_ms_p99: ms3(percentile(latencies, 0.99)),
    lat_ms_max: ms3(latencies.length ? latencies[latencies.length - 1] : null),
    ttft_ms_p50: ms3(percentile(ttfts, 0.5)),
    ttft_ms_p99: ms3(percentile(ttfts, 0.99)),
    cpu_s: Math.round((cpu.user + cpu.system) / 1000) / 1000,
    max_rss_mb: Math.round(process.resourceUsage().maxRSS / 102.4) / 10,
    transport: o.http2 ? 'undici fetch, h2 by ALPN' : 'node fetch, HTTP/1.1',
    protocols,
    sdk: require('@anthropic-ai/sdk/version').VERSION,
    node: process.version,
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.exitCode = errors || mismatches ? 1 : 0;
}

main().catch((err) => {
  process.stderr.write(`bench_sdk: ${err && err.stack ? err.stack : err}\n`);
  process.exit(1);
});
