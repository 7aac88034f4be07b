"""The Django admin's login page, throttled like the site's login page."""
from django.contrib import admin


def admin_login(request, extra_context=None):
    """Serve the admin's login page, answering 429 while a username or address is throttled."""
    response = admin.site.login(request, extra_context)
    form = (getattr(response, "context_data", None) or {}).get("form")
    if getattr(form, "throttled", False):
        response.status_code = 429
    return response
