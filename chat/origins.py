"""Refuse websocket handshakes from pages of other sites (cross-site websocket hijacking)."""
from channels.security.websocket import OriginValidator
from django.conf import settings


class AllowedOriginsValidator(OriginValidator):
    """Admit only Origins whose host is in ALLOWED_HOSTS or that CSRF_TRUSTED_ORIGINS lists.

    Unlike channels' AllowedHostsOriginValidator it reads the settings at each
    handshake, and it also admits the trusted origins that Django's CSRF check
    admits for form posts. A missing Origin is refused.
    """

    def __init__(self, application):
        super().__init__(application, allowed_origins=None)

    @property
    def allowed_origins(self):
        hosts = settings.ALLOWED_HOSTS
        if settings.DEBUG and not hosts:
            hosts = ["localhost", "127.0.0.1", "[::1]"]
        # Django writes subdomain wildcards as https://*.example.com, channels as https://.example.com.
        trusted = [origin.replace("://*.", "://.") for origin in settings.CSRF_TRUSTED_ORIGINS]
        return [*hosts, *trusted]

    @allowed_origins.setter
    def allowed_origins(self, value):
        """Ignore the value OriginValidator.__init__ stores: the settings decide."""
