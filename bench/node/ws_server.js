// Node `ws` peer: `node ws_server.js ADDR [--nodelay] [--deflate]`.
// Written as ws's own README writes it ("Simple server", "Server broadcast"),
// with the library's defaults (no permessage-deflate on the server):
// echoes text and binary messages on any path; on /chat relays every text
// message to every open /chat client, sender included (the README's
// broadcast loop, over a set of /chat clients instead of wss.clients, since
// echo clients share the server). Nothing is done about slow clients, as
// in the README: ws buffers for them without limit. ws already sets
// TCP_NODELAY on its sockets, so --nodelay is accepted and ignored.
//
// --deflate (the benchmark's deflate group): permessage-deflate on, with
// the settings wsportal and Python `websockets` use by default, so that
// the rows compare the same work: 12-bit windows both ways (ws's default
// is 15 for the server's side and whatever the client offers for its
// own), context takeover both ways (ws's default too), level 6 (zlib's
// default, ws's too) and every message compressed (ws's default
// `threshold` leaves messages under 1 KiB uncompressed).
'use strict';
const { WebSocketServer, WebSocket } = require('ws');

const args = process.argv.slice(2);
const addr = args.find((a) => !a.startsWith('-'));
const [host, port] = addr.split(':');
const room = new Set();
const perMessageDeflate = args.includes('--deflate')
  ? { serverMaxWindowBits: 12, clientMaxWindowBits: 12, threshold: 0 }
  : false;
const wss = new WebSocketServer({ host, port: Number(port), perMessageDeflate });

wss.on('connection', (ws, req) => {
  ws.on('error', console.error);
  const path = new URL(req.url, 'http://x').pathname;
  if (path !== '/chat') {
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
    return;
  }
  room.add(ws);
  ws.on('close', () => room.delete(ws));
  ws.on('message', (data, isBinary) => {
    if (isBinary) return;
    for (const client of room) {
      if (client.readyState === WebSocket.OPEN) client.send(data, { binary: false });
    }
  });
});

wss.on('listening', () => console.log(`node-ws listening on ${addr}`));
