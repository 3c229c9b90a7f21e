// Socket.IO chat server for the benchmark's `redis` group, written as
// Socket.IO's docs write it ("Get started: chat", "Rooms", "Redis adapter"):
// every socket joins the room "chat"; a "chat" event from any socket is
// emitted to the whole room (sender included). With `--redis URL` the
// instances share the room through @socket.io/redis-adapter (node-redis
// clients, as in the adapter's README). Library defaults otherwise.
//
//   node bench/socketio/chat_server.js 127.0.0.1:PORT [--redis redis://127.0.0.1:6379/]
//
// Prints "listening on ADDR" when ready.
"use strict";
const { createServer } = require("http");
const { Server } = require("socket.io");
const { createAdapter } = require("@socket.io/redis-adapter");
const { createClient } = require("redis");

async function main() {
  const args = process.argv.slice(2);
  const [host, port] = (args[0] || "127.0.0.1:3000").split(":");
  const at = args.indexOf("--redis");
  const httpServer = createServer();
  const options = {};
  if (at >= 0) {
    const pubClient = createClient({ url: args[at + 1] });
    const subClient = pubClient.duplicate();
    await Promise.all([pubClient.connect(), subClient.connect()]);
    options.adapter = createAdapter(pubClient, subClient);
  }
  const io = new Server(httpServer, options);
  io.on("connection", (socket) => {
    socket.join("chat");
    socket.on("chat", (msg) => {
      io.to("chat").emit("chat", msg);
    });
  });
  httpServer.listen(Number(port), host, () => {
    console.log(`listening on ${host}:${port}`);
  });
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
