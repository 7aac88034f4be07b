"""Settings as an operator sets them: the documented production env passes `check --deploy`; layer choices."""
import json
import os
import secrets

import pytest

from harness.servers import PROJECT_DIR, manage

ENV_FILE = PROJECT_DIR / "deploy" / "chat.env.example"


def production_env(**overrides):
    """Return a clean environment made of deploy/chat.env.example, with `overrides`."""
    env = {key: os.environ[key] for key in ("PATH", "HOME", "LANG") if key in os.environ}
    for line in ENV_FILE.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key] = value
    env.update(overrides)
    return env


def test_documented_production_env_passes_check_deploy():
    output = manage(
        "check", "--deploy", "--fail-level", "WARNING",
        env=production_env(SECRET_KEY=secrets.token_urlsafe(50)),
    )
    assert "System check identified no issues" in output
    assert "WARNING" not in output


def test_check_deploy_fails_on_the_placeholder_secret_key():
    with pytest.raises(RuntimeError, match="security.W009"):
        manage("check", "--deploy", "--fail-level", "WARNING", env=production_env())


def settings_of(env, *names):
    """Return the values of setting `names` as the project computes them from `env`."""
    code = f"import json; from django.conf import settings; print(json.dumps([getattr(settings, n) for n in {names!r}]))"
    return json.loads(manage("shell", "-c", code, env=env).strip().splitlines()[-1])


def test_redis_url_selects_the_pubsub_layer_with_a_raised_pool():
    (layers,) = settings_of(production_env(SECRET_KEY="k", REDIS_URL="rediss://:pw@cache:6380/2"), "CHANNEL_LAYERS")
    assert layers["default"]["BACKEND"] == "channels_redis.pubsub.RedisPubSubChannelLayer"
    assert layers["default"]["CONFIG"]["hosts"] == [{"address": "rediss://:pw@cache:6380/2", "max_connections": 1000}]


def test_core_layer_keeps_groups_as_long_as_daphne_keeps_sockets():
    env = production_env(SECRET_KEY="k", REDIS_URL="redis://cache:6379/0", CHANNEL_LAYER="core",
                         DAPHNE_WEBSOCKET_TIMEOUT="7200", REDIS_MAX_CONNECTIONS="300")
    (layers,) = settings_of(env, "CHANNEL_LAYERS")
    assert layers["default"]["BACKEND"] == "channels_redis.core.RedisChannelLayer"
    assert layers["default"]["CONFIG"]["group_expiry"] == 7200
    assert layers["default"]["CONFIG"]["hosts"][0]["max_connections"] == 300


def test_sentinels_replace_the_direct_address():
    env = production_env(SECRET_KEY="k", REDIS_URL="rediss://app:pw@ignored/3",
                         REDIS_SENTINELS="s1:26379, s2:26380", REDIS_SENTINEL_MASTER="chat")
    (layers,) = settings_of(env, "CHANNEL_LAYERS")
    assert layers["default"]["CONFIG"]["hosts"] == [{
        "max_connections": 1000, "master_name": "chat", "sentinels": [["s1", 26379], ["s2", 26380]],
        "db": 3, "username": "app", "password": "pw", "ssl": True,
    }]


def test_shard_urls_give_the_layer_one_host_each_and_leave_the_rest_on_redis_url():
    env = production_env(SECRET_KEY="k", REDIS_URL="redis://main:6379/0",
                         CHANNEL_LAYER_REDIS_URLS="redis://main:6379/0, rediss://:pw@second:6380/1")
    layers, redis_url = settings_of(env, "CHANNEL_LAYERS", "REDIS_URL")
    assert layers["default"]["CONFIG"]["hosts"] == [
        {"address": "redis://main:6379/0", "max_connections": 1000},
        {"address": "rediss://:pw@second:6380/1", "max_connections": 1000},
    ]
    assert redis_url == "redis://main:6379/0"


@pytest.mark.parametrize(("overrides", "error"), [
    ({"CHANNEL_LAYER_REDIS_URLS": "redis://a:6379/0,cache:6379"}, "'cache:6379' is not a redis:// or rediss:// URL"),
    ({"CHANNEL_LAYER_REDIS_URLS": "redis://a:6379/0,redis://a:6379/0"}, "listed twice"),
    ({"CHANNEL_LAYER_REDIS_URLS": "redis://a:6379/0", "REDIS_URL": ""}, "needs REDIS_URL"),
    ({"CHANNEL_LAYER_REDIS_URLS": "redis://a:6379/0", "REDIS_SENTINELS": "s1:26379"}, "REDIS_SENTINELS"),
])
def test_bad_shard_settings_stop_the_server_with_a_clear_error(overrides, error):
    env = production_env(SECRET_KEY="k", REDIS_URL="redis://a:6379/0")
    env.update(overrides)
    with pytest.raises(RuntimeError, match=error):
        manage("check", env=env)


def test_static_files_use_the_manifest_only_outside_debug_and_tests():
    env = production_env(SECRET_KEY="k")
    storage = "whitenoise.storage.CompressedManifestStaticFilesStorage"
    assert settings_of(env, "STORAGES")[0]["staticfiles"]["BACKEND"] == storage
    assert settings_of(env | {"DEBUG": "1"}, "STORAGES")[0]["staticfiles"]["BACKEND"] != storage
    assert settings_of(env | {"PYTEST_VERSION": "9"}, "STORAGES")[0]["staticfiles"]["BACKEND"] != storage
