"""The test servers' helpers: a port taken between choosing and binding it does not fail the start."""
import socket

import pytest

from harness import servers

pytestmark = [pytest.mark.timeout(60)]


def test_a_server_whose_port_was_taken_meanwhile_starts_on_another(tmp_path, monkeypatch):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))  # bound, not listening: redis-server cannot bind it
        chosen = [taken.getsockname()[1]]
        real_free_port = servers.free_port
        monkeypatch.setattr(servers, "free_port", lambda: chosen.pop() if chosen else real_free_port())
        redis = servers.start_redis(tmp_path)
        try:
            assert redis.port != taken.getsockname()[1]
            assert redis.process.poll() is None
        finally:
            redis.stop()
    assert "Address already in use" in (tmp_path / "redis.log").read_text()
