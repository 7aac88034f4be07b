"""Abuse-limit windows, in process memory and in a real Redis."""
import time

import pytest

from chat.limits import Limit, LimitExceeded


@pytest.fixture(params=["memory", "redis"])
def cache_backend(request, settings):
    """Run a test once with the in-process cache and once with Redis as the cache."""
    if request.param == "redis":
        settings.CACHES = {
            "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                        "LOCATION": request.getfixturevalue("redis_server")}
        }
    from django.core.cache import cache

    cache.clear()
    return request.param


def test_a_window_opens_with_the_first_event_and_refuses_past_the_limit(cache_backend):
    limit = Limit("test", 2, 1)
    assert limit.check("alice", "slow down") == 1
    assert limit.check("alice", "slow down") == 2
    with pytest.raises(LimitExceeded) as caught:
        limit.check("alice", "slow down")
    assert caught.value.detail == "slow down" and caught.value.count == 3
    assert 0 < caught.value.retry_after <= 1
    assert limit.check("bob", "slow down") == 1  # keys are counted apart
    time.sleep(caught.value.retry_after + 1.1)  # past the window (and the cache's whole-second expiry)
    assert limit.check("alice", "slow down") == 1


def test_peeking_does_not_count(cache_backend):
    limit = Limit("test", 1, 60)
    limit.check_peek("alice", "no")
    limit.check_peek("alice", "no")
    limit.check("alice", "no")
    with pytest.raises(LimitExceeded):
        limit.check_peek("alice", "no")
