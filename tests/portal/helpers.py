from django.urls import reverse


def review_url(cp) -> str:
    return reverse("admin:approvals_checkpoint_review", args=[cp.pk])


def decide_url(cp) -> str:
    return reverse("admin:approvals_checkpoint_decide", args=[cp.pk])


QUEUE_URL = "/admin/approvals/checkpoint/"
