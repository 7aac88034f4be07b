"""Close the sockets of sessions that end: logout, and deactivated users."""
from django.conf import settings
from django.contrib.auth.signals import user_logged_out
from django.db.models.signals import post_save
from django.dispatch import receiver

from chat.realtime.broadcast import user_sessions_end_on_commit


@receiver(user_logged_out)
def close_sockets_of_logged_out_session(sender, request, user, **kwargs):
    """Tell the sockets opened with this session that it ended."""
    if user is not None:
        user_sessions_end_on_commit(user.pk, request.session.session_key)


@receiver(post_save, sender=settings.AUTH_USER_MODEL)
def close_sockets_of_deactivated_user(sender, instance, **kwargs):
    """Tell every socket of a deactivated user that its session ended."""
    if not instance.is_active:
        user_sessions_end_on_commit(instance.pk)
