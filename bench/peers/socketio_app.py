"""Serve the python-socketio peer: a room broadcast, as a socket.io chat server is usually written.

A client names its room in the connect packet's auth ({"room": ...}); each
"message" event is emitted to every socket of that room, the sender's included.

    uvicorn bench.peers.socketio_app:application
"""
import socketio

# The other apps' limits: frames up to 64 KiB, a ping every 20 s answered within 20 s.
sio = socketio.AsyncServer(async_mode="asgi", max_http_buffer_size=65536, ping_interval=20, ping_timeout=20)
application = socketio.ASGIApp(sio)


@sio.event
async def connect(sid, environ, auth):
    """Join the socket to the room its auth names."""
    room = (auth or {}).get("room")
    if not isinstance(room, str):
        raise socketio.exceptions.ConnectionRefusedError("name a room in the auth")
    await sio.save_session(sid, {"room": room})
    await sio.enter_room(sid, room)


@sio.event
async def message(sid, data):
    """Emit the message to every socket of the sender's room."""
    session = await sio.get_session(sid)
    await sio.emit("message", data, room=session["room"])
