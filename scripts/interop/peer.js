// Interop peer on Node `ws`, for scripts/interop.sh.
//
//   NODE_PATH=.ci-work/node/node_modules node peer.js server    # prints "listening on ws://127.0.0.1:PORT"
//   NODE_PATH=.ci-work/node/node_modules node peer.js client URL  # checks a wsportal server
//
// The server speaks the command protocol described in examples/interop.rs
// (echo, cmd:protocol, cmd:header, cmd:ping, cmd:close, cmd:lastclose,
// cmd:frag). The client runs the same checks as the Python peer's client.
// Every wait is bounded.
'use strict';

const fs = require('fs');
const https = require('https');
const { WebSocket, WebSocketServer } = require('ws');

// With INTEROP_CERT and INTEROP_KEY (PEM files) the server serves wss://; with
// INTEROP_CERT the client trusts that certificate for wss:// URLs.
const CERT = process.env.INTEROP_CERT;
const KEY = process.env.INTEROP_KEY;

const WAIT_MS = 10000;
// INTEROP_DEFLATE=default: permessage-deflate (threshold 0, so every message
// is compressed); =tuned: other windows and no context takeover. Either way
// the extension must be agreed, or the peer fails.
const DEFLATE = process.env.INTEROP_DEFLATE || '';
const deflateOptions = (server) => {
  if (!DEFLATE) return false;
  if (DEFLATE === 'tuned') {
    return server
      ? { threshold: 0, serverNoContextTakeover: true, clientNoContextTakeover: true, serverMaxWindowBits: 10, clientMaxWindowBits: 9 }
      : { threshold: 0, serverNoContextTakeover: true, clientNoContextTakeover: true, serverMaxWindowBits: 11, clientMaxWindowBits: true };
  }
  return { threshold: 0 };
};
const PROTOCOLS = ['chat.v2', 'chat.v1'];
let lastClose = 'none';

const fragText = (size) => Array.from({ length: size }, (_, i) => String.fromCharCode(97 + (i % 26))).join('');
const fragBinary = (size) => Buffer.from(Array.from({ length: size }, (_, i) => i % 251));

function chunks(data, n) {
  const step = Math.ceil(data.length / n);
  const out = [];
  for (let i = 0; i < data.length; i += step) out.push(data.slice(i, i + step));
  return out;
}

function sendFragmented(ws, parts, binary) {
  parts.forEach((p, i) => ws.send(p, { binary, fin: i === parts.length - 1 }));
}

function runServer() {
  const options = {
    maxPayload: 64 << 20,
    perMessageDeflate: deflateOptions(true),
    handleProtocols: (offered) => PROTOCOLS.find((p) => offered.has(p)) || false,
  };
  let wss;
  if (CERT && KEY) {
    const server = https.createServer({ cert: fs.readFileSync(CERT), key: fs.readFileSync(KEY) });
    wss = new WebSocketServer({ ...options, server });
    server.listen(0, '127.0.0.1', () => console.log(`listening on wss://127.0.0.1:${server.address().port}`));
  } else {
    wss = new WebSocketServer({ ...options, host: '127.0.0.1', port: 0 });
    wss.on('listening', () => console.log(`listening on ws://127.0.0.1:${wss.address().port}`));
  }
  wss.on('connection', (ws, req) => {
    if (DEFLATE && !ws.extensions.includes('permessage-deflate')) {
      ws.close(1011, 'permessage-deflate was not agreed');
      return;
    }
    ws.on('message', (data, isBinary) => {
      const text = isBinary ? null : data.toString('utf8');
      if (text === null || !text.startsWith('cmd:')) {
        ws.send(isBinary ? data : text, { binary: isBinary });
        return;
      }
      const cmd = text.slice(4);
      const sp = cmd.indexOf(' ');
      const name = sp < 0 ? cmd : cmd.slice(0, sp);
      const arg = sp < 0 ? '' : cmd.slice(sp + 1);
      if (name === 'protocol') ws.send(ws.protocol || 'none');
      else if (name === 'header') ws.send(req.headers[arg.toLowerCase()] || '-');
      else if (name === 'ping') {
        ws.once('pong', () => ws.send('pong ok'));
        ws.ping(Buffer.from('srv-ping'));
      } else if (name === 'close') {
        const i = arg.indexOf(' ');
        ws.close(Number(i < 0 ? arg : arg.slice(0, i)), i < 0 ? '' : arg.slice(i + 1));
      } else if (name === 'lastclose') ws.send(lastClose);
      else if (name === 'frag') {
        const [n, size] = arg.split(' ').map(Number);
        sendFragmented(ws, chunks(fragText(size), n), false);
        sendFragmented(ws, chunks(fragBinary(size), n), true);
      } else ws.send(`unknown command ${name}`);
    });
    ws.on('close', (code, reason) => {
      lastClose = `${code} ${reason.toString('utf8')}`;
    });
  });
}

function fail(msg) {
  console.error(`node client: FAIL: ${msg}`);
  process.exit(1);
}

function show(v) {
  if ((typeof v === 'string' || Buffer.isBuffer(v)) && v.length >= 80) return `${typeof v} of ${v.length}`;
  return JSON.stringify(v);
}

function expect(what, got, want) {
  const same = Buffer.isBuffer(want) ? Buffer.isBuffer(got) && got.equals(want) : JSON.stringify(got) === JSON.stringify(want);
  if (!same) fail(`${what}: expected ${show(want)}, got ${show(got)}`);
  console.log(`ok: ${what}`);
}

// A connection whose messages and close are awaited one at a time, bounded.
function open(url) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, ['nope', 'chat.v1'], {
      headers: { 'X-Interop': 'yes' },
      handshakeTimeout: WAIT_MS,
      maxPayload: 64 << 20,
      perMessageDeflate: deflateOptions(false),
      ...(url.startsWith('wss:') && CERT ? { ca: fs.readFileSync(CERT) } : {}),
    });
    const queue = [];
    const waiters = [];
    let closed = null;
    const push = (item) => (waiters.length ? waiters.shift()(item) : queue.push(item));
    ws.on('message', (data, isBinary) => push({ data: isBinary ? data : data.toString('utf8') }));
    ws.on('close', (code, reason) => {
      closed = { code, reason: reason.toString('utf8') };
      push({ closed });
    });
    ws.on('error', reject);
    ws.next = () => new Promise((res, rej) => {
      const t = setTimeout(() => rej(new Error('no message in time')), WAIT_MS);
      const take = (item) => { clearTimeout(t); res(item); };
      if (queue.length) take(queue.shift()); else waiters.push(take);
    });
    ws.recv = async () => {
      const item = await ws.next();
      if (item.closed) fail(`closed ${JSON.stringify(item.closed)} while waiting for a message`);
      return item.data;
    };
    ws.closed = () => ws.next().then((item) => (item.closed ? item.closed : fail('a message instead of a close')));
    ws.on('open', () => resolve(ws));
  });
}

async function runClient(url) {
  let ws = await open(url);
  expect('subprotocol agreed', ws.protocol, 'chat.v1');
  if (DEFLATE) expect(`permessage-deflate agreed (${DEFLATE})`, ws.extensions.includes('permessage-deflate'), true);
  ws.send('cmd:protocol');
  expect('the server agrees on the subprotocol', await ws.recv(), 'chat.v1');
  ws.send('cmd:header X-Interop');
  expect('the server saw our extra header', await ws.recv(), 'yes');
  const big = Buffer.alloc(4 << 20);
  for (let i = 0; i < big.length; i++) big[i] = i % 253;
  for (const msg of ['héllo wörld ✓', '', Buffer.alloc(0), Buffer.from(Array.from({ length: 256 }, (_, i) => i)), 'x'.repeat(70000), big]) {
    ws.send(msg, { binary: Buffer.isBuffer(msg) });
    expect(`echo of a ${Buffer.isBuffer(msg) ? 'binary' : 'text'} message of ${msg.length}`, await ws.recv(), msg);
  }
  const text = fragText(100000);
  sendFragmented(ws, chunks(text, 10), false);
  expect('echo of a text message sent in 10 fragments', await ws.recv(), text);
  const data = fragBinary(100000);
  sendFragmented(ws, chunks(data, 7), true);
  expect('echo of a binary message sent in 7 fragments', await ws.recv(), data);
  const pong = new Promise((res, rej) => {
    const t = setTimeout(() => rej(new Error('no pong in time')), WAIT_MS);
    ws.once('pong', (p) => { clearTimeout(t); res(p.toString()); });
  });
  ws.ping(Buffer.from('client-ping'));
  expect('our ping was answered', await pong, 'client-ping');
  ws.send('cmd:ping');
  expect("we answered the server's ping", await ws.recv(), 'pong ok');
  ws.close(4001, 'interop bye');
  // The server echoes the code (RFC 6455, 5.5.1); the reason is optional.
  expect('the server echoed our close code', (await ws.closed()).code, 4001);

  ws = await open(url);
  ws.send('cmd:lastclose');
  expect('the server saw our close code and reason', await ws.recv(), '4001 interop bye');
  ws.send('cmd:close 4002 server bye');
  expect("the server's close code and reason", await ws.closed(), { code: 4002, reason: 'server bye' });
  console.log(`node client: all checks passed against ${url}`);
}

const [mode, url] = process.argv.slice(2);
if (mode === 'server') runServer();
else if (mode === 'client' && url) runClient(url).catch((e) => fail(e.message));
else fail('usage: peer.js server | peer.js client URL');
