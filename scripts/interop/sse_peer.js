// An event-stream server (Node's standard library only) for the SSE interop
// check (scripts/interop-sse.sh); the same script as sse_peer.py, but Node
// sends the body chunked (HTTP/1.1) and in several writes, so the client's
// chunked decoding and lines split across reads are checked too.
'use strict';
const http = require('http');

const FIRST = [
  '\ufeff: a comment, then the reconnection time\n',
  'retry: 100\n',
  'id: 1\nevent: greet\ndata: hel',
  'lo\ndata: world\n\n',
  'id: 2\r',
  '\ndata: crlf\r\n\r\n',
  'id: 3\rdata: cr only\r\r',
  'data: no id: keeps 3\n\n',
  'id: 4\ndata: cut off',
];
const SECOND = ['data: resumed after 3\n\ndata: multi\ndata:\n', 'data: line\n\nevent: bye\ndata: x\n\n'];

let requests = 0;
const server = http.createServer((req, res) => {
  requests += 1;
  const last = req.headers['last-event-id'];
  let parts;
  if (req.url !== '/events' || req.headers.accept !== 'text/event-stream') {
    parts = [`data: WRONG request ${req.url}\n\n`];
  } else if (requests === 1) {
    parts = last === undefined ? FIRST : ['data: WRONG first Last-Event-ID\n\n'];
  } else if (requests === 2) {
    parts = last === '3' ? SECOND : [`data: WRONG Last-Event-ID ${last}\n\n`];
  } else {
    res.writeHead(204);
    res.end();
    return;
  }
  res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-store' });
  let i = 0;
  const next = () => {
    if (i === parts.length) {
      res.end();
      return;
    }
    res.write(parts[i++]);
    setTimeout(next, 5);
  };
  next();
});
server.listen(0, '127.0.0.1', () => {
  const { address, port } = server.address();
  console.log(`listening on http://${address}:${port}`);
});
