"""A private Redis master, its replica and a Sentinel watching them, for failover tests: start, fail over, stop."""
import signal
import time
from pathlib import Path

import redis

from harness.servers import ServerGroup, start_redis, start_sentinel

MASTER_NAME = "mymaster"
PASSWORD = "pw-for-sentinel-tests-42"


class SentinelGroup(ServerGroup):
    """Run a master and a replica (both password-protected) and one Sentinel watching them, on free ports."""

    def __init__(self, directory, *, down_after_ms=1500):
        # At 500 ms Sentinel took the master it had just promoted for down (its link to it took 0.9 s
        # to connect) and failed over again; at 1,500 ms a failover settles once.
        self.directory = Path(directory)
        self.down_after_ms = down_after_ms
        self.master = self.replica = self.sentinel = None

    def start(self):
        self.directory.mkdir(parents=True, exist_ok=True)
        # masterauth on both: after a failover the old master, if it comes back, replicates from the new one.
        auth = ("--requirepass", PASSWORD, "--masterauth", PASSWORD)
        self.master = start_redis(self.directory, *auth, name="master")
        self.replica = start_redis(self.directory, *auth, "--replicaof", "127.0.0.1", str(self.master.port),
                                   name="replica")
        # Sentinel finds replicas in the master's INFO: once the replica is in sync, Sentinel's first INFO shows it.
        self._wait(lambda: self.node(self.replica).info("replication")["master_link_status"] == "up",
                   "the replica to sync")
        self.sentinel = start_sentinel(self.directory, self.master.port, master_name=MASTER_NAME, password=PASSWORD,
                                       down_after_ms=self.down_after_ms)
        # Sentinel promotes only a replica it is connected to and has heard from ("NOGOODSLAVE" otherwise).
        self._wait(lambda: [replica["flags"] for replica in self.sentinel_client().sentinel_slaves(MASTER_NAME)]
                   == ["slave"], "Sentinel to reach the replica")
        return self

    def close(self):
        """Stop every process this group started."""
        for server in (self.sentinel, self.replica, self.master):
            if server is not None:
                server.stop()

    @property
    def sentinels(self):
        """Return the (host, port) pairs for REDIS_SENTINELS."""
        return [("127.0.0.1", self.sentinel.port)]

    def node(self, server, db=0):
        """Return a plain client of one data node (not through Sentinel), for checks."""
        return redis.Redis(host="127.0.0.1", port=server.port, db=db, password=PASSWORD, socket_timeout=2)

    def sentinel_client(self):
        """Return a client of the Sentinel itself."""
        return redis.Redis(host="127.0.0.1", port=self.sentinel.port, socket_timeout=2, decode_responses=True)

    def _master_state(self):
        state = self.sentinel_client().sentinel_master(MASTER_NAME)
        return int(state["port"]), state["flags"]

    def wait_for_replica(self):
        """Wait until the replica holds every write the master has taken."""
        offset = self.node(self.master).info("replication")["master_repl_offset"]
        self._wait(lambda: self.node(self.replica).info("replication")["slave_repl_offset"] >= offset,
                   "the replica to catch up")

    def fail_over(self, how):
        """Start a failover: kill the master with SIGKILL ("kill"), or ask Sentinel for one ("command")."""
        if how == "kill":
            self.master.stop(sig=signal.SIGKILL)
        else:
            self.sentinel_client().sentinel_failover(MASTER_NAME)

    def wait_for_new_master(self, how, timeout=30.0):
        """Wait until the failover `how` started is over: Sentinel names the replica, and it takes writes."""
        # "master" alone: neither down nor failing over, the only state redis-py's Sentinel client accepts.
        self._wait(lambda: self._master_state() == (self.replica.port, "master")
                   and self._role(self.replica) == "master", "Sentinel to promote the replica", timeout)
        if how != "kill":
            # Until Sentinel turns the old master into a replica (which closes its clients' connections),
            # it still takes the writes of clients connected before: Sentinel's split brain, not the clients'.
            self._wait(lambda: self._role(self.master) == "slave", "Sentinel to demote the old master", timeout)
        self.master, self.replica = self.replica, self.master

    def _role(self, server):
        return self.node(server).info("replication")["role"]

    @staticmethod
    def _wait(condition, what, timeout=20.0):
        deadline = time.monotonic() + timeout
        while True:
            try:
                if condition():
                    return
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out after {timeout} s waiting for {what}")
            time.sleep(0.05)
