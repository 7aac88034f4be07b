"""A websocket client on a bare TCP socket, for what a library client will not do: stop reading, then close."""
import base64
import json
import os
import socket
import struct


class RawSocket:
    """One client websocket whose reads and writes the test makes by hand."""

    def __init__(self, port, path, *, origin, cookie, receive_buffer=None):
        self.sock = socket.socket()
        if receive_buffer:
            # Set before connecting, so that the window the server sees stays small.
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        self.sock.settimeout(10)
        self.sock.connect(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nOrigin: {origin}\r\nCookie: {cookie}\r\n\r\n"
        )
        self.sock.sendall(request.encode())
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("the server closed during the handshake")
            self.buffer += chunk
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        self.status = int(head.split()[1])

    def _write(self, opcode, payload):
        mask = os.urandom(4)
        length = len(payload)
        if length <= 125:
            header = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
        elif length <= 0xFFFF:
            header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
        else:
            header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, length)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(header + mask + masked)

    def send_json(self, frame):
        """Send one text frame holding `frame` as JSON."""
        self._write(0x1, json.dumps(frame).encode())

    def send_close(self, code=1000):
        """Send a close frame, and nothing after it."""
        self._write(0x8, struct.pack("!H", code))

    def receive_frame(self):
        """Return (opcode, payload) of the next frame from the server."""
        while True:
            if len(self.buffer) >= 2:
                length = self.buffer[1] & 0x7F
                offset = 2
                if length == 126:
                    length, offset = (struct.unpack("!H", self.buffer[2:4])[0] if len(self.buffer) >= 4 else None), 4
                elif length == 127:
                    length, offset = (struct.unpack("!Q", self.buffer[2:10])[0] if len(self.buffer) >= 10 else None), 10
                if length is not None and len(self.buffer) >= offset + length:
                    opcode, payload = self.buffer[0] & 0x0F, self.buffer[offset:offset + length]
                    self.buffer = self.buffer[offset + length:]
                    return opcode, payload
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("the server closed the connection")
            self.buffer += chunk

    def close(self):
        self.sock.close()
