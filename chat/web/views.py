"""Thin pages over the chat services and selectors."""
import functools

import emoji as emoji_data
from asgiref.sync import async_to_sync
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import UserCreationForm
from django.core.exceptions import ObjectDoesNotExist, PermissionDenied, ValidationError
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.http import HttpResponse, JsonResponse
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from chat.domain import invites, search, selectors, services
from chat.domain.events import timestamp
from chat.domain.models import Room
from chat.platform.limits import Limit, LimitExceeded
from chat.realtime import build, protocol
from chat.realtime.presence import get_presence
from chat.web.forms import MemberForm, RoomOpenForm, ThrottledAuthenticationForm, client_address


class LoginView(auth_views.LoginView):
    """Django's login page, answering 429 while a username or address is throttled."""

    authentication_form = ThrottledAuthenticationForm

    def form_invalid(self, form):
        response = super().form_invalid(form)
        response.status_code = 429 if form.throttled else 200
        return response


def _next_url(request):
    """Return the page to go to after logging in or signing up (?next= on this site only), or the lobby."""
    target = request.POST.get("next") or request.GET.get("next") or ""
    safe = url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=request.is_secure())
    return target if target and safe else reverse("chat:index")


def signup(request):
    """Create an account and log the new user in; each address may sign up a few times an hour."""
    if request.user.is_authenticated:
        return redirect(_next_url(request))
    form = UserCreationForm(request.POST or None)
    # An invite link (or any page behind the login) sends a new user back to it once signed up.
    context = {"form": form, "next": request.POST.get("next") or request.GET.get("next", "")}
    if request.method == "POST":
        try:
            Limit.from_setting("signup").check(client_address(request), "Too many sign-ups from your address.")
        except LimitExceeded as error:
            form.add_error(None, f"{error.detail} Try again in {int(error.retry_after) + 1} seconds.")
            return render(request, "registration/signup.html", context, status=429)
        if form.is_valid():
            user = form.save()
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            return redirect(_next_url(request))
    return render(request, "registration/signup.html", context, status=400 if form.errors else 200)


def _room_lists(user):
    """Return (the user's memberships, other public rooms), each room with its online count (0 when unknown)."""
    memberships = list(selectors.room_list_for_user(user))
    public_rooms = list(selectors.room_list_public(exclude_user=user))
    online = async_to_sync(get_presence().online_counts)(
        [m.room_id for m in memberships] + [room.pk for room in public_rooms]
    )
    for membership in memberships:
        membership.title = membership.room.title_for(user)
        membership.online = online.get(membership.room_id, 0)
    for room in public_rooms:
        room.online = online.get(room.pk, 0)
    return memberships, public_rooms


def _socket_config(user):
    """Return what a page's script needs to open the tab's socket (protocol version 2)."""
    return {
        "username": user.username,
        "wsPath": "/ws/",
        "build": build.build_id(),
        "heartbeatMs": int(settings.CHAT_HEARTBEAT_SECONDS * 1000),
    }


def _refused(request, error):
    """Return the page of a refused change: 400 for bad input, 403 when not allowed, 404 for no such room."""
    if isinstance(error, ValidationError):
        return _error(request, " ".join(error.messages), 400)
    if isinstance(error, PermissionDenied):
        return _error(request, str(error), 403)
    return _error(request, "There is no such room.", 404)


def _json_refused(error):
    """Return the JSON answer of a refused read: 400 invalid, 403 forbidden, 404 not_found."""
    if isinstance(error, ValidationError):
        return JsonResponse({"error": "invalid", "detail": " ".join(error.messages)}, status=400)
    if isinstance(error, protocol.ProtocolError):
        return JsonResponse({"error": "invalid", "detail": error.detail}, status=400)
    if isinstance(error, PermissionDenied):
        return JsonResponse({"error": "forbidden", "detail": str(error)}, status=403)
    return JsonResponse({"error": "not_found", "detail": "There is no such room."}, status=404)


def _error(request, message, status):
    return render(request, "chat/error.html", {"message": message}, status=status)


@login_required
def index(request):
    """List the user's rooms and the public ones, and open or create a room by name."""
    form = RoomOpenForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.room_create(
                slug=form.cleaned_data["slug"], user=request.user,
                name=form.cleaned_data["name"], private=form.cleaned_data["private"],
            )
            return redirect("chat:room", slug=form.cleaned_data["slug"])
        except (ValidationError, PermissionDenied, LimitExceeded) as error:
            form.add_error("name", error.messages if isinstance(error, ValidationError) else str(error))
    memberships, public_rooms = _room_lists(request.user)
    context = {
        "form": form, "memberships": memberships, "public_rooms": public_rooms,
        "archived_rooms": selectors.room_list_archived(request.user),
        "lobby_config": _socket_config(request.user),
    }
    return render(request, "chat/index.html", context, status=400 if form.errors else 200)


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def room(request, slug, seq=None):
    """Show a room without joining it (its socket joins), or offer to create it; a POST creates or joins it.

    With `seq` (a message's permalink) the page opens at that message.
    """
    try:
        if request.method == "POST":
            room, _ = services.room_create(slug=slug, user=request.user)
            return redirect("chat:room", slug=room.slug)
        room, membership = selectors.room_get_for_user(slug=slug, user=request.user)
    except ValidationError as error:
        return _error(request, " ".join(error.messages), 400)
    except PermissionDenied as error:
        return _error(request, str(error), 403)
    except LimitExceeded as error:
        return _error(request, f"{error.detail} Try again in {int(error.retry_after) + 1} seconds.", 429)
    except ObjectDoesNotExist:
        if services.DIRECT_SLUG.fullmatch(slug):
            return _error(request, "There is no such room.", 404)
        # A 404 all the same: the room does not exist until the form is posted.
        context = {
            "heading": f"Create #{slug}?", "button": "Create room", "action": reverse("chat:room", args=[slug]),
            "text": f"There is no room called #{slug} yet. Create it as a public room anyone can join?",
        }
        return render(request, "chat/confirm.html", context, status=404)
    can_manage = room.is_private and not room.is_direct and room.created_by_id == request.user.pk
    config = {
        **_socket_config(request.user),
        "slug": room.slug,
        "name": room.title_for(request.user),
        "userId": request.user.pk,
        "lastReadSeq": membership.last_read_seq if membership else 0,
        "isStaff": request.user.is_staff,
        "emojiUrl": reverse("chat:emoji"),
        "focusSeq": seq,
        # A permalink to a reply kept in its thread opens the thread: {id, seq} of its parent.
        "focusThread": selectors.message_thread_of(room, seq) if seq is not None else None,
        "membersUrl": reverse("chat:member_search", args=[room.slug]),
        "archived": room.is_archived,
    }
    context = {
        "room": room,
        "title": room.title_for(request.user),
        "room_config": config,
        # Open, the page has joined the room (its socket does): anyone may leave but a private room's creator.
        "can_leave": not room.is_direct and not (room.is_private and room.created_by_id == request.user.pk),
        "can_edit": not room.is_direct and (not room.is_private or room.created_by_id == request.user.pk),
        "can_archive": not room.is_direct and (room.created_by_id == request.user.pk or request.user.is_staff),
        "members": selectors.room_member_names(room) if room.is_private else None,
        "member_form": MemberForm() if can_manage else None,
        "invite_url": _invite_url(request, room) if can_manage else None,
    }
    context["memberships"], context["public_rooms"] = _room_lists(request.user)
    return render(request, "chat/room.html", context)


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def direct(request, username):
    """Go to the direct-message room with another user; a POST opens it, a GET only finds it or offers to."""
    try:
        if request.method == "POST":
            room = services.room_open_direct(user=request.user, username=username)
        else:
            room = selectors.room_get_direct(user=request.user, username=username)
    except ObjectDoesNotExist:
        return _error(request, f"There is no user called {username!r}.", 404)
    if room is None:
        context = {
            "heading": f"Message {username}?", "button": "Start conversation",
            "action": reverse("chat:direct", args=[username]), "text": f"You have no conversation with {username} yet.",
        }
        return render(request, "chat/confirm.html", context)
    return redirect("chat:room", slug=room.slug)


@login_required
@require_POST
def direct_open(request):
    """Open the direct-message room with the user the index page's form names."""
    username = request.POST.get("username", "").strip()
    if not username:
        return _error(request, "Give the username of the person to write to.", 400)
    return direct(request, username)


@login_required
@require_POST
def members(request, slug):
    """Add or remove a member of a private room, for its creator."""
    form = MemberForm(request.POST)
    try:
        room, _ = selectors.room_get_for_user(slug=slug, user=request.user)
        if not form.is_valid():
            raise ValidationError("Give a username and choose add or remove.")
        change = services.membership_add if form.cleaned_data["action"] == "add" else services.membership_remove
        change(room=room, actor=request.user, username=form.cleaned_data["username"])
    except (ValidationError, PermissionDenied, Room.DoesNotExist) as error:
        return _refused(request, error)
    except ObjectDoesNotExist:
        messages.error(request, f"No member or user called {form.cleaned_data['username']!r}.")
    else:
        verb = "added to" if form.cleaned_data["action"] == "add" else "removed from"
        messages.success(request, f"{form.cleaned_data['username']} was {verb} the room.")
    return redirect("chat:room", slug=room.slug)


def _invite_url(request, room):
    token = invites.invite_token(room)
    return request.build_absolute_uri(reverse("chat:invite", args=[token])) if token else None


@login_required
@require_POST
def invite_links(request, slug):
    """Turn a private room's invite links on (action=create) or revoke them all (action=revoke), for its creator."""
    try:
        room, _ = selectors.room_get_for_user(slug=slug, user=request.user)
        if request.POST.get("action") == "revoke":
            invites.invite_revoke(room=room, actor=request.user)
            messages.success(request, "Every invite link to this room was revoked.")
        else:
            invites.invite_create(room=room, actor=request.user)
    except (PermissionDenied, Room.DoesNotExist) as error:
        return _refused(request, error)
    return redirect("chat:room", slug=room.slug)


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def invite(request, token):
    """Offer to join the private room an invite link admits to; a POST joins it."""
    try:
        room = invites.invite_room(token)
        if request.method == "POST":
            invites.invite_accept(token=token, user=request.user)
            return redirect("chat:room", slug=room.slug)
    except ValidationError as error:
        return _refused(request, error)
    if room.memberships.filter(user=request.user).exists():
        return redirect("chat:room", slug=room.slug)
    context = {
        "heading": f"Join {room.name}?", "button": "Join room", "action": request.path,
        "text": f"You were invited to the private room {room.name}.",
    }
    return render(request, "chat/confirm.html", context)


@login_required
@require_POST
def room_leave(request, slug):
    """Leave a room and go back to the lobby."""
    try:
        room, _ = selectors.room_get_for_user(slug=slug, user=request.user)
        services.room_leave(room=room, user=request.user)
    except (ValidationError, PermissionDenied, Room.DoesNotExist) as error:
        return _refused(request, error)
    messages.success(request, f"You left #{room.slug}.")
    return redirect("chat:index")


@login_required
@require_POST
def room_archive(request, slug):
    """Archive a room (archived=1) or unarchive it (archived=0), for its creator or staff."""
    archived = request.POST.get("archived") != "0"
    try:
        room, _ = selectors.room_get_for_user(slug=slug, user=request.user)
        services.room_archive(room=room, actor=request.user, archived=archived)
    except (ValidationError, PermissionDenied, Room.DoesNotExist) as error:
        return _refused(request, error)
    messages.success(request, f"#{room.slug} was {'archived' if archived else 'unarchived'}.")
    return redirect("chat:room", slug=room.slug)


@login_required
@require_GET
def room_list(request):
    """Answer the user's rooms and direct messages, most recently active first, for the quick switcher."""
    memberships = selectors.room_list_for_user(request.user)
    return JsonResponse({"rooms": [
        {"room": m.room.slug, "title": m.room.title_for(request.user), "private": m.room.is_private,
         "direct": m.room.is_direct, "unread": m.unread}
        for m in memberships
    ]})


# The composer offers this many names for an @ typed so far.
MEMBER_MATCHES = 8


@login_required
@require_GET
def member_search(request, slug):
    """Answer the members of a room the user may read whose names start with ?q=, for @mention completion."""
    try:
        room, _ = selectors.room_get_for_user(slug=slug, user=request.user)
    except (ValidationError, PermissionDenied, ObjectDoesNotExist) as error:
        return _json_refused(error)
    prefix = request.GET.get("q", "")[:150]
    return JsonResponse({"users": selectors.room_member_search(room, prefix, MEMBER_MATCHES)})


@login_required
@require_GET
def messages_page(request, slug):
    """Return one page of a room's history as JSON: ?before=<seq> or ?after=<seq>, and ?limit=."""
    try:
        room, _ = selectors.room_get_for_user(slug=slug, user=request.user)
        page = protocol.parse_history_query(request.GET)
    except (ValidationError, protocol.ProtocolError, PermissionDenied, ObjectDoesNotExist) as error:
        return _json_refused(error)
    messages, has_more = selectors.message_list(room=room, before=page.before, after=page.after, limit=page.limit)
    frame = protocol.history_frame(
        messages, has_more, forward=page.after is not None, max_bytes=settings.CHAT_MAX_FRAME_BYTES
    )
    return HttpResponse(frame, content_type="application/json")


@functools.cache
def _emoji_choices():
    """Return [emoji, search words] for every fully-qualified emoji without a skin tone, in Unicode's order."""
    tones = {chr(code) for code in range(0x1F3FB, 0x1F400)}
    qualified = emoji_data.STATUS["fully_qualified"]
    choices = []
    for character, data in emoji_data.EMOJI_DATA.items():
        if data["status"] != qualified or tones & set(character):
            continue
        names = [data["en"], *data.get("alias", ())]
        choices.append([character, " ".join(name.strip(":").replace("_", " ") for name in names)])
    return choices


@require_GET
@cache_control(public=True, max_age=86400)
def emoji_list(request):
    """Answer the emoji the reaction picker offers, with the words it searches."""
    return JsonResponse(_emoji_choices(), safe=False, json_dumps_params={"ensure_ascii": False})


def _search(request):
    """Return the search a request asks for (?q=, ?order=, ?page=) with its answer; ValidationError when bad."""
    try:
        page = max(int(request.GET.get("page", "1")), 1)
    except ValueError:
        raise ValidationError("page is a number from 1.") from None
    found = {"q": request.GET.get("q", "").strip(), "order": request.GET.get("order", "newest"), "page": page}
    query = search.search_parse(found["q"])
    results, has_more = [], False
    if query.terms or query.filters:
        results, has_more = search.message_search(
            user=request.user, query=query, order=found["order"], offset=(page - 1) * search.PAGE_SIZE
        )
    return {**found, "filters": query.filters, "results": results, "has_more": has_more}


@login_required
@require_GET
def search_page(request):
    """Show the messages matching the search box's query that the user may read, newest first or by relevance."""
    try:
        context = _search(request)
    except ValidationError as error:
        context = {"q": request.GET.get("q", ""), "error": " ".join(error.messages)}
        return render(request, "chat/search.html", context, status=400)
    context["results"] = [(result, result.message.room.title_for(request.user)) for result in context["results"]]
    return render(request, "chat/search.html", context)


@login_required
@require_GET
def search_json(request):
    """Answer the same search as JSON, for scripts: ?q=, ?order=newest|relevance, ?page=."""
    try:
        found = _search(request)
    except ValidationError as error:
        return _json_refused(error)
    return JsonResponse({
        "q": found["q"], "order": found["order"], "page": found["page"], "has_more": found["has_more"],
        "results": [_search_result(result, request.user) for result in found["results"]],
    })


def _search_result(result, user):
    message = result.message
    return {
        "room": message.room.slug, "room_title": message.room.title_for(user), "id": message.id, "seq": message.seq,
        "author": message.author.username, "body": message.body, "snippet_html": result.snippet,
        "created_at": timestamp(message.created_at), "edited_at": timestamp(message.edited_at),
        "url": reverse("chat:message", args=[message.room.slug, message.seq]),
    }

