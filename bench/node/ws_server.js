// Node `ws` peer: `node ws_server.js ADDR [--nodelay]`.
// Echoes text and binary messages on any path; on /chat relays every text
// message to every /chat client, sender included. ws already sets
// TCP_NODELAY on its sockets, so --nodelay is accepted and ignored.
'use strict';
const { WebSocketServer } = require('ws');

const [host, port] = process.argv[2].split(':');
const room = new Set();
const wss = new WebSocketServer({ host, port: Number(port) });

wss.on('connection', (ws, req) => {
  const path = new URL(req.url, 'http://x').pathname;
  if (path !== '/chat') {
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
    return;
  }
  room.add(ws);
  ws.on('close', () => room.delete(ws));
  ws.on('message', (data, isBinary) => {
    if (isBinary) return;
    for (const member of room) member.send(data, { binary: false });
  });
});

wss.on('listening', () => console.log(`node-ws listening on ${process.argv[2]}`));
