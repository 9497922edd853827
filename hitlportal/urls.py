from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

urlpatterns = [
    path("admin/", admin.site.urls),
    # Login, logout, password change, TOTP and recovery codes, optional SSO (django-allauth).
    path("accounts/", include("allauth.urls")),
    path("api/v1/", include("hitlportal.api_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("", include("hitlportal.root_urls")),
]

# API paths answer errors as problem details; other paths keep Django's pages.
handler400 = "agents.api.errors.handler400"
handler403 = "agents.api.errors.handler403"
handler404 = "agents.api.errors.handler404"
handler500 = "agents.api.errors.handler500"
