"""The room creator's moderation on the page: mute and unmute a member of their private room."""
import datetime

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import redirect
from django.utils import timezone
from django.views.decorators.http import require_POST

from chat.domain import moderation, selectors
from chat.domain.models import Room
from chat.web.forms import MuteForm
from chat.web.views import _refused


@login_required
@require_POST
def room_mute(request, slug):
    """Mute a member for the chosen minutes (action=mute) or lift their mute (action=unmute)."""
    form = MuteForm(request.POST)
    try:
        room, _ = selectors.room_get_for_user(slug=slug, user=request.user)
        if not form.is_valid():
            raise ValidationError("Give a username, and choose for how long to mute.")
        username = form.cleaned_data["username"]
        user = get_user_model().objects.filter(username=username, memberships__room=room).first()
        if user is None:
            raise ValidationError(f"No member called {username!r}.")
        if form.cleaned_data["action"] == "unmute":
            moderation.room_unmute(actor=request.user, room=room, user=user)
            messages.success(request, f"{username} may send here again.")
        else:
            until = timezone.now() + datetime.timedelta(minutes=int(form.cleaned_data["minutes"]))
            moderation.room_mute(actor=request.user, room=room, user=user, until=until)
            messages.success(request, f"{username} is muted here until {until:%Y-%m-%d %H:%M} UTC.")
    except (ValidationError, PermissionDenied, Room.DoesNotExist) as error:
        return _refused(request, error)
    return redirect("chat:room", slug=room.slug)
