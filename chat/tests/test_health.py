"""/healthz against a real database and real channel layers, reachable or not."""
import pytest
from django.test import override_settings

from harness.servers import free_port

pytestmark = [pytest.mark.django_db]


def redis_layer(url):
    return {"default": {"BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer", "CONFIG": {"hosts": [url]}}}


def test_healthy_with_the_default_layer(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "channel_layer": "ok"}}


def test_healthy_with_a_real_redis(client, redis_server):
    with override_settings(CHANNEL_LAYERS=redis_layer(redis_server)):
        response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok", "channel_layer": "ok"}


def test_unavailable_when_redis_does_not_answer(client, caplog):
    # Nothing listens on a port that was just free.
    with override_settings(CHANNEL_LAYERS=redis_layer(f"redis://127.0.0.1:{free_port()}/0")):
        response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "checks": {"database": "ok", "channel_layer": "failed"}}
    failure = next(record for record in caplog.records if getattr(record, "event", None) == "health.failed")
    assert failure.fields["check"] == "channel_layer" and "Connect" in failure.fields["error"]


def test_exempt_from_the_https_redirect(client):
    with override_settings(SECURE_SSL_REDIRECT=True):
        assert client.get("/healthz").status_code == 200
        assert client.get("/accounts/login/").status_code == 301
