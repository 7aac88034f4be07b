"""The health check load balancers and operators poll: does each backing service answer?"""
import asyncio

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import connection
from django.http import JsonResponse

from chat.platform.logs import log_event
from chat.platform.redisclients import RedisTarget, async_client

# A check that hangs (a dropped packet, not a refused one) must still answer.
PROBE_TIMEOUT = 3.0


def _database_answers():
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


async def _channel_layer_answers():
    # A send to a group nobody joined reaches the backend (one PUBLISH on the
    # pubsub layer) and leaves nothing behind, unlike a probe channel would.
    await get_channel_layer().group_send("health.probe", {"type": "health.probe"})


async def _layer_shards_answer():
    # The probe above reaches only the shard its group's name hashes to, and a dead shard silences its rooms.
    for url in settings.CHANNEL_LAYER_REDIS_URLS:
        client = async_client(RedisTarget(url), max_connections=1, timeout=PROBE_TIMEOUT)
        try:
            await client.ping()
        finally:
            await client.aclose()


async def healthz(request):
    """Answer 200 when the database and the channel layer respond, 503 naming what failed otherwise."""
    probes = {"database": sync_to_async(_database_answers), "channel_layer": _channel_layer_answers}
    if settings.CHANNEL_LAYER_REDIS_URLS:
        probes["channel_layer_shards"] = _layer_shards_answer
    checks = {}
    for name, probe in probes.items():
        try:
            await asyncio.wait_for(probe(), PROBE_TIMEOUT)
            checks[name] = "ok"
        except Exception as error:  # noqa: BLE001 - any failure means "not healthy"
            checks[name] = "failed"
            log_event("health.failed", check=name, error=repr(error))
    healthy = all(state == "ok" for state in checks.values())
    return JsonResponse({"status": "ok" if healthy else "unavailable", "checks": checks}, status=200 if healthy else 503)
