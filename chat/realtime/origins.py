"""Refuse websocket handshakes from pages of other sites (cross-site websocket hijacking)."""
from urllib.parse import urlsplit

from django.conf import settings
from django.http.request import is_same_domain, split_domain_port, validate_host

from chat.platform import metrics

# The scheme of the page that opens a socket, from the socket's own scheme.
_PAGE_SCHEMES = {"ws": "http", "wss": "https", "http": "http", "https": "https"}
_DEFAULT_PORTS = {"http": 80, "https": 443}


class AllowedOriginsValidator:
    """Admit a handshake only when its Origin is the site's own origin or one CSRF_TRUSTED_ORIGINS lists.

    It mirrors Django's CSRF check of form posts (CsrfViewMiddleware._origin_verified):
    scheme, host and port all count; the Host must be in ALLOWED_HOSTS; a
    missing Origin is refused. The settings are read at each handshake.
    """

    def __init__(self, application):
        self.application = application

    async def __call__(self, scope, receive, send):
        if origin_allowed(scope):
            return await self.application(scope, receive, send)
        # Closed before accept: a plain 403, and nothing more for another site's page.
        metrics.handshake("refused", "origin")
        await receive()
        await send({"type": "websocket.close"})


def origin_allowed(scope):
    """Return whether the handshake's Origin is the request's own origin or a trusted one."""
    headers = _headers(scope)
    request_origin = headers.get("origin")
    site_origin = _site_origin(scope, headers)
    if request_origin is None or site_origin is None:
        return False
    if request_origin == site_origin or request_origin in _trusted_exact():
        return True
    try:
        parsed = urlsplit(request_origin)
    except ValueError:
        return False
    return any(is_same_domain(parsed.netloc, host) for host in _trusted_subdomains().get(parsed.scheme, ()))


def _headers(scope):
    """Return the scope's headers as a dict of text, repeated headers joined with commas as Django joins them."""
    headers = {}
    for name, value in scope.get("headers", []):
        name, value = name.decode("latin-1"), value.decode("latin-1")
        headers[name] = f"{headers[name]},{value}" if name in headers else value
    return headers


def _site_origin(scope, headers):
    """Return "scheme://host" as Django's request.is_secure() and get_host() would see it, or None for a bad Host."""
    scheme = _scheme(scope, headers)
    if settings.USE_X_FORWARDED_HOST and "x-forwarded-host" in headers:
        host = headers["x-forwarded-host"]
    elif "host" in headers:
        host = headers["host"]
    elif scope.get("server") and scope["server"][1] is not None:
        # PEP 333's reconstruction, as Django does without a Host header.
        name, port = scope["server"]
        host = name if port == _DEFAULT_PORTS[scheme] else f"{name}:{port}"
    else:
        return None
    allowed_hosts = settings.ALLOWED_HOSTS
    if settings.DEBUG and not allowed_hosts:
        allowed_hosts = [".localhost", "127.0.0.1", "[::1]"]
    domain, _ = split_domain_port(host)
    if not domain or not validate_host(domain, allowed_hosts):
        return None
    return f"{scheme}://{host}"


def _scheme(scope, headers):
    """Return "https" or "http": SECURE_PROXY_SSL_HEADER's verdict when the proxy sent it, else the socket's scheme."""
    if settings.SECURE_PROXY_SSL_HEADER:
        meta_name, secure_value = settings.SECURE_PROXY_SSL_HEADER
        value = headers.get(meta_name.removeprefix("HTTP_").lower().replace("_", "-"))
        if value is not None:
            return "https" if value.split(",", 1)[0].strip() == secure_value else "http"
    return _PAGE_SCHEMES.get(scope.get("scheme", "ws"), "http")


def _trusted_exact():
    return {origin for origin in settings.CSRF_TRUSTED_ORIGINS if "*" not in origin}


def _trusted_subdomains():
    """Return {scheme: [".example.com", ...]} of CSRF_TRUSTED_ORIGINS' wildcards, as Django reads them."""
    subdomains = {}
    for origin in settings.CSRF_TRUSTED_ORIGINS:
        if "*" in origin:
            parsed = urlsplit(origin)
            subdomains.setdefault(parsed.scheme, []).append(parsed.netloc.lstrip("*"))
    return subdomains
