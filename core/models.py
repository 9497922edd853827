"""Core's only table: leases that elect one leader among processes (e.g. the deadline timer
that runs in every task cluster)."""

from __future__ import annotations

from django.db import models


class Lease(models.Model):
    """Who holds the named role until when. Taken and renewed by compare-and-set
    (`core.leases`); an expired lease is free for the next taker."""

    name = models.CharField(max_length=100, primary_key=True)
    holder = models.CharField(max_length=200, blank=True)
    expires_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.name}: {self.holder or 'free'}"
