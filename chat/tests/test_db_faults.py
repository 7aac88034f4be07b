"""The database goes away during a send and comes back: an error frame, nothing broadcast or acknowledged, then sending works again."""
import asyncio
import glob
import os
import shutil
import subprocess
import tempfile

import psycopg
import pytest

from harness.chatclient import ChatClient
from harness.cluster import Cluster
from harness.servers import free_port, manage, project_env

pytestmark = [pytest.mark.timeout(180)]


class PrivatePostgres:
    """A throwaway PostgreSQL cluster on a free 127.0.0.1 port, owned by this test."""

    def __init__(self):
        binaries = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not binaries:
            if os.environ.get("CI", "").lower() == "true":
                pytest.fail("PostgreSQL's initdb is not installed; CI must provide it.")
            pytest.skip("PostgreSQL's initdb is not installed.")
        self.bin = os.path.dirname(binaries[-1])
        # initdb refuses to run as root; the cluster belongs to the postgres user.
        self.as_owner = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        self.directory = tempfile.mkdtemp(prefix="chat-pg-")
        if self.as_owner:
            shutil.chown(self.directory, "postgres")
        self.data = os.path.join(self.directory, "data")
        self.port = free_port()
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/chat"
        self._run("initdb", "-D", self.data, "-U", "postgres", "--auth=trust", "-E", "UTF8")

    def _run(self, tool, *args):
        subprocess.run([*self.as_owner, f"{self.bin}/{tool}", *args], check=True, capture_output=True, timeout=120)

    def start(self):
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1"
        self._run("pg_ctl", "-D", self.data, "-o", options, "-l", f"{self.directory}/log", "-w", "-t", "60", "start")

    def stop(self):
        self._run("pg_ctl", "-D", self.data, "-m", "fast", "-w", "-t", "60", "stop")

    def close(self):
        try:
            self.stop()
        except subprocess.CalledProcessError:
            pass  # already stopped
        shutil.rmtree(self.directory, ignore_errors=True)


def room_create(cluster, slug, username):
    """Create the public room `slug` with `username` as its first member: sockets only join rooms that exist."""
    code = (
        "from django.contrib.auth import get_user_model\nfrom chat.domain.services import room_open\n"
        f"room_open(slug={slug!r}, user=get_user_model().objects.get(username={username!r}))"
    )
    manage("shell", "-c", code, env=cluster.env)


@pytest.fixture
def postgres():
    """Yield a private PostgreSQL holding a migrated `chat` database; always stopped and removed."""
    server = PrivatePostgres()
    try:
        server.start()
        with psycopg.connect(server.url.replace("/chat", "/postgres"), autocommit=True) as admin:
            admin.execute("CREATE DATABASE chat")
        manage("migrate", "--noinput", env=project_env(DATABASE_URL=server.url))
        yield server
    finally:
        server.close()


async def test_send_while_the_database_is_down_is_refused_then_works_again(tmp_path, postgres):
    with Cluster(tmp_path, postgres.url, size=1) as cluster:
        await asyncio.to_thread(cluster.users, ["dbann", "dbben"])
        await asyncio.to_thread(room_create, cluster, "db-room", "dbann")
        ann = ChatClient(await asyncio.to_thread(cluster.login, "dbann"), "db-room", "dbann").start()
        ben = ChatClient(await asyncio.to_thread(cluster.login, "dbben"), "db-room", "dbben").start()
        try:
            async with asyncio.timeout(30):
                await ann.connected.wait()
                await ben.connected.wait()
            first = await ann.send("stored before")
            assert await ann.wait(lambda: first in ann.acked and 1 in ben.messages, 30)

            await asyncio.to_thread(postgres.stop)
            lost = await ann.send("sent while the database is down")
            assert await ann.wait(lambda: ann.errors, 30)
            assert ann.errors[-1]["code"] == "unavailable" and ann.errors[-1]["client_id"] == lost
            await asyncio.sleep(1)  # a broadcast, had there been one, would have arrived by now
            assert sorted(ben.messages) == [1] and lost not in ann.acked
            assert ann.connected.is_set(), "the socket stays open"

            await asyncio.to_thread(postgres.start)
            after = await ann.send("stored after")
            assert await ann.wait(lambda: after in ann.acked and 2 in ben.messages, 30), ann.errors
        finally:
            await asyncio.gather(ann.stop(), ben.stop())
        stored = cluster.stored("db-room")
    assert [(seq, body) for seq, body, _ in stored] == [(1, "stored before"), (2, "stored after")]
    assert ben.messages[2]["body"] == "stored after" and ben.duplicates == 0
