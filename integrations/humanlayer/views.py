"""/humanlayer/v1/: HumanLayer's REST protocol, so `humanlayer` 0.7.9 code runs unchanged with
`HUMANLAYER_API_BASE=<portal>/humanlayer/v1` and `HUMANLAYER_API_KEY=<agent key>`.

Agent side (an agent key): create and read function calls and contact requests. People side
(a personal token or a session, like `api/review.py`): `respond`, recorded as that person
through `checkpoint_decide` (role, four-eyes, quorum, audit). Paths have no trailing slash;
every answer, errors and unknown paths included, is JSON."""

from __future__ import annotations

from django.db.models import Q, QuerySet
from rest_framework import status
from rest_framework.exceptions import APIException, NotFound
from rest_framework.response import Response
from rest_framework.views import APIView

from agents import services
from api.access import visible_checkpoints
from api.authentication import is_agent
from api.errors import problem_response
from api.idempotency import IdempotentMixin
from api.permissions import IsAgent, IsAgentOrPerson, IsPerson
from api.review import channel_for
from approvals.credentials import credential_for
from approvals.models import Checkpoint, Decision
from approvals.transitions import checkpoint_decide
from audit.events import Actor
from integrations.humanlayer import shapes

KINDS = {"function_call": Checkpoint.Kind.APPROVAL, "human_contact": Checkpoint.Kind.QUESTION}


class NotImplementedProblem(APIException):
    status_code = 501
    default_detail = "Not implemented."
    default_code = "not_implemented"


def _last_comment(cp: Checkpoint) -> str:
    if cp.status not in (Checkpoint.Status.APPROVED, Checkpoint.Status.ANSWERED):
        return ""
    vote = cp.decisions.order_by("-created_at", "-id").first()
    return vote.comment if vote else ""


class AmbiguousCallId(APIException):
    status_code = 409
    default_code = "ambiguous_call_id"


def _named(principal, call_id: str) -> Q:
    """Which checkpoints `call_id` names. Call ids are the clients' own, unique per agent: an
    agent names its own plainly; a person, who sees several agents' calls, plainly or as
    `<agent slug>:<call id>`, which is unique."""
    named = Q(external_id=shapes.external_id(call_id))
    slug, colon, own = call_id.partition(":")
    if colon and own and not is_agent(principal):
        named |= Q(agent__slug=slug, external_id=shapes.external_id(own))
    return named


def _find(principal, kind: str, call_id: str) -> Checkpoint:
    """The one call `call_id` names among those the caller may see: 404 for none, 409 (never
    a guess) when it names calls of several agents."""
    qs: QuerySet[Checkpoint] = visible_checkpoints(principal).filter(
        _named(principal, call_id), kind=KINDS[kind]
    )
    found = list(qs.select_related("agent", "resolved_by").order_by("created_at")[:10])
    if not found:
        raise NotFound(f"No {kind.replace('_', ' ')} {call_id!r}.")
    if len(found) > 1:
        names = ", ".join(f"{cp.agent.slug}:{shapes.call_id(cp)}" for cp in found)
        raise AmbiguousCallId(
            f"{call_id!r} names calls of several agents; address one as <agent>:<call id>: {names}."
        )
    return found[0]


def _data(kind: str, cp: Checkpoint) -> dict:
    build = shapes.function_call_data if kind == "function_call" else shapes.contact_data
    return build(cp, _last_comment(cp))


class _Base(APIView):
    schema = None  # HumanLayer's protocol, not part of the portal's OpenAPI document
    kind = "function_call"


class CreateView(IdempotentMixin, _Base):
    """POST /function_calls, POST /contact_requests."""

    permission_classes = [IsAgent]

    def perform_post(self, request):
        parser = shapes.FunctionCallIn if self.kind == "function_call" else shapes.HumanContactIn
        data = parser(data=request.data)
        data.is_valid(raise_exception=True)
        body = data.validated_data
        spec = shapes.raw_spec(request.data)
        agent = request.user.agent
        actor = Actor.for_agent(agent)
        run = services.run_for_external_id(
            agent,
            body["run_id"],
            task=f"HumanLayer run {body['run_id']}",
            actor=actor,
            metadata={"source": shapes.SOURCE},
        )
        fields = (
            shapes.function_call_ask(body, spec)
            if self.kind == "function_call"
            else shapes.contact_ask(body, spec)
        )
        cp, created = services.ask_once(run, services.Ask(**fields), actor=actor)
        return Response(
            _data(self.kind, cp), status=status.HTTP_201_CREATED if created else status.HTTP_200_OK
        )


class DetailView(_Base):
    """GET /function_calls/{call_id}, GET /contact_requests/{call_id}."""

    permission_classes = [IsAgentOrPerson]

    def get(self, request, call_id: str):
        return Response(_data(self.kind, _find(request.user, self.kind, call_id)))


class RespondView(IdempotentMixin, _Base):
    """POST /agent/function_calls/{call_id}/respond, /agent/human_contacts/{call_id}/respond:
    a person decides. An agent key gets 403: an agent never approves its own request."""

    permission_classes = [IsPerson]

    def perform_post(self, request, call_id: str):
        cp = _find(request.user, self.kind, call_id)
        if self.kind == "function_call":
            data = shapes.FunctionCallStatusIn(data=request.data)
            data.is_valid(raise_exception=True)
            v = data.validated_data
            outcome = Decision.Outcome.APPROVE if v["approved"] else Decision.Outcome.REJECT
            comment = v.get("comment") or ""
            answer = "" if v["approved"] else (v.get("reject_option_name") or "")
        else:
            data = shapes.HumanContactStatusIn(data=request.data)
            data.is_valid(raise_exception=True)
            v = data.validated_data
            outcome = Decision.Outcome.ANSWER
            answer, comment = shapes.respond_answer(
                cp, v["response"], v.get("response_option_name")
            )
        checkpoint_decide(
            cp.pk,
            request.user,
            outcome,
            comment=comment,
            answer=answer,
            channel=channel_for(request),
            credential=credential_for(request),
        )
        return Response(_data(self.kind, _find(request.user, self.kind, call_id)))


class EscalateView(_Base):
    """POST /agent/{function_calls|human_contacts}/{call_id}/escalate_email: the portal routes
    by policy (its escalation role at the deadline), not by e-mail on request."""

    permission_classes = [IsAgentOrPerson]

    def post(self, request, call_id: str):
        raise NotImplementedProblem(
            "escalate_email is not supported: the portal's routing policy decides who reviews "
            "and escalates at the deadline (admin → Policies)."
        )


def not_found(request, *args, **kwargs):
    """Any other path under /humanlayer/v1/: JSON, never Django's HTML page (the SDK parses
    the body before it looks at the status)."""
    return problem_response(404, f"No HumanLayer endpoint {request.path}.", "not_found")
