"""Abuse-limit windows, in process memory and in a real Redis."""
import time

import pytest

from chat.platform.limits import Limit, LimitExceeded, get_counter
from harness.servers import free_port


@pytest.fixture(params=["memory", "redis"])
def counter_backend(request, settings):
    """Run a test once with windows in process memory and once in a real Redis."""
    settings.REDIS_URL = request.getfixturevalue("redis_server") if request.param == "redis" else ""
    get_counter().clear()
    return request.param


def test_a_window_opens_with_the_first_event_and_refuses_past_the_limit(counter_backend):
    limit = Limit("test", 2, 1)
    assert limit.check("alice", "slow down") == 1
    assert limit.check("alice", "slow down") == 2
    with pytest.raises(LimitExceeded) as caught:
        limit.check("alice", "slow down")
    assert caught.value.detail == "slow down" and caught.value.count == 3
    assert 0 < caught.value.retry_after <= 1
    assert limit.check("bob", "slow down") == 1  # keys are counted apart
    time.sleep(caught.value.retry_after + 0.1)  # past the window
    assert limit.check("alice", "slow down") == 1


def test_peeking_does_not_count(counter_backend):
    limit = Limit("test", 1, 60)
    limit.check_peek("alice", "no")
    limit.check_peek("alice", "no")
    limit.check("alice", "no")
    with pytest.raises(LimitExceeded):
        limit.check_peek("alice", "no")


def test_an_unreachable_redis_lets_events_through_uncounted(settings):
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    limit = Limit("test", 1, 60)
    assert [limit.check("alice", "no") for _ in range(3)] == [0, 0, 0]
    limit.check_peek("alice", "no")
