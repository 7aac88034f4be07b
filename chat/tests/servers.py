"""Start and stop the real servers some tests need: redis-server, daphne, nginx."""
import os
import shutil
import signal
import socket
import subprocess
import time

import pytest


def free_port():
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def require_binary(name):
    """Return the path of `name`, skip the test when it is missing, or fail under CI=true."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed; the tests that need a real {name} cannot run."
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + " CI must install it (.ci/run).")
        pytest.skip(message)
    return path


def wait_for_port(port, process, timeout=20.0):
    """Wait until something accepts connections on `port`, or fail if `process` exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited with {process.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listened on port {port} within {timeout} s")


class Server:
    """One real server process, started by a test and always stopped by it."""

    def __init__(self, args, port, *, env=None, cwd=None, log_path=None):
        self.args, self.port, self.env, self.cwd = args, port, env, cwd
        self.log_path = log_path
        self.process = None

    def start(self):
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        self.process = subprocess.Popen(
            self.args, env=self.env, cwd=self.cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            wait_for_port(self.port, self.process)
        except Exception:
            self.stop()
            raise
        return self

    def stop(self, sig=signal.SIGTERM, timeout=10.0):
        """Stop the process (and its children) with `sig`, then SIGKILL if it lingers."""
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, sig)
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        except ProcessLookupError:
            pass


def start_redis(tmp_path):
    """Start a private redis-server on a free port, keeping nothing on disk."""
    binary = require_binary("redis-server")
    port = free_port()
    args = [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
            "--dir", str(tmp_path)]
    return Server(args, port, log_path=tmp_path / "redis.log").start()
