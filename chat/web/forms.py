"""Forms of the chat pages."""
from django import forms
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError

from chat.domain import moderation, services
from chat.platform.limits import Limit, LimitExceeded


class RoomOpenForm(forms.Form):
    name = forms.CharField(label="Room name", max_length=50)
    private = forms.BooleanField(label="Private (members only)", required=False)

    def clean(self):
        """Add the `slug` that the typed name opens."""
        cleaned = super().clean()
        if "name" in cleaned:
            try:
                cleaned["slug"] = services.room_slug_from_name(cleaned["name"])
            except ValidationError as error:
                self.add_error("name", error.messages)
        return cleaned


class MemberForm(forms.Form):
    username = forms.CharField(label="Username", max_length=150)
    action = forms.ChoiceField(choices=[("add", "Add"), ("remove", "Remove")])


class MuteForm(forms.Form):
    username = forms.CharField(label="Username", max_length=150)
    action = forms.ChoiceField(choices=[("mute", "Mute"), ("unmute", "Unmute")])
    minutes = forms.TypedChoiceField(
        label="For", choices=[(10, "10 minutes"), (60, "1 hour"), (1440, "1 day")], coerce=int, required=False,
        empty_value=10,
    )


class LoginThrottle:
    """Refuse a login form's username or address after repeated failures, counted for every login page alike."""

    throttled = False

    def clean(self):
        """Refuse at once when throttled; count each failed attempt."""
        limit = Limit.from_setting("login_failure")
        # One address may try several usernames, so its limit is wider.
        per_address = Limit(limit.name + "_address", limit.count * 4, limit.seconds)
        keys = [(limit, f"username:{(self.data.get('username') or '').lower()}"), (per_address, client_address(self.request))]
        try:
            for each, key in keys:
                each.check_peek(key, "Too many failed logins.")
        except LimitExceeded as error:
            self.throttled = True
            raise ValidationError(
                f"Too many failed logins; try again in {int(error.retry_after) + 1} seconds.", code="throttled"
            ) from None
        try:
            return super().clean()
        except ValidationError:
            for each, key in keys:
                each.hit(key)
            raise


class BanRefusal:
    """Refuse the login of a banned user, saying so (after the password was checked, so it tells no one else)."""

    def confirm_login_allowed(self, user):
        super().confirm_login_allowed(user)
        if moderation.user_is_banned(user):
            raise ValidationError("This account has been banned.", code="banned")


class ThrottledAuthenticationForm(LoginThrottle, BanRefusal, AuthenticationForm):
    """Django's login form, refusing a banned user, and a username or an address after repeated failures."""


class ThrottledAdminAuthenticationForm(LoginThrottle, BanRefusal, AdminAuthenticationForm):
    """The admin's login form (staff only), under the same counters as the site's login form."""


def client_address(request):
    """Return the client's address as daphne saw it (behind nginx, from X-Forwarded-For with --proxy-headers)."""
    return f"address:{request.META.get('REMOTE_ADDR', '')}"
