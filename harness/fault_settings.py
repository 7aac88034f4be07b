"""Settings of the daphne processes the fault tests and the soak start: the project's, plus test-only faults."""
import os

from myproject.settings import *  # noqa: F403

# The one sanctioned fault injection: a layer that loses a share of room messages.
if os.environ.get("CHAT_TEST_DROP_RATE") and REDIS_URL:  # noqa: F405
    CHANNEL_LAYERS["default"]["BACKEND"] = "harness.fault_layer.DroppingPubSubLayer"  # noqa: F405

# Hundreds of logins through the real form must not each cost a full password hash.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
