"""Serve the server's ceiling: a bare ASGI app writing each frame straight to every socket of its room.

No framework, no channel layer, no encoding: a text frame received on
/ws/<room>/ is written as it is to every socket of that room in this process,
the sender's included. Whatever a real app adds costs on top of this.

    daphne bench.ceiling:application
"""
rooms = {}  # path -> set of the ASGI send callables of its sockets


async def application(scope, receive, send):
    """Answer HTTP with 404; join websockets to the room of their path and broadcast their frames."""
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    if scope["type"] != "websocket" or (await receive())["type"] != "websocket.connect":
        return
    await send({"type": "websocket.accept"})
    room = rooms.setdefault(scope["path"], set())
    room.add(send)
    try:
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("text") is not None:
                frame = {"type": "websocket.send", "text": message["text"]}
                for member in tuple(room):
                    await member(frame)
    finally:
        room.discard(send)
