// Serve the Node peer of python -m bench: the websocket-shootout's broadcast server on ws.
//
// Like bench/ceiling.py: a text frame received on /ws/<room>/ is sent as it is to
// every socket of that room, the sender's included.
//
//     node bench/peers/node/server.js PORT
"use strict";
const http = require("node:http");
const { WebSocketServer } = require("ws");

const port = Number(process.argv[2]);
const rooms = new Map(); // path -> Set of the sockets of that room

const server = http.createServer((request, response) => {
  response.writeHead(404).end();
});
// The project's limit on frames (CHAT_MAX_FRAME_BYTES), as the other apps run with.
const wss = new WebSocketServer({ server, maxPayload: 65536, perMessageDeflate: false });

wss.on("connection", (socket, request) => {
  const path = request.url.split("?")[0];
  if (!rooms.has(path)) rooms.set(path, new Set());
  const room = rooms.get(path);
  room.add(socket);
  socket.on("message", (data, isBinary) => {
    if (isBinary) return;
    for (const member of room) member.send(data, { binary: false });
  });
  socket.on("close", () => {
    room.delete(socket);
    if (room.size === 0) rooms.delete(path);
  });
});

server.listen(port, "127.0.0.1");
process.on("SIGTERM", () => process.exit(0));
