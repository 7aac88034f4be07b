"""Top-level URLs: accounts, admin, the health check and the chat app."""
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from chat.platform import health
from chat.web import views as chat_views
from chat.web.admin_login import admin_login
from chat.web.forms import ThrottledAdminAuthenticationForm

# A failed login on either login page counts for both, so staff passwords are no easier to guess at /admin/.
admin.site.login_form = ThrottledAdminAuthenticationForm

urlpatterns = [
    # Before admin/, which would serve its login page with a 200 while throttled.
    path("admin/login/", admin_login),
    path("admin/", admin.site.urls),
    path("healthz", health.healthz, name="healthz"),
    path("accounts/login/", chat_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/signup/", chat_views.signup, name="signup"),
    path("", include("chat.web.urls")),
]
