"""Uploads and the files of messages: stored through the domain, served only to users who may read their room."""
import inspect
from urllib.parse import quote

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist, PermissionDenied, ValidationError
from django.core.files.storage import FileSystemStorage, default_storage
from django.http import FileResponse, Http404, HttpResponse, HttpResponseRedirect, JsonResponse
from django.utils.http import content_disposition_header
from django.views.decorators.http import require_GET, require_POST

from chat.domain import attachments, selectors
from chat.domain.models import Attachment

# Whatever a file holds, a browser that opens it runs nothing and loads nothing.
FILE_POLICY = "default-src 'none'; sandbox"


def _refusal(status, code, detail):
    return JsonResponse({"error": code, "detail": detail}, status=status)


@require_POST
async def upload(request, slug):
    """Store one file (multipart field `file`) for the user's next message in the room; answer its Attachment object."""
    user = await request.auser()
    if not user.is_authenticated:
        return _refusal(401, "login", "Log in to upload files.")
    try:
        room, membership = await database_sync_to_async(selectors.room_get_for_user)(slug=slug, user=user)
    except (ObjectDoesNotExist, ValidationError, PermissionDenied):
        return _refusal(404, "not_found", "There is no such room.")
    if membership is None:
        return _refusal(403, "forbidden", "Only members of the room may upload to it.")
    uploaded = request.FILES.get("file")
    if uploaded is None:
        return _refusal(400, "invalid", "Send the file as the multipart field 'file'.")
    try:
        # Refused before it is read into memory.
        attachments.upload_size_check(uploaded.size)
        # Decoding and re-encoding an image takes the CPU for a while: a worker thread, not the event loop.
        prepared = await sync_to_async(_prepare, thread_sensitive=False)(uploaded)
        attachment = await database_sync_to_async(attachments.attachment_create)(
            room=room, uploader=user, prepared=prepared
        )
    except ValidationError as error:
        status = 413 if error.code == "too_large" else 400
        return _refusal(status, error.code or "invalid", " ".join(error.messages))
    except PermissionDenied as error:
        return _refusal(403, "forbidden", str(error))
    return JsonResponse(attachments.attachment_data(attachment), status=201)


def _prepare(uploaded):
    with uploaded:
        data = uploaded.read()
    return attachments.attachment_prepare(name=uploaded.name, data=data)


@require_GET
def file_download(request, attachment_id, name):
    """Serve a message's file to a user who may read its room: inline for re-encoded images, else as a download."""
    attachment = _attachment_for(request, attachment_id)
    if name != attachment.name:
        raise Http404("No such file.")
    return _serve(attachment, attachment.path)


@require_GET
def file_thumbnail(request, attachment_id):
    """Serve an image's thumbnail to a user who may read its room."""
    attachment = _attachment_for(request, attachment_id)
    if not attachment.thumbnail_path:
        raise Http404("No such file.")
    return _serve(attachment, attachment.thumbnail_path)


def _attachment_for(request, attachment_id):
    # Not logged in, not allowed and not there all look the same: a file's existence is not told.
    if not request.user.is_authenticated:
        raise Http404("No such file.")
    try:
        return attachments.attachment_get_for_user(attachment_id=attachment_id, user=request.user)
    except (Attachment.DoesNotExist, ObjectDoesNotExist, PermissionDenied):
        raise Http404("No such file.") from None


def _serve(attachment, path):
    # Only images Pillow wrote itself are shown in the page; anything else, HTML and SVG included, is downloaded.
    inline = attachment.content_type in attachments.RASTER_TYPES
    disposition = content_disposition_header(not inline, attachment.name)
    content_type = attachment.content_type + ("; charset=utf-8" if attachment.content_type == "text/plain" else "")
    if not isinstance(default_storage, FileSystemStorage):
        return _remote_redirect(path, content_type, disposition)
    if settings.CHAT_FILES_ACCEL_REDIRECT:
        # nginx sends the file itself from its internal location (deploy/nginx.conf), so daphne streams nothing.
        response = HttpResponse(content_type=content_type)
        response["X-Accel-Redirect"] = settings.CHAT_FILES_ACCEL_REDIRECT + quote(path)
    else:
        try:
            response = FileResponse(default_storage.open(path, "rb"), content_type=content_type)
        except FileNotFoundError:
            raise Http404("No such file.") from None
    response["Content-Disposition"] = disposition
    return file_headers(response, max_age=3600)


def file_headers(response, *, max_age):
    """Set on a file's response what keeps it inert and out of shared caches; return the response."""
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = FILE_POLICY
    response["Cross-Origin-Resource-Policy"] = "same-origin"
    # Private: a shared cache must not hand one member's file to someone else.
    response["Cache-Control"] = f"private, max-age={max_age}"
    return response


def _remote_redirect(path, content_type, disposition):
    """Redirect to the storage's own URL, signed for CHAT_FILES_URL_EXPIRY seconds where the backend can."""
    # django-storages' S3 backend takes these arguments; a backend without them is given the name alone.
    accepted = inspect.signature(default_storage.url).parameters
    options = {}
    if "expire" in accepted:
        options["expire"] = settings.CHAT_FILES_URL_EXPIRY
    if "parameters" in accepted:
        # S3 answers with these headers instead of what it stored.
        options["parameters"] = {"ResponseContentType": content_type, "ResponseContentDisposition": disposition}
    response = HttpResponseRedirect(default_storage.url(path, **options))
    response["Cache-Control"] = "private, no-store"
    return response
