"""The thumbnails of link previews, served only to those who may read their room."""
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ObjectDoesNotExist, PermissionDenied, ValidationError
from django.http import Http404, HttpResponse
from django.views.decorators.http import require_GET

from chat.domain import previews, selectors
from chat.web.files import file_headers


@login_required
@require_GET
def preview_image(request, slug, preview_id):
    """Return a preview's re-encoded thumbnail to a reader of its room; 404 to anyone else, as for no such image."""
    try:
        room, _ = selectors.room_get_for_user(slug=slug, user=request.user)
        data, content_type = previews.preview_image(room=room, preview_id=preview_id)
    except (ObjectDoesNotExist, PermissionDenied, ValidationError):
        # The same answer either way: a private room's outsiders learn nothing of what it holds.
        raise Http404("No such image.") from None
    response = HttpResponse(data, content_type=content_type)
    response["Content-Disposition"] = "inline"
    return file_headers(response, max_age=86400)
