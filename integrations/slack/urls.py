from django.urls import path

from integrations.slack import views

urlpatterns = [
    path("actions/", views.actions, name="slack-actions"),
    path("link/<str:token>/", views.link, name="slack-link"),
]
