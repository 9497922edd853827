"""/runs/: an agent's runs (or, with a person's token, hosted runs), their completion and
their timeline events."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import generics, serializers, status
from rest_framework.exceptions import PermissionDenied
from rest_framework.response import Response

from agents import runtime, services
from agents.models import Agent, Run, RunEvent
from agents.runtime.agent import InvalidRunInput
from agents.transitions import run_complete, run_fail, run_start
from api.access import visible_run, visible_runs
from api.authentication import is_agent
from api.idempotency import IdempotentMixin
from api.pagination import EventPagination, NewestFirstPagination
from api.permissions import IsAgent, IsAgentOrPerson
from api.serializers import (
    RunCompleteSerializer,
    RunCreateSerializer,
    RunEventInSerializer,
    RunEventOutSerializer,
    RunOutSerializer,
    status_filter,
)
from approvals import selectors
from approvals.models import Checkpoint
from approvals.representations import iso
from audit.events import Actor


def run_data(
    run: Run, checkpoints: list[Checkpoint] | None = None, *, viewer=None
) -> dict[str, Any]:
    """`viewer`: a person sees only the run's checkpoints the role filter lets them see (an
    agent, the run's owner, sees all of its own)."""
    if checkpoints is None:
        qs = Checkpoint.with_drills.filter(run=run)
        if viewer is not None and not getattr(viewer, "is_agent", False):
            qs = qs.filter(pk__in=selectors.checkpoints_visible_to(viewer).values("pk"))
        checkpoints = list(
            qs.order_by("created_at").only("id", "status", "title", "kind", "created_at")
        )
    return {
        "id": str(run.id),
        "agent": run.agent.slug,
        "status": run.status,
        "task": run.task,
        "input": run.input,
        "external_id": run.external_id,
        "metadata": run.metadata,
        "result": run.result,
        "error": run.error,
        "created_at": iso(run.created_at),
        "updated_at": iso(run.updated_at),
        "finished_at": iso(run.finished_at),
        "checkpoints": [
            {
                "id": str(cp.id),
                "status": cp.status,
                "title": cp.title,
                "kind": cp.kind,
                "created_at": iso(cp.created_at),
            }
            for cp in checkpoints
        ],
    }


def event_data(event: RunEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "kind": event.kind,
        "message": event.message,
        "data": event.data,
        "at": iso(event.at),
    }


@extend_schema_view(
    get=extend_schema(
        operation_id="runs_list",
        tags=["runs"],
        parameters=[
            OpenApiParameter("status", str, enum=Run.Status.values),
            OpenApiParameter("external_id", str),
        ],
    ),
    post=extend_schema(
        operation_id="runs_create",
        tags=["runs"],
        summary="Start a run",
        description="With an agent key: record a run of that agent (`task`, `external_id`, "
        "`metadata`). With a person's token: start a hosted agent (`agent`, `task`, `input`); "
        "that needs the `agents.add_run` permission.",
        request=RunCreateSerializer,
        responses={201: RunOutSerializer},
    ),
)
class RunListCreateView(IdempotentMixin, generics.ListAPIView):
    permission_classes = [IsAgentOrPerson]
    serializer_class = RunOutSerializer
    pagination_class = NewestFirstPagination

    def get_queryset(self):
        qs = visible_runs(self.request.user)
        params = self.request.query_params
        status_value = status_filter(params, Run.Status.values)
        if status_value:
            qs = qs.filter(status=status_value)
        if params.get("external_id"):
            qs = qs.filter(external_id=params["external_id"])
        return qs

    def list(self, request, *args, **kwargs):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response([run_data(run, viewer=request.user) for run in page])

    def perform_post(self, request, *args, **kwargs):
        data = RunCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        user = request.user
        if is_agent(user):
            if v.get("agent") and v["agent"] != user.agent.slug:
                raise serializers.ValidationError(
                    {"agent": ["An agent key starts runs of its own agent only."]}
                )
            run = run_start(
                agent=user.agent,
                task=v["task"],
                actor=Actor.for_agent(user.agent),
                input=v["input"],
                external_id=v["external_id"],
                metadata=v["metadata"],
                complete_when_resolved=v["complete_when_resolved"],
            )
        else:
            run = _start_hosted(user, v)
        return Response(
            run_data(run, checkpoints=[]),
            status=status.HTTP_201_CREATED,
            headers={"Location": f"/api/v1/runs/{run.id}/"},
        )


def _start_hosted(user, v: dict) -> Run:
    if not v.get("agent"):
        raise serializers.ValidationError(
            {"agent": ["With a personal token, name the hosted agent to run (its slug)."]}
        )
    if not user.has_perm("agents.add_run"):
        raise PermissionDenied("Starting hosted runs needs the agents.add_run permission.")
    agent = Agent.objects.filter(slug=v["agent"], active=True, kind=Agent.Kind.HOSTED).first()
    if agent is None:
        raise serializers.ValidationError({"agent": [f"No active hosted agent {v['agent']!r}."]})
    try:
        return runtime.start_hosted_run(
            agent=agent,
            task=v["task"],
            input=v["input"],
            created_by=user,
            actor=Actor.for_user(user),
        )
    except InvalidRunInput as exc:
        raise serializers.ValidationError({k: [v] for k, v in exc.errors.items()}) from None


class RunDetailView(generics.GenericAPIView):
    permission_classes = [IsAgentOrPerson]
    serializer_class = RunOutSerializer

    @extend_schema(operation_id="runs_retrieve", tags=["runs"])
    def get(self, request, pk):
        return Response(run_data(visible_run(request.user, pk), viewer=request.user))


@extend_schema_view(
    post=extend_schema(
        operation_id="runs_complete",
        tags=["runs"],
        summary="Finish a run (completed or failed)",
        description="Pending checkpoints of the run are cancelled with it; 409 if the run "
        "already finished.",
        request=RunCompleteSerializer,
        responses={200: RunOutSerializer},
    )
)
class RunCompleteView(IdempotentMixin, generics.GenericAPIView):
    permission_classes = [IsAgent]
    serializer_class = RunCompleteSerializer

    def perform_post(self, request, pk):
        data = RunCompleteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        run = visible_run(request.user, pk)
        actor = Actor.for_agent(request.user.agent)
        if v["status"] == Run.Status.COMPLETED:
            run = run_complete(run.pk, actor, result=v["result"])
        else:
            # Partial results of a failed run are kept too, in the same transition.
            run = run_fail(run.pk, actor, error=v["error"] or "failed", result=v["result"])
        return Response(run_data(run))


@extend_schema_view(
    get=extend_schema(operation_id="runs_events_list", tags=["runs"]),
    post=extend_schema(
        operation_id="runs_events_create",
        tags=["runs"],
        summary="Add a line to the run's timeline",
        description="Steps, tool calls, observations: reviewers see them next to the "
        "checkpoint. 409 once the run has finished.",
        request=RunEventInSerializer,
        responses={201: RunEventOutSerializer},
    ),
)
class RunEventsView(IdempotentMixin, generics.ListAPIView):
    permission_classes = [IsAgentOrPerson]
    serializer_class = RunEventOutSerializer
    pagination_class = EventPagination

    def get_queryset(self):
        return RunEvent.objects.filter(run=visible_run(self.request.user, self.kwargs["pk"]))

    def list(self, request, *args, **kwargs):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response([event_data(e) for e in page])

    def perform_post(self, request, pk):
        if not is_agent(request.user):
            raise PermissionDenied("Only the run's agent writes its timeline.")
        data = RunEventInSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        event = services.run_event_add(visible_run(request.user, pk), **data.validated_data)
        return Response(event_data(event), status=status.HTTP_201_CREATED)
