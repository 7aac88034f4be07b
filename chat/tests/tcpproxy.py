"""A TCP forwarder that a test can cut and heal: a network partition that drops packets, between two local processes."""
import asyncio
import threading


class TcpProxy:
    """Forward connections on 127.0.0.1:<port> to a target, in a thread of its own; close() stops everything.

    cut() stops forwarding bytes both ways without closing anything, as a
    partition that drops packets does: connections stay open and silent, new
    ones are accepted but reach nothing. heal() forwards again, including what
    was held meanwhile, as TCP's retransmissions would deliver it.
    """

    def __init__(self, target_port, target_host="127.0.0.1"):
        self.target = (target_host, target_port)
        self.port = None
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="tcp-proxy", daemon=True)
        self.flowing = asyncio.Event()
        self.tasks = set()
        self.server = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    def _run(self, coroutine, timeout=10):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def start(self):
        self.thread.start()
        self._run(self._listen())
        return self

    async def _listen(self):
        self.flowing.set()
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    def cut(self):
        """Stop forwarding, from the moment this returns."""
        self._run(self._set_flowing(False))

    def heal(self):
        """Forward again, held bytes first."""
        self._run(self._set_flowing(True))

    async def _set_flowing(self, flowing):
        if flowing:
            self.flowing.set()
        else:
            self.flowing.clear()

    async def _serve(self, client_reader, client_writer):
        self.tasks.add(asyncio.current_task())
        writers = [client_writer]
        try:
            # A connection opened during a cut reaches the target only once it heals.
            await self.flowing.wait()
            server_reader, server_writer = await asyncio.open_connection(*self.target)
            writers.append(server_writer)
            await asyncio.gather(self._pipe(client_reader, server_writer), self._pipe(server_reader, client_writer))
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            for writer in writers:
                writer.close()
            self.tasks.discard(asyncio.current_task())

    async def _pipe(self, reader, writer):
        try:
            while True:
                await self.flowing.wait()
                data = await reader.read(65536)
                if not data:
                    break
                # Bytes read just before a cut are held with the rest.
                await self.flowing.wait()
                writer.write(data)
                await writer.drain()
        finally:
            # One side's end ends the other's: half-open connections would hold the target's backends.
            writer.close()

    def close(self):
        """Close every connection and the listener, and stop the thread."""
        if not self.thread.is_alive():
            return
        self._run(self._close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    async def _close(self):
        if self.server is not None:
            self.server.close()
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
