"""Your notifications (/admin/notifications/): email on or off, immediately or as an hourly
digest, out of office (no notifications, claims released, shown as away in the queue), and
the chat accounts linked to you."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone

from audit.events import Actor
from notifications import services
from notifications.models import ChatLink, Preference


class PreferenceForm(forms.Form):
    email = forms.BooleanField(required=False, label="Email me")
    email_mode = forms.ChoiceField(
        choices=Preference.EmailMode.choices,
        widget=forms.RadioSelect,
        label="When",
        help_text="A digest collects an hour of notifications into one email.",
    )
    away_until = forms.DateTimeField(
        required=False,
        label="Out of office until",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%d"],
        help_text="Empty: you are in. While away you get no notifications, your claims are "
        "released and the queue shows you as away.",
    )
    away_note = forms.CharField(
        required=False, max_length=200, label="Note", help_text="e.g. who covers for you."
    )

    def clean_away_until(self):
        value = self.cleaned_data.get("away_until")
        if value is not None and value <= timezone.now():
            raise forms.ValidationError("A time in the future (or empty: you are in).")
        return value


def preferences(admin_site, request: HttpRequest) -> HttpResponse:
    pref = services.preference_for(request.user)
    form = PreferenceForm(
        initial={
            "email": pref.email,
            "email_mode": pref.email_mode,
            "away_until": timezone.localtime(pref.away_until) if pref.is_away() else None,
            "away_note": pref.away_note if pref.is_away() else "",
        }
    )
    if request.method == "POST":
        form = PreferenceForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            services.preferences_save(
                request.user,
                email=data["email"],
                email_mode=data["email_mode"],
                away_until=data["away_until"],
                away_note=data["away_note"],
            )
            messages.success(request, "Notification settings saved.")
            return HttpResponseRedirect(reverse("admin:hitl_notifications"))
    context = {
        **admin_site.each_context(request),
        "title": "Your notifications",
        "form": form,
        "pref": pref,
        "away": pref.is_away(),
        "links": ChatLink.objects.filter(user=request.user).order_by("created_at"),
        "has_email": bool(request.user.email),
    }
    return TemplateResponse(
        request,
        "admin/hitl_notifications.html",
        context,
        status=200 if request.method == "GET" else 400,
    )


def unlink(admin_site, request: HttpRequest, link_id: int) -> HttpResponse:
    link = ChatLink.objects.filter(pk=link_id, user=request.user).select_related("user").first()
    if link is None:
        raise Http404("No such chat account of yours")
    services.chat_unlink(link, Actor.for_user(request.user))
    messages.success(request, f"Unlinked {link.chat_name or link.chat_user_id}.")
    return HttpResponseRedirect(reverse("admin:hitl_notifications"))
