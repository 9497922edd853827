"""Template filters of the oversight pages."""

from __future__ import annotations

from django import template

register = template.Library()


@register.filter
def duration(seconds) -> str:
    """Seconds for people: 42 s, 6.9 min, 3.2 h, 2.1 d; a dash when there is none."""
    if seconds is None or seconds == "":
        return "–"
    s = float(seconds)
    if s < 120:
        return f"{s:.0f} s" if s >= 10 else f"{s:.1f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    if s < 3 * 86400:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.1f} d"


@register.filter
def percent(value) -> str:
    return "–" if value is None else f"{100 * value:.0f}%"
