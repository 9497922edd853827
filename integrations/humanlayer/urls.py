"""/humanlayer/v1/: exactly the SDK's paths, without trailing slashes (a 301 to a slashed URL
would fail its POSTs); anything else is a JSON 404."""

from django.urls import path, re_path
from django.views.decorators.csrf import csrf_exempt

from integrations.humanlayer import views

urlpatterns = [
    path("function_calls", views.CreateView.as_view(kind="function_call"), name="hl-calls"),
    path(
        "function_calls/<str:call_id>",
        views.DetailView.as_view(kind="function_call"),
        name="hl-call",
    ),
    path("contact_requests", views.CreateView.as_view(kind="human_contact"), name="hl-contacts"),
    path(
        "contact_requests/<str:call_id>",
        views.DetailView.as_view(kind="human_contact"),
        name="hl-contact",
    ),
    path(
        "agent/function_calls/<str:call_id>/respond",
        views.RespondView.as_view(kind="function_call"),
        name="hl-call-respond",
    ),
    path(
        "agent/human_contacts/<str:call_id>/respond",
        views.RespondView.as_view(kind="human_contact"),
        name="hl-contact-respond",
    ),
    path(
        "agent/function_calls/<str:call_id>/escalate_email",
        views.EscalateView.as_view(kind="function_call"),
    ),
    path(
        "agent/human_contacts/<str:call_id>/escalate_email",
        views.EscalateView.as_view(kind="human_contact"),
    ),
    re_path(r"^.*$", csrf_exempt(views.not_found)),
]
