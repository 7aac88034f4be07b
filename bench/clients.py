"""Drive one process's share of the websocket clients: connect, send stamped messages, time every delivery.

The coordinator (bench.run) starts several of these processes, because one
Python process receives at most about 17,000 frames a second, and steps them
through the phases with commands over a pipe: ramp, quiet, go, close.
"""
import asyncio
import collections
import json
import re
import resource
import time

import websockets.asyncio.client
from websockets.exceptions import ConnectionClosed

# Every benchmark body reads bench|<round>|<sender>|<seq>|<intended send time, ns>, whatever app wraps it.
STAMP = re.compile(r"bench\|(\d+)\|(\d+)\|(\d+)\|(\d+)")
DUPLICATE_GRACE_SECONDS = 0.3
# The socket.io peer's protocol: engine.io v4 packets spoken over the raw websocket, cheaper than socket.io's client.
SOCKETIO = "socketio"


def body(round_id, sender, seq, stamp_ns):
    """Return a message body that identifies it and carries its intended send time."""
    return f"bench|{round_id}|{sender}|{seq}|{stamp_ns}"


def page_origin(url):
    """Return the Origin of the page that would open the websocket `url` (the server checks scheme, host and port)."""
    scheme, _, rest = url.partition("://")
    return f"{'https' if scheme == 'wss' else 'http'}://{rest.split('/', 1)[0]}"


class Client:
    """One websocket client: its spec, its connection and what it received in the current round."""

    def __init__(self, spec):
        self.index, self.url, self.cookie, self.room = spec["index"], spec["url"], spec["cookie"], spec["room"]
        self.slug = spec.get("slug")  # the room a v2 socket subscribes to
        self.sender = spec.get("sender")  # the sender number, or None for a listener
        self.ws = None
        self.subscribed = False
        self.seen = set()
        self.expected = 0


class Worker:
    """The clients of one process and the measurements of the current round."""

    def __init__(self, job):
        self.job = job
        self.clients = [Client(spec) for spec in job["clients"]]
        self.reset(round_id=None, expected={})
        self.last_frame = time.monotonic()
        self.closed = 0
        self.readers = []

    def reset(self, round_id, expected):
        """Start a round: forget the last one's receptions."""
        self.round = round_id
        self.latencies_us, self.duplicates, self.received, self.last_receive_ns = [], 0, 0, 0
        for client in self.clients:
            client.seen = set()
            # A client that could not connect is counted as a connect failure, not as lost messages.
            client.expected = expected.get(str(client.room), 0) if client.ws is not None else 0
        self.expected_total = sum(client.expected for client in self.clients)
        self.done = asyncio.Event()
        if self.expected_total == 0:
            self.done.set()

    async def connect(self, client):
        """Open one client's socket as the app's page would, then start reading; return (total, subscribe) seconds."""
        # Protocol 1 sends the room's welcome; protocol 2 a hello, then the room's view once subscribed;
        # the references send nothing.
        started = time.monotonic()
        headers = {"Cookie": f"sessionid={client.cookie}"} if client.cookie else {}
        ws = await websockets.asyncio.client.connect(
            client.url, origin=page_origin(client.url), additional_headers=headers, proxy=None,
            open_timeout=60, ping_interval=None, compression=None, max_queue=None,
            local_addr=(self.job["source"], 0),
        )
        subscribe_seconds = None
        client.ws = ws
        try:
            if self.job["protocol"] == 1:
                await frame_of(ws, "welcome")
            elif self.job["protocol"] == 2:
                await frame_of(ws, "hello")
                if not self.job.get("subscribe", True):
                    return time.monotonic() - started, None  # the subscribe command does the rest
                subscribe_seconds, _ = await self.subscribe(client)
                return time.monotonic() - started, subscribe_seconds
            elif self.job["protocol"] == SOCKETIO:
                await socketio_open(ws, client.slug)
        except BaseException:
            client.ws = None
            await ws.close()
            raise
        self.readers.append(asyncio.create_task(self.read(client)))
        return time.monotonic() - started, subscribe_seconds

    async def subscribe(self, client):
        """Subscribe a v2 client's open socket to its room, then start reading; return (seconds, None)."""
        started = time.monotonic()
        await client.ws.send(json.dumps({"type": "subscribe", "room": client.slug, "request_id": "view"}))
        await frame_of(client.ws, "subscribed")
        client.subscribed = True
        self.readers.append(asyncio.create_task(self.read(client)))
        return time.monotonic() - started, None

    async def ramp(self, indexes):
        """Connect the clients with `indexes` (all when None), a bounded number at a time; return the figures."""
        chosen = [c for c in self.clients if c.ws is None and (indexes is None or c.index in indexes)]
        return await self.each(chosen, self.connect)

    async def subscribe_all(self):
        """Subscribe every open v2 socket not subscribed yet, a bounded number at a time; return the figures."""
        return await self.each([c for c in self.clients if c.ws is not None and not c.subscribed], self.subscribe)

    async def each(self, chosen, step):
        """Run `step` for each of `chosen`, at most job["handshakes"] at once; return counts, errors and times."""
        started = time.monotonic()
        gate = asyncio.Semaphore(self.job["handshakes"])

        async def one(client):
            async with gate:
                return await step(client)

        results = await asyncio.gather(*(one(c) for c in chosen), return_exceptions=True)
        errors = [repr(r) for r in results if isinstance(r, BaseException)]
        timed = [r for r in results if not isinstance(r, BaseException)]
        return {"connected": len(chosen) - len(errors), "failed": len(errors), "errors": errors[:3],
                "seconds": time.monotonic() - started, "handshake_ms": [total * 1000 for total, _ in timed],
                "subscribe_ms": [sub * 1000 for _, sub in timed if sub is not None]}

    async def read(self, client):
        """Record every benchmark frame of the current round this client receives, until its socket closes."""
        try:
            async for text in client.ws:
                self.last_frame = time.monotonic()
                if text == "2" and self.job["protocol"] == SOCKETIO:
                    await client.ws.send("3")  # engine.io's pong: its server closes sockets that miss one
                    continue
                match = STAMP.search(text) if isinstance(text, str) else None
                if match is None or int(match[1]) != self.round:
                    continue
                now = time.time_ns()
                key = (int(match[2]), int(match[3]))
                if key in client.seen:
                    self.duplicates += 1
                    continue
                client.seen.add(key)
                self.latencies_us.append((now - int(match[4])) // 1000)
                self.received += 1
                self.last_receive_ns = now
                if self.received == self.expected_total:
                    self.done.set()
        except ConnectionClosed:
            pass
        finally:
            self.closed += 1

    async def send_all(self, client, round_id, t0_ns, interval_ns, offset_ns, count):
        """Send `count` messages from one sender on its schedule, stamping each with its intended send time."""
        for seq in range(count):
            due = t0_ns + offset_ns + seq * interval_ns
            delay = (due - time.time_ns()) / 1e9
            if delay > 0:
                await asyncio.sleep(delay)
            text = body(round_id, client.sender, seq, due)
            if self.job["protocol"] == SOCKETIO:
                frame = "42" + json.dumps(["message", text])
            else:
                # One frame every app understands: the project reads room and body, the tutorial message.
                frame = json.dumps({"type": "send", "room": client.slug, "body": text, "message": text,
                                    "client_id": f"b{round_id}-{client.sender}-{seq}"})
            await client.ws.send(frame)

    async def go(self, command):
        """Run one round: send on schedule, wait for every expected delivery or the deadline; return the figures."""
        self.reset(command["round"], command["expected"])
        cpu_started = time.process_time()
        senders = [c for c in self.clients if c.sender is not None and c.ws is not None]
        interval_ns = int(command["senders"] / command["rate"] * 1e9)
        tasks = [
            asyncio.create_task(self.send_all(c, command["round"], command["t0_ns"], interval_ns,
                                              int(c.sender / command["rate"] * 1e9), command["messages"]))
            for c in senders
        ]
        try:
            await asyncio.wait_for(self.done.wait(), command["deadline_ns"] / 1e9 - time.time())
        except TimeoutError:
            pass
        # This process's own CPU while it sent and received: near a whole core, it was the ceiling.
        cpu_seconds = time.process_time() - cpu_started
        for task in tasks:
            task.cancel()
        send_errors = [repr(r) for r in await asyncio.gather(*tasks, return_exceptions=True)
                       if isinstance(r, BaseException) and not isinstance(r, asyncio.CancelledError)]
        # Duplicates would arrive after the last expected frame: keep listening a little.
        await asyncio.sleep(DUPLICATE_GRACE_SECONDS)
        answer = {"expected": self.expected_total, "received": self.received, "duplicates": self.duplicates,
                  "latencies_us": self.latencies_us, "last_receive_ns": self.last_receive_ns,
                  "closed": self.closed, "send_errors": send_errors[:3], "cpu_seconds": cpu_seconds}
        if command.get("report_seen"):
            # How many sockets of each room received each message, to check stored messages one by one.
            seen = {}
            for client in self.clients:
                counts = seen.setdefault(str(client.room), collections.Counter())
                counts.update(f"{sender}|{seq}" for sender, seq in client.seen)
            answer["seen"] = seen
        return answer

    async def close(self):
        """Close every socket and stop reading."""
        await asyncio.gather(*(c.ws.close() for c in self.clients if c.ws is not None), return_exceptions=True)
        for task in self.readers:
            task.cancel()
        await asyncio.gather(*self.readers, return_exceptions=True)


async def socketio_open(ws, room):
    """Open a socket.io session on an engine.io v4 websocket: the server's open packet, then connect to `room`."""
    async with asyncio.timeout(60):
        opened = await ws.recv()
        if not opened.startswith("0"):
            raise RuntimeError(f"not an engine.io open packet: {opened[:80]}")
        await ws.send("40" + json.dumps({"room": room}))
        answer = await ws.recv()
        if not answer.startswith("40"):
            raise RuntimeError(f"refused: {answer[:80]}")


async def frame_of(ws, kind):
    """Return the next frame of type `kind` from a project socket, skipping the user's events; raise on an error."""
    async with asyncio.timeout(60):
        while True:
            frame = json.loads(await ws.recv())
            if frame["type"] == kind:
                return frame
            if frame["type"] == "error":
                raise RuntimeError(f"refused: {frame}")


async def serve(conn):
    """Obey the coordinator's commands until it says close."""
    loop = asyncio.get_running_loop()
    worker = Worker(await loop.run_in_executor(None, conn.recv))
    # Bounded: the coordinator always ends with close, and a closed pipe ends the loop too.
    for _ in range(10_000):
        try:
            command = await loop.run_in_executor(None, conn.recv)
        except EOFError:
            break
        if command["do"] == "ramp":
            conn.send(await worker.ramp(command.get("indexes")))
        elif command["do"] == "subscribe":
            conn.send(await worker.subscribe_all())
        elif command["do"] == "quiet":
            conn.send({"quiet_seconds": time.monotonic() - worker.last_frame, "closed": worker.closed})
        elif command["do"] == "go":
            conn.send(await worker.go(command))
        elif command["do"] == "close":
            break
    await worker.close()
    conn.send({"closed": True})


def main(conn):
    """Run a worker process: raise the open-file limit to the hard limit, then serve commands."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    asyncio.run(serve(conn))
