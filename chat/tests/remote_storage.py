"""A stand-in for a remote storage (S3 and the like): files kept locally, served by a signed URL of its own."""
import urllib.parse

from django.core.files.storage import FileSystemStorage, Storage

SIGNED_HOST = "https://files.example.test/"


class SignedStorage(Storage):
    """Keep files under MEDIA_ROOT, but hand out URLs the way django-storages' S3Storage.url does."""

    def __init__(self):
        self.local = FileSystemStorage()

    def _save(self, name, content):
        return self.local._save(name, content)

    def _open(self, name, mode="rb"):
        return self.local._open(name, mode)

    def delete(self, name):
        self.local.delete(name)

    def exists(self, name):
        return self.local.exists(name)

    def size(self, name):
        return self.local.size(name)

    def url(self, name, parameters=None, expire=None, http_method=None):
        query = urllib.parse.urlencode({"expire": expire, **(parameters or {})})
        return f"{SIGNED_HOST}{name}?{query}"
