'use strict';
// What the two interop servers share: command-line parsing and the echo
// model's cutting into pieces (protocol.md s.8).

// Parse argv into a copy of `defaults`. `numeric` maps an option to
// [key, minimum]; --api-key and --verbose are always known; `usage(msg)`
// reports a bad command line and exits.
function parseArgs(argv, defaults, numeric, usage) {
  const opts = { ...defaults };
  for (let i = 0; i < argv.length; i++) {
    let name = argv[i];
    let value;
    const eq = name.indexOf('=');
    if (name.startsWith('--') && eq > 0) {
      value = name.slice(eq + 1);
      name = name.slice(0, eq);
    }
    if (name === '--verbose') { opts.verbose = true; continue; }
    if (name === '--help' || name === '-h') usage();
    if (name !== '--api-key' && !(name in numeric)) usage(`unknown option ${name}`);
    if (value === undefined) {
      if (i + 1 >= argv.length) usage(`${name} needs a value`);
      value = argv[++i];
    }
    if (name === '--api-key') { opts.apiKey = value; continue; }
    const [key, min] = numeric[name];
    if (!/^[0-9]+$/.test(value) || Number(value) < min) {
      usage(`${name} wants an integer >= ${min}, got "${value}"`);
    }
    opts[key] = Number(value);
  }
  if (opts.port > 65535) usage('--port out of range');
  return opts;
}

// Cut `text` greedily into pieces of whole code points, each at most
// `chunkBytes` UTF-8 bytes; a code point longer than that is a piece alone.
function chunk(text, chunkBytes) {
  const pieces = [];
  let cur = '';
  let curBytes = 0;
  for (const ch of text) {              // iterates code points, not UTF-16 units
    const n = Buffer.byteLength(ch, 'utf8');
    if (curBytes > 0 && curBytes + n > chunkBytes) {
      pieces.push(cur);
      cur = '';
      curBytes = 0;
    }
    cur += ch;
    curBytes += n;
  }
  if (curBytes > 0) pieces.push(cur);
  return pieces;
}

module.exports = { parseArgs, chunk };
