from django.urls import path

from hitlportal import views

urlpatterns = [path("health/", views.health, name="api-health")]
