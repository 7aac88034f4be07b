"""Django settings for the chat project, read from environment variables.

Every setting has a safe development default; see the README's settings table.
"""
import ipaddress
import json
import os
import re
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

# Safe this early: the module imports nothing of Django, the app or redis-py at import time.
from chat.platform.redisclients import RedisTarget, layer_hosts, sentinel_addresses, shard_urls

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name, default=False):
    """Return the environment variable `name` read as a boolean."""
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name, default=""):
    """Return the comma-separated environment variable `name` as a list."""
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_bool("DEBUG", default=False)

SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("Set SECRET_KEY (or DEBUG=1 for development).")
    SECRET_KEY = "django-insecure-development-key-do-not-use-in-production"

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
if "*" in ALLOWED_HOSTS and not DEBUG:
    # "*" would let any site's page open sockets with a visitor's cookies.
    raise ImproperlyConfigured("ALLOWED_HOSTS must name the site's hosts; '*' is refused when DEBUG is off.")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "csp",
    "chat",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
]

ROOT_URLCONF = "myproject.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = None
ASGI_APPLICATION = "myproject.asgi.application"

DATABASES = {"default": dj_database_url.parse(os.environ.get("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"))}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # IMMEDIATE takes the write lock at BEGIN, so concurrent writers (several
    # daphne processes on one file) wait for it instead of failing on upgrade;
    # WAL lets readers proceed while one writer holds it.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )

REDIS_URL = os.environ.get("REDIS_URL", "")
# With Sentinels every Redis client (chat/platform/redisclients.py) asks them for the master's
# address; REDIS_URL then gives only the database, user, password and TLS.
REDIS_SENTINELS = sentinel_addresses(os.environ.get("REDIS_SENTINELS", ""))
REDIS_SENTINEL_MASTER = os.environ.get("REDIS_SENTINEL_MASTER", "mymaster")
# redis-py's pool allows 100 connections by default, which a busy process
# exhausts (handshakes then fail with HTTP 500).
REDIS_MAX_CONNECTIONS = int(os.environ.get("REDIS_MAX_CONNECTIONS", "1000"))
# daphne closes every websocket after this many seconds (deploy/ passes it as
# --websocket_timeout); a group membership must outlive its socket, or a
# long-lived socket silently stops receiving its room.
DAPHNE_WEBSOCKET_TIMEOUT = int(os.environ.get("DAPHNE_WEBSOCKET_TIMEOUT", "86400"))
# The channel layer's shards: each group (a room's, the users') lives on the Redis its name hashes
# to, so every process must list the same URLs in the same order. Presence and the limits stay on
# REDIS_URL: a user's or a room's keys must be in one place that every process reads.
try:
    CHANNEL_LAYER_REDIS_URLS = shard_urls(os.environ.get("CHANNEL_LAYER_REDIS_URLS", ""))
except ValueError as error:
    raise ImproperlyConfigured(f"CHANNEL_LAYER_REDIS_URLS: {error}") from None
if CHANNEL_LAYER_REDIS_URLS and not REDIS_URL:
    raise ImproperlyConfigured("CHANNEL_LAYER_REDIS_URLS needs REDIS_URL (presence and the limits live there).")
if CHANNEL_LAYER_REDIS_URLS and REDIS_SENTINELS:
    raise ImproperlyConfigured("CHANNEL_LAYER_REDIS_URLS cannot be combined with REDIS_SENTINELS (one master per set).")


if REDIS_URL:
    # pubsub publishes once per room message and each process fans out
    # locally; the measurement in bench/layer_fanout.py (README) chose it.
    CHANNEL_LAYER_BACKEND = os.environ.get("CHANNEL_LAYER", "pubsub")
    _redis_target = RedisTarget(REDIS_URL, tuple(REDIS_SENTINELS), REDIS_SENTINEL_MASTER)
    _layer_hosts = layer_hosts(_redis_target, CHANNEL_LAYER_REDIS_URLS, REDIS_MAX_CONNECTIONS)
    if CHANNEL_LAYER_BACKEND == "pubsub":
        CHANNEL_LAYERS = {
            "default": {
                "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
                # Subscriptions live as long as the socket: no group expiry to set.
                "CONFIG": {"hosts": _layer_hosts},
            }
        }
    elif CHANNEL_LAYER_BACKEND == "core":
        CHANNEL_LAYERS = {
            "default": {
                "BACKEND": "channels_redis.core.RedisChannelLayer",
                "CONFIG": {"hosts": _layer_hosts, "group_expiry": DAPHNE_WEBSOCKET_TIMEOUT},
            }
        }
    else:
        raise ImproperlyConfigured("CHANNEL_LAYER must be 'pubsub' or 'core'.")
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

SESSION_ENGINE = "django.contrib.sessions.backends.db"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "chat:index"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", BASE_DIR / "staticfiles"))
# Hashed, compressed files need `collectstatic`, which neither `make run` nor
# the test suite runs (pytest sets PYTEST_VERSION), so only production uses them.
STATIC_MANIFEST = env_bool("STATIC_MANIFEST", default=not DEBUG and "PYTEST_VERSION" not in os.environ)
# Uploaded files (chat/domain/attachments.py) go through Django's storage API: files under MEDIA_ROOT unless
# CHAT_FILES_STORAGE names another backend (django-storages' "storages.backends.s3.S3Storage", ...), with
# CHAT_FILES_STORAGE_OPTIONS (a JSON object) as its OPTIONS. They are never served from MEDIA_URL: chat/web/files.py
# checks who may read them first.
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", BASE_DIR / "media"))
STORAGES = {
    "default": {
        "BACKEND": os.environ.get("CHAT_FILES_STORAGE", "django.core.files.storage.FileSystemStorage"),
        "OPTIONS": json.loads(os.environ.get("CHAT_FILES_STORAGE_OPTIONS", "{}")),
    },
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if STATIC_MANIFEST
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# HTTPS: all off by default so that plain-HTTP development and tests work;
# deploy/chat.env.example turns them on (README, "Running in production").
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT")
# Load balancers poll the health check over plain HTTP, straight at daphne.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", "0"))
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS")
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD")
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env_bool("SECURE_COOKIES")
if env_bool("SECURE_PROXY_SSL_HEADER"):
    # Only behind a proxy that overwrites this header (deploy/nginx.conf does).
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# No inline script or style anywhere: injected markup cannot run. Websockets
# go to the page's own origin, which 'self' covers for ws: and wss:.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        # A remote storage's origin too, where thumbnails are redirected to (chat/web/files.py).
        "img-src": ["'self'", "data:", *env_list("CHAT_FILES_IMAGE_ORIGINS")],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CONTENT_TYPE_OPTIONS = True
X_FRAME_OPTIONS = "DENY"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "chat.platform.logs.JsonFormatter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "json"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Chat behaviour.
# The module the domain's events are handed to after commit (chat/domain/events.py); the domain
# never imports the realtime package itself.
CHAT_EVENT_SENDER = "chat.realtime.broadcast"
# Presence: each socket refreshes its entry every HEARTBEAT seconds; an entry
# not refreshed for TTL seconds (a process that died) counts as gone.
CHAT_PRESENCE_BACKEND = os.environ.get(
    "CHAT_PRESENCE_BACKEND", "chat.realtime.presence.RedisPresence" if REDIS_URL else "chat.realtime.presence.MemoryPresence"
)
CHAT_PRESENCE_HEARTBEAT = float(os.environ.get("CHAT_PRESENCE_HEARTBEAT", "15"))
CHAT_PRESENCE_TTL = float(os.environ.get("CHAT_PRESENCE_TTL", "45"))
# Presence changes in a room within this many seconds go out as one frame: a room of N filling up after a
# restart costs each member a frame per interval, not one per newcomer (N squared in all).
CHAT_PRESENCE_BATCH_SECONDS = float(os.environ.get("CHAT_PRESENCE_BATCH_SECONDS", "0.25"))
# Seconds between the pings a room page sends; it reconnects after about 2.2 of them without a frame back.
CHAT_HEARTBEAT_SECONDS = float(os.environ.get("CHAT_HEARTBEAT_SECONDS", "25"))


def env_rate(name, default):
    """Return the environment variable `name` ("COUNT/SECONDS") as (count, seconds)."""
    count, _, seconds = os.environ.get(name, default).partition("/")
    return int(count), float(seconds)


# Threads (each with its own database connection) that run a server process's
# ORM calls in parallel; SQLite always uses one. Count them in PostgreSQL's max_connections.
CHAT_DATABASE_THREADS = int(os.environ.get("CHAT_DATABASE_THREADS", "8"))
_networked_database = DATABASES["default"]["ENGINE"] != "django.db.backends.sqlite3"
# Seconds a database call may take before its caller (a sender) is answered `unavailable`; 0: no bound.
# SQLite waits up to 20 s for its write lock by design, so by default only a database over the network is bounded.
CHAT_DATABASE_CALL_TIMEOUT = float(os.environ.get("CHAT_DATABASE_CALL_TIMEOUT", "2" if _networked_database else "0"))
# Seconds calls fail at once after one could not reach the database, before one call tries it again (chat/platform/dbhealth.py).
CHAT_DATABASE_RETRY_SECONDS = float(os.environ.get("CHAT_DATABASE_RETRY_SECONDS", "1"))
CHAT_DATABASE_POOL_TIMEOUT = float(os.environ.get("CHAT_DATABASE_POOL_TIMEOUT", "10"))
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Under ASGI Django closes its connection after every call (persistent
    # connections are unsafe there); a pool turns that close into a return
    # instead of a new server backend (6 ms each on a 2-core machine), so a
    # reconnect storm is not also a connect storm. Each thread holds at most one
    # connection: the database threads, the one thread of sessions and pages, spare.
    # A call waits at most CHAT_DATABASE_POOL_TIMEOUT seconds for a connection.
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 2, "max_size": CHAT_DATABASE_THREADS + 2, "timeout": CHAT_DATABASE_POOL_TIMEOUT,
    }
    # The pool then checks each connection it hands out (one empty round trip),
    # so that connections broken by a database restart do not each fail a call.
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    # A partition that drops packets leaves a connection open and silent: a connect then hangs until
    # connect_timeout, and a query until the kernel gives up on unacknowledged data (tcp_user_timeout)
    # or on unanswered keepalives, instead of retransmitting for 15 minutes (or, for a query sent and
    # acknowledged but unanswered, forever). libpq takes whole seconds, and milliseconds for the last.
    statement_ms = round(float(os.environ.get("CHAT_DATABASE_STATEMENT_TIMEOUT", "5")) * 1000)
    network_options = {
        "connect_timeout": int(os.environ.get("CHAT_DATABASE_CONNECT_TIMEOUT", "2")),
        "options": f"-c statement_timeout={statement_ms}",
        "keepalives": 1,
        "keepalives_idle": int(os.environ.get("CHAT_DATABASE_KEEPALIVE_IDLE", "5")),
        "keepalives_interval": 1,
        "keepalives_count": 3,
        "tcp_user_timeout": round(float(os.environ.get("CHAT_DATABASE_TCP_USER_TIMEOUT", "10")) * 1000),
    }
    # Values given in DATABASE_URL's query string win.
    DATABASES["default"]["OPTIONS"] = {**network_options, **DATABASES["default"]["OPTIONS"]}

# Abuse limits (chat/platform/limits.py), each "COUNT/SECONDS"; see docs/security.md.
CHAT_MESSAGE_RATE = env_rate("CHAT_MESSAGE_RATE", "20/10")  # per user, all sockets
# Edits and deletes together, per user, all sockets.
CHAT_CHANGE_RATE = env_rate("CHAT_CHANGE_RATE", "20/10")
# A socket that goes on sending or changing past this many times its limit is closed (4008).
CHAT_FLOOD_FACTOR = int(os.environ.get("CHAT_FLOOD_FACTOR", "3"))
CHAT_REACTION_RATE = env_rate("CHAT_REACTION_RATE", "30/10")  # reactions added or removed, per user
CHAT_TYPING_RATE = env_rate("CHAT_TYPING_RATE", "2/1")  # per user
# The PostgreSQL text search configuration of the message index, read when its migration runs:
# "simple" (no stemming) suits every language; "english" and others stem their own.
CHAT_SEARCH_CONFIG = os.environ.get("CHAT_SEARCH_CONFIG", "simple")
if not re.fullmatch(r"[a-z_]+", CHAT_SEARCH_CONFIG):
    raise ImproperlyConfigured("CHAT_SEARCH_CONFIG names a PostgreSQL text search configuration, such as 'simple'.")
# Seconds an invite link to a private room stays valid (chat/domain/invites.py); its creator can revoke it sooner.
CHAT_INVITE_MAX_AGE = int(os.environ.get("CHAT_INVITE_MAX_AGE", str(7 * 24 * 3600)))
CHAT_ROOM_CREATION_RATE = env_rate("CHAT_ROOM_CREATION_RATE", "10/3600")  # per user
CHAT_LOGIN_FAILURE_RATE = env_rate("CHAT_LOGIN_FAILURE_RATE", "5/900")  # per username, and 4x per address
CHAT_SIGNUP_RATE = env_rate("CHAT_SIGNUP_RATE", "5/3600")  # per address
CHAT_HANDSHAKE_RATE = env_rate("CHAT_HANDSHAKE_RATE", "60/10")  # websocket handshakes per address, per process
CHAT_MAX_SOCKETS_PER_USER = int(os.environ.get("CHAT_MAX_SOCKETS_PER_USER", "20"))
# Uploads (chat/domain/attachments.py, README "Files and images").
# Images with more pixels than this are refused before they are decoded (decompression bombs are small files).
CHAT_IMAGE_MAX_PIXELS = int(os.environ.get("CHAT_IMAGE_MAX_PIXELS", str(40_000_000)))
CHAT_UPLOAD_MAX_BYTES = int(os.environ.get("CHAT_UPLOAD_MAX_BYTES", str(10 * 1024 * 1024)))  # per file
CHAT_UPLOAD_DAILY_BYTES = int(os.environ.get("CHAT_UPLOAD_DAILY_BYTES", str(200 * 1024 * 1024)))  # per user, 24 h
# Types as sniffed from the content; text/plain is any UTF-8 without a binary signature (HTML and SVG included:
# they are only ever downloaded, as text).
CHAT_UPLOAD_ALLOWED_TYPES = env_list(
    "CHAT_UPLOAD_ALLOWED_TYPES", "image/png,image/jpeg,image/gif,image/webp,application/pdf,application/zip,text/plain"
)
CHAT_THUMBNAIL_SIDE = int(os.environ.get("CHAT_THUMBNAIL_SIDE", "400"))
# Behind nginx: the internal location (deploy/nginx.conf) that serves MEDIA_ROOT once the app has said yes.
CHAT_FILES_ACCEL_REDIRECT = os.environ.get("CHAT_FILES_ACCEL_REDIRECT", "")
# Remote storage: seconds a signed URL the app redirects to stays valid.
CHAT_FILES_URL_EXPIRY = int(os.environ.get("CHAT_FILES_URL_EXPIRY", "300"))
# Keep equal to daphne's --websocket-max-message-size (deploy/, Makefile).
CHAT_MAX_FRAME_BYTES = int(os.environ.get("CHAT_MAX_FRAME_BYTES", "65536"))

# /metrics (chat/platform/scrape.py): readable with "Authorization: Bearer <CHAT_METRICS_TOKEN>", or from an
# address in one of these networks; every other scrape gets 403. Empty: by the token alone.
CHAT_METRICS_TOKEN = os.environ.get("CHAT_METRICS_TOKEN", "")
if CHAT_METRICS_TOKEN and len(CHAT_METRICS_TOKEN) < 16:
    raise ImproperlyConfigured("CHAT_METRICS_TOKEN must be at least 16 characters long (or unset).")


def env_networks(name, default=""):
    """Return the comma-separated networks (CIDR) of the environment variable `name`; a bad one stops the start."""
    networks = env_list(name, default)
    for network in networks:
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError as error:
            raise ImproperlyConfigured(f"{name}: {error}") from None
    return networks


CHAT_METRICS_ALLOWED_ADDRESSES = env_networks("CHAT_METRICS_ALLOWED_ADDRESSES", "127.0.0.1/32,::1/128")

# Link previews (chat/domain/previews.py, fetched through chat/platform/safefetch.py): the first links of a
# message, fetched by the server. Only public addresses are fetched, unless in one of ALLOWED_NETWORKS (an
# intranet's, or 127.0.0.1/32 in the tests); TIMEOUT bounds a whole fetch, redirects included, MAX_BYTES its body.
CHAT_PREVIEWS_ENABLED = env_bool("CHAT_PREVIEWS_ENABLED", default=True)
CHAT_PREVIEW_ALLOWED_NETWORKS = env_networks("CHAT_PREVIEW_ALLOWED_NETWORKS", "")
CHAT_PREVIEW_TIMEOUT = float(os.environ.get("CHAT_PREVIEW_TIMEOUT", "5"))
CHAT_PREVIEW_MAX_BYTES = int(os.environ.get("CHAT_PREVIEW_MAX_BYTES", str(1024 * 1024)))
CHAT_PREVIEW_CACHE_SECONDS = int(os.environ.get("CHAT_PREVIEW_CACHE_SECONDS", str(24 * 3600)))
