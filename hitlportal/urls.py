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
