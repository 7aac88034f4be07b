"""ASGI entry point: HTTP goes to Django, websockets to the chat consumers."""
import gc
import os
import threading
import time

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "myproject.settings")
# Load Django (apps, models) before importing anything that touches the ORM.
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

import chat.realtime.routing  # noqa: E402
from chat.platform.scrape import MetricsEndpoint  # noqa: E402
from chat.realtime.handshakes import HandshakeGate, HandshakesPerAddress, LoginRequired  # noqa: E402
from chat.realtime.origins import AllowedOriginsValidator  # noqa: E402
from chat.realtime.sessions import SocketAuthMiddlewareStack  # noqa: E402

# Django, the apps and their modules are loaded and live for the whole process:
# freezing them keeps the garbage collector from scanning them again and again
# (a measurable share of each delivery, bench/), and a larger first generation
# makes collections rarer while frames are written.
gc.freeze()
gc.set_threshold(50_000, 20, 100)
# Every closed socket leaves a cycle (daphne's protocol, Twisted's Deferreds,
# the consumer and its task) that has usually lived long enough to reach the
# oldest generation, which the thresholds above collect almost never: the soak
# grew 150 KiB a minute. A full collection on a clock bounds that garbage to a
# minute's worth, for a pause of about 0.1 µs per live object.
GC_SECONDS = 60


def collect_garbage(seconds):
    """Run a full garbage collection every `seconds`, forever."""
    while True:
        time.sleep(seconds)
        gc.collect()


threading.Thread(target=collect_garbage, args=(GC_SECONDS,), name="chat-gc", daemon=True).start()

# Cheapest refusals first (chat/realtime/handshakes.py): a bad Origin never reaches the
# gate, and a flood from one address is turned away before it. The session
# lookup runs inside the gate: on Django's one sync thread, hundreds of them
# queued at once (a reconnect storm) would each outlive daphne's connect timeout.
# /metrics is answered before Django (chat/platform/scrape.py): a scrape never waits for its sync thread.
application = ProtocolTypeRouter(
    {
        "http": MetricsEndpoint(django_asgi_app),
        "websocket": AllowedOriginsValidator(
            HandshakesPerAddress(
                HandshakeGate(SocketAuthMiddlewareStack(LoginRequired(URLRouter(chat.realtime.routing.websocket_urlpatterns))))
            )
        ),
    }
)
