"""A private Redis and several daphne processes on one database, for fault tests and the soak: start, break, measure."""
import json
import signal
import time
from pathlib import Path

import redis

from harness.servers import (
    ServerGroup, WebClient, manage, project_env, rooms_create, start_daphne, start_redis, users_create,
)

# Generous limits: these runs are about faults, not about the abuse limits.
TEST_LIMITS = {
    "CHAT_MESSAGE_RATE": "100000/1",
    "CHAT_TYPING_RATE": "100000/1",
    "CHAT_CHANGE_RATE": "100000/1",
    "CHAT_HANDSHAKE_RATE": "100000/1",
    "CHAT_ROOM_CREATION_RATE": "100000/1",
    "CHAT_LOGIN_FAILURE_RATE": "100000/1",
    "CHAT_SIGNUP_RATE": "100000/1",
    "CHAT_MAX_SOCKETS_PER_USER": "100000",
}


def sqlite_database(directory):
    """Return the URL of a fresh, migrated SQLite database in `directory`."""
    url = f"sqlite:///{Path(directory) / 'db.sqlite3'}"
    manage("migrate", "--noinput", env=project_env(DATABASE_URL=url, DJANGO_SETTINGS_MODULE="harness.fault_settings"))
    return url


class Cluster(ServerGroup):
    """Redis and `size` daphne processes on `database_url`; close() stops every process whatever happened."""

    def __init__(self, directory, database_url, *, size=2, env=None, daphne_options=()):
        self.directory = Path(directory)
        self.database_url = database_url
        self.size, self.extra_env, self.daphne_options = size, env or {}, daphne_options
        self.redis = None
        self.daphnes = []

    def start(self):
        (self.directory / "redis").mkdir(parents=True, exist_ok=True)
        self.redis = start_redis(self.directory / "redis")
        self.env = project_env(
            REDIS_URL=self.redis_url, DATABASE_URL=self.database_url, ALLOWED_HOSTS="127.0.0.1,localhost",
            DJANGO_SETTINGS_MODULE="harness.fault_settings", PYTHONUNBUFFERED=1, STATIC_MANIFEST=0, **TEST_LIMITS,
            **self.extra_env,
        )
        self.daphnes = [
            start_daphne(self.directory, env=self.env, name=f"daphne-{i}", options=self.daphne_options)
            for i in range(self.size)
        ]
        return self

    def close(self):
        """Stop every process this cluster started."""
        for server in [*self.daphnes, self.redis]:
            if server is not None:
                server.stop()

    @property
    def redis_url(self):
        return f"redis://127.0.0.1:{self.redis.port}/0"

    @property
    def urls(self):
        return [f"http://127.0.0.1:{server.port}" for server in self.daphnes]

    def users(self, usernames):
        """Create users (hashed as the servers expect) and return them."""
        users_create(usernames, env=self.env)
        return list(usernames)

    def rooms(self, slugs):
        """Create public rooms for the clients to join."""
        rooms_create(slugs, env=self.env)

    def login(self, username, first=0):
        """Return one logged-in WebClient per server, starting with server `first` (the failover order)."""
        order = self.urls[first:] + self.urls[:first]
        return [WebClient(url).login(username) for url in order]

    def redis_client(self):
        return redis.Redis.from_url(self.redis_url, socket_timeout=5)

    def restart_redis(self, *, keep_data, down_seconds=1.0):
        """Stop redis-server and start it again on the same port, with its data saved first or lost."""
        dump = self.directory / "redis" / "dump.rdb"
        if keep_data:
            self.redis_client().save()
        else:
            dump.unlink(missing_ok=True)
        self.redis.stop()
        time.sleep(down_seconds)
        self.redis.start()

    def kill(self, index, sig=signal.SIGKILL):
        """Stop daphne `index` with `sig` and wait for it to exit."""
        self.daphnes[index].stop(sig=sig)

    def restart(self, index):
        """Start daphne `index` again on its port."""
        self.daphnes[index].start()

    def log(self, index):
        return (self.directory / f"daphne-{index}.log").read_text(errors="replace")

    def memory_kib(self, index):
        """Return the resident memory of daphne `index` in KiB."""
        status = Path(f"/proc/{self.daphnes[index].process.pid}/status").read_text()
        return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")))

    def stored(self, slug):
        """Return the stored (seq, body) pairs of a room, in seq order, straight from the database."""
        code = (
            "import json\nfrom chat.domain.models import Message\n"
            f"print(json.dumps(list(Message.objects.filter(room__slug={slug!r}).order_by('seq')"
            ".values_list('seq', 'body', 'client_id'))))"
        )
        output = manage("shell", "-c", code, env=self.env)
        return [tuple(row) for row in json.loads(output.strip().splitlines()[-1])]

