"""Top-level URLs: accounts, admin, the health check and the chat app."""
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from chat import health
from chat import views as chat_views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("healthz", health.healthz, name="healthz"),
    path("accounts/login/", chat_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/signup/", chat_views.signup, name="signup"),
    path("", include("chat.urls")),
]
