from django.apps import AppConfig


class ChatConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "chat"

    def ready(self):
        from chat.realtime import signals  # noqa: F401  (connects the receivers)
        from chat.web import admin  # noqa: F401  (registers the models with the admin site)
