"""Thin pages over the chat services and selectors."""
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import UserCreationForm
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render

from chat import selectors, services
from chat.forms import RoomOpenForm


def signup(request):
    """Create an account and log the new user in."""
    if request.user.is_authenticated:
        return redirect("chat:index")
    form = UserCreationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        return redirect("chat:index")
    return render(request, "registration/signup.html", {"form": form}, status=400 if form.errors else 200)


@login_required
def index(request):
    """List the public rooms and open a room by name."""
    form = RoomOpenForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        return redirect("chat:room", slug=form.cleaned_data["name"])
    context = {"form": form, "public_rooms": selectors.room_list_public()}
    return render(request, "chat/index.html", context, status=400 if form.errors else 200)


@login_required
def room(request, slug):
    """Show a room, creating it when it is public and new."""
    try:
        room = services.room_open(slug=slug, user=request.user)
    except ValidationError as error:
        return render(request, "chat/error.html", {"message": " ".join(error.messages)}, status=400)
    config = {
        "slug": room.slug,
        "name": room.name,
        "username": request.user.username,
        "userId": request.user.pk,
        "wsPath": f"/ws/chat/{room.slug}/",
    }
    return render(request, "chat/room.html", {"room": room, "room_config": config})


