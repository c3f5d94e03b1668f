// Socket.IO 4 comparison server for chatx-bench: rooms, "join" with an ack, and
// "msg" broadcast to the room (sender included). WebSocket transport only.
// PORT (default 3000); with REDIS_URL the @socket.io/redis-adapter joins nodes,
// its channels prefixed with SIO_KEY (unique per run: the Redis is shared).
"use strict";
const http = require("http");
const { Server } = require("socket.io");

async function main() {
  const port = Number(process.env.PORT || 3000);
  const httpServer = http.createServer();
  const io = new Server(httpServer, {
    transports: ["websocket"],
    perMessageDeflate: false,
    serveClient: false,
  });
  let clients = [];
  if (process.env.REDIS_URL) {
    const { createClient } = require("redis");
    const { createAdapter } = require("@socket.io/redis-adapter");
    const pub = createClient({ url: process.env.REDIS_URL });
    const sub = pub.duplicate();
    await Promise.all([pub.connect(), sub.connect()]);
    clients = [pub, sub];
    io.adapter(createAdapter(pub, sub, { key: process.env.SIO_KEY || "chatx-bench-sio" }));
  }
  io.on("connection", (socket) => {
    socket.on("join", (room, ack) => {
      socket.join(String(room));
      if (typeof ack === "function") ack("ok");
    });
    socket.on("msg", (room, body) => {
      io.to(String(room)).emit("msg", body);
    });
  });
  httpServer.listen(port, "127.0.0.1", () => console.log(`socket.io listening on ${port}`));
  const stop = () => {
    io.close();
    for (const c of clients) c.quit().catch(() => {});
    setTimeout(() => process.exit(0), 200).unref();
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
