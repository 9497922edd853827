"""Who may decide what, and what a valid decision is: one implementation of each rule, called
by the review page's form, the API and `checkpoint_decide` alike (the form calls them to give
field errors early; the transition calls them again, because it is the one that must hold).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db.models import Exists, OuterRef
from django.utils import timezone

from approvals.models import RISK_ORDER, Checkpoint, Decision, Risk
from approvals.schemas import args_errors
from core.canonical import check_storable_json, check_storable_text
from core.exceptions import InvalidInput, NotAllowed
from core.roles import user_roles

Outcome = Decision.Outcome

# What each kind takes when the agent does not narrow it (`allowed_outcomes` empty) ...
ALLOWED_OUTCOMES = {
    Checkpoint.Kind.APPROVAL: {Outcome.APPROVE, Outcome.REJECT, Outcome.MODIFY},
    Checkpoint.Kind.REVIEW: {Outcome.APPROVE, Outcome.REJECT, Outcome.MODIFY},
    Checkpoint.Kind.QUESTION: {Outcome.ANSWER, Outcome.REJECT},
}
# ... and what an agent may list: an approval may also be answered in place of running the
# tool (LangGraph's "respond"), when the agent says so.
POSSIBLE_OUTCOMES = {
    Checkpoint.Kind.APPROVAL: {Outcome.APPROVE, Outcome.REJECT, Outcome.MODIFY, Outcome.ANSWER},
    Checkpoint.Kind.REVIEW: {Outcome.APPROVE, Outcome.REJECT, Outcome.MODIFY, Outcome.ANSWER},
    Checkpoint.Kind.QUESTION: {Outcome.ANSWER, Outcome.REJECT},
}
OUTCOME_ORDER = [Outcome.APPROVE, Outcome.MODIFY, Outcome.ANSWER, Outcome.REJECT]


# --- who: review roles --------------------------------------------------------------------------

DECIDE_PERMISSION = "decide_checkpoint"  # approvals.decide_checkpoint


def _review_groups():
    """Groups holding the decide permission: the review roles. The managers group never is
    one (managers read everything and decide nothing), whatever it was granted."""
    return Group.objects.filter(
        permissions__codename=DECIDE_PERMISSION, permissions__content_type__app_label="approvals"
    ).exclude(name=settings.HITL_MANAGERS_GROUP)


def review_role_names() -> set[str]:
    return set(_review_groups().values_list("name", flat=True))


def is_review_role(name: str) -> bool:
    return bool(name) and _review_groups().filter(name=name).exists()


def user_review_roles(user) -> set[str]:
    """The review roles the user holds (cached on the user object for the request)."""
    if not user or not user.is_authenticated:
        return set()
    cached = getattr(user, "_hitl_review_roles", None)
    if cached is None:
        cached = set(_review_groups().filter(user=user).values_list("name", flat=True))
        user._hitl_review_roles = cached
    return cached


@dataclass(frozen=True)
class Access:
    """What the role rules ask of one user's roles about one checkpoint, read as columns of
    the checkpoint's own row (`access_columns`): the row lock of a decision is also its
    access check, without reading the user's groups first."""

    manager: bool  # in the managers group
    in_role: bool  # holds the checkpoint's current role (sees it, `checkpoints_visible_to`)
    reviews: bool  # holds it as a review role (may decide it, `can_decide`)

    def visible(self, user) -> bool:
        return user.is_superuser or self.manager or self.in_role


ACCESS_COLUMNS = ("_access_manager", "_access_in_role", "_access_reviews")


def access_columns(user) -> dict[str, Exists]:
    """Annotations for a checkpoint queryset: the `Access` of `user` to each row."""
    memberships = get_user_model().groups.through.objects.filter(user_id=user.pk)
    current = memberships.filter(group__name=OuterRef("current_role"))
    return dict(
        zip(
            ACCESS_COLUMNS,
            (
                Exists(memberships.filter(group__name=settings.HITL_MANAGERS_GROUP)),
                Exists(current),
                Exists(current.filter(group__in=_review_groups())),
            ),
            strict=True,
        )
    )


def access_of(cp: Checkpoint) -> Access:
    """The `Access` a checkpoint read with `access_columns` carries."""
    return Access(*(bool(getattr(cp, name)) for name in ACCESS_COLUMNS))


def can_decide(user, cp: Checkpoint, access: Access | None = None) -> bool:
    """The role check: an active staff user (a portal user) who holds the checkpoint's current
    role as a review role, or a superuser. A member of the managers group never decides,
    superuser or not: oversight reads. Four-eyes, the credential and the checkpoint's state
    are checked by `check_may_review`, `check_credential` and the transition. `access`: the
    user's roles as read with the checkpoint (`access_of`), else they are read here."""
    if not user or not user.is_authenticated or not user.is_active or not user.is_staff:
        return False
    if getattr(user, "is_agent", False):
        return False
    if access.manager if access else settings.HITL_MANAGERS_GROUP in user_roles(user):
        return False
    if user.is_superuser:
        return True
    return access.reviews if access else cp.current_role in user_review_roles(user)


def four_eyes_excluded_ids(cp: Checkpoint) -> list:
    """The people who may never decide this checkpoint: whoever the agent asks for, and the
    agent's owner."""
    return [pk for pk in (cp.requester_id, cp.agent.owner_id) if pk]


def four_eyes_excluded(user, cp: Checkpoint) -> bool:
    return user.pk is not None and user.pk in four_eyes_excluded_ids(cp)


def deciders(role: str, cp: Checkpoint | None = None):
    """The people who may decide for `role` (a review role): its active staff members, minus
    the four-eyes exclusions of `cp`. Empty for a role that is not a review role."""
    User = get_user_model()
    if not is_review_role(role):
        return User.objects.none()
    qs = User.objects.filter(is_active=True, is_staff=True, groups__name=role)
    if cp is not None:
        qs = qs.exclude(pk__in=four_eyes_excluded_ids(cp))
    return qs.distinct()


def check_may_review(user, cp: Checkpoint, access: Access | None = None) -> None:
    """Claim, be handed, or vote on `cp`: the role, then four-eyes. Raises NotAllowed."""
    if not can_decide(user, cp, access):
        raise NotAllowed(f"{user.get_username()} is not a reviewer for role {cp.current_role!r}")
    if four_eyes_excluded(user, cp):
        raise NotAllowed("Four-eyes: the requester of a checkpoint cannot review it")


# --- how they proved who they are ----------------------------------------------------------------

READ, DECIDE, CRITICAL = "read", "decide", "critical"
SESSION, TOKEN, CHAT, INTERNAL = "session", "token", "chat", "internal"


@dataclass(frozen=True)
class Credential:
    """How the person deciding authenticated, as far as deciding cares: the edge (review page,
    API, chat) builds it from its request and the transition checks it (`check_credential`).

    kind: "session" (the portal's login), "token" (a personal API token), "chat" (a button in
    Slack, from a chat account its owner linked to the portal) or "internal" (code running
    inside the portal: tests, the shell). mfa_at: when this login last passed a second factor
    (a token or a chat link: when it was made from such a login). scopes: what a token may do
    ("critical": decide critical-risk requests where step-up applies). mfa_enabled: the
    account has an authenticator (or the portal requires one), so step-up applies to it."""

    kind: str
    mfa_at: dt.datetime | None = None
    scopes: frozenset[str] = frozenset({READ, DECIDE})
    # A callable is asked only when a check needs the answer (it costs a query).
    mfa_enabled: bool | Callable[[], bool] = False

    def has_mfa(self) -> bool:
        value = self.mfa_enabled
        return bool(value() if callable(value) else value)

    @classmethod
    def internal(cls) -> Credential:
        return cls(INTERNAL, mfa_at=timezone.now())


class StepUpRequired(NotAllowed):
    """Deciding this request needs a fresh second factor (or a token scoped for it)."""

    code = "step_up_required"


def step_up_applies(cp: Checkpoint) -> bool:
    """Is `cp` risky enough that deciding it needs a recent MFA confirmation
    (HITL_STEP_UP_RISK and above)?"""
    return step_up_risk(cp.risk)


def step_up_risk(risk: str) -> bool:
    """Is `risk` at or above HITL_STEP_UP_RISK?"""
    threshold = settings.HITL_STEP_UP_RISK
    return bool(threshold) and RISK_ORDER[risk] >= RISK_ORDER[threshold]


def may_decide_from_chat(cp: Checkpoint) -> bool:
    """High- and critical-risk requests are never decided from chat, nor is any request that
    needs a step-up (HITL_STEP_UP_RISK lowered below high): chat cannot ask for a second
    factor. Their buttons open the review page."""
    return RISK_ORDER[cp.risk] < RISK_ORDER[Risk.HIGH] and not step_up_applies(cp)


def check_credential(
    credential: Credential, cp: Checkpoint | None = None, now: dt.datetime | None = None
) -> None:
    """May this credential decide (`cp`)? A token needs the decide scope; where MFA is required
    (HITL_REQUIRE_MFA) the login, the token's minting or the chat link must have passed MFA.
    Chat never decides high or critical risk. Step-up (HITL_STEP_UP_RISK and above, for an
    account with MFA): a login needs a second factor within HITL_STEP_UP_SECONDS (allauth's
    reauthentication), a token deciding a critical request needs the critical scope."""
    if DECIDE not in credential.scopes:
        raise NotAllowed("This token may only read: deciding needs a token with the decide scope")
    if settings.HITL_REQUIRE_MFA and credential.mfa_at is None:
        raise NotAllowed(
            "Deciding needs a login with two-factor authentication (HITL_REQUIRE_MFA): sign in "
            "again with your authenticator"
            + (", and mint a new token from that session" if credential.kind == TOKEN else "")
        )
    if cp is None or credential.kind == INTERNAL:
        return
    if credential.kind == CHAT:
        if not may_decide_from_chat(cp):
            raise NotAllowed(
                f"A {cp.risk}-risk request is decided on the review page, not from chat"
                + (" (it needs a second factor)" if step_up_applies(cp) else ""),
                code="chat_not_allowed",
            )
        return
    if not step_up_applies(cp):
        return
    if credential.kind == TOKEN:
        if cp.risk == Risk.CRITICAL and CRITICAL not in credential.scopes and credential.has_mfa():
            raise StepUpRequired(
                "A critical request needs a token minted with the “decide critical” scope "
                "after a fresh two-factor confirmation, or a decision on the review page"
            )
        return
    if not credential.has_mfa():
        return
    now = now or timezone.now()
    fresh = dt.timedelta(seconds=settings.HITL_STEP_UP_SECONDS)
    if credential.mfa_at is None or now - credential.mfa_at > fresh:
        raise StepUpRequired(
            f"A {cp.risk}-risk request needs a fresh two-factor confirmation: confirm with "
            f"your authenticator (valid {settings.HITL_STEP_UP_SECONDS // 60} min), then decide"
        )


def step_up_needed(credential: Credential, cp: Checkpoint) -> bool:
    """For the review page: would deciding `cp` with this credential ask for step-up now?"""
    try:
        check_credential(credential, cp)
    except StepUpRequired:
        return True
    except NotAllowed:
        return False
    return False


# --- what ----------------------------------------------------------------------------------------


def _storable(field: str, check, *args) -> None:
    """The same storability check the API's parser applies, naming the field at fault."""
    try:
        check(*args)
    except InvalidInput as exc:
        raise InvalidInput(str(exc), field) from None


def option_choices(cp: Checkpoint) -> list[tuple[str, str]]:
    """The checkpoint's custom options as (value, label): `"yes"` or
    `{"value": "yes", "label": "Yes, go ahead"}`."""
    out = []
    for o in cp.options or []:
        if isinstance(o, dict):
            value = str(o.get("value", ""))
            out.append((value, str(o.get("label") or value)))
        else:
            out.append((str(o), str(o)))
    return out


def option_values(cp: Checkpoint) -> list[str]:
    return [value for value, _label in option_choices(cp)]


def check_edited_args(value: Any) -> None:
    """A reviewer's edited arguments must be JSON every database stores (the API's parser
    refuses the same): InvalidInput on `action` otherwise."""
    _storable("action", check_storable_json, value, settings.HITL_API_MAX_JSON_DEPTH)


def allowed_outcomes(cp: Checkpoint) -> list[str]:
    """The outcomes reviewers may choose for `cp`, in the order the page shows them."""
    allowed = set(cp.allowed_outcomes or ()) or ALLOWED_OUTCOMES[cp.kind]
    return [o for o in OUTCOME_ORDER if o in allowed]


def check_allowed_outcomes(kind: str, outcomes: list[str]) -> list[str]:
    """An agent's `allowed_outcomes` for a new checkpoint of `kind`: a non-empty subset of
    what the kind takes, normalized to the page's order. Raises InvalidInput."""
    possible = POSSIBLE_OUTCOMES[kind]
    wrong = [o for o in outcomes if o not in possible]
    if wrong:
        raise InvalidInput(
            f"A {kind} checkpoint can allow only: {', '.join(sorted(possible))} "
            f"(not {', '.join(map(str, wrong))}).",
            "allowed_outcomes",
        )
    if outcomes and not set(outcomes) & {Outcome.APPROVE, Outcome.ANSWER, Outcome.MODIFY}:
        raise InvalidInput(
            "Allow at least one outcome besides reject: a reviewer must be able to say yes.",
            "allowed_outcomes",
        )
    return [o for o in OUTCOME_ORDER if o in set(outcomes)]


def reject_option(cp: Checkpoint, value: str) -> dict | None:
    for option in cp.reject_options or []:
        if option.get("value") == value:
            return option
    return None


def reject_option_text(option: dict) -> str:
    """The reason a chosen reject option gives when the reviewer writes none."""
    return option.get("prompt_fill") or option.get("label") or option.get("value") or ""


def decision_comment(cp: Checkpoint, outcome: str, comment: str, answer: str) -> str:
    """The comment recorded with a decision: a rejection that picked a named reason but wrote
    nothing gets that reason's text, so every rejection carries a reason the agent reads."""
    comment = (comment or "").strip()
    if outcome == Outcome.REJECT and not comment and answer:
        option = reject_option(cp, answer)
        if option is not None:
            return reject_option_text(option).strip()
    return comment


def validate_decision(
    cp: Checkpoint,
    outcome: str,
    *,
    comment: str = "",
    action: Any = None,
    answer: str = "",
    check_args: bool = True,
) -> dict | None:
    """Raise InvalidInput (naming the field) unless this is a decision `cp` can take. Returns
    the edited action for `modify` (the current action with the reviewer's arguments), else
    None.

    - The outcome must be one the checkpoint allows (`allowed_outcomes`; code
      `outcome_not_allowed`).
    - `answer` with approve/modify picks one of the checkpoint's custom options; with answer
      it is the answer (one of the options, if there are any; `comment` may add free text);
      with reject it names one of the `reject_options`.
    - A rejection needs a reason: the comment, or a named reject option.
    - An edit's arguments must fit the action's `args_schema`, if it has one
      (`check_args_fit`; `check_args=False`: the caller already checked these arguments)."""
    if outcome not in Outcome.values:
        raise InvalidInput(f"Unknown outcome {outcome!r}", "outcome")
    for field, text in (("comment", comment), ("answer", answer)):
        _storable(field, check_storable_text, text or "")
    allowed = allowed_outcomes(cp)
    if outcome not in allowed:
        raise InvalidInput(
            f"This checkpoint allows only: {', '.join(allowed)}.",
            "outcome",
            code="outcome_not_allowed",
        )
    values = option_values(cp)
    if outcome == Outcome.REJECT:
        if answer and reject_option(cp, answer) is None:
            named = [str(o.get("value")) for o in cp.reject_options or []]
            raise InvalidInput(
                f"Pick one of the named reasons: {', '.join(named)}."
                if named
                else "This checkpoint has no named reasons to reject; write one.",
                "answer",
            )
        if not decision_comment(cp, outcome, comment, answer):
            raise InvalidInput("A rejection needs a reason the agent can act on.", "comment")
    if outcome == Outcome.ANSWER:
        if not (answer or "").strip():
            raise InvalidInput("An answer is required.", "answer")
        if values and answer not in values:
            raise InvalidInput(f"Pick one of the offered answers: {', '.join(values)}.", "answer")
    if outcome in (Outcome.APPROVE, Outcome.MODIFY) and answer and values and answer not in values:
        raise InvalidInput(f"Pick one of the offered options: {', '.join(values)}.", "answer")
    if outcome != Outcome.MODIFY:
        return None
    if not isinstance(action, dict) or not isinstance(action.get("args"), dict):
        raise InvalidInput(
            'An edited action must be an object like {"tool": ..., "args": {...}}', "action"
        )
    check_edited_args(action)
    original_tool = (cp.action or {}).get("tool")
    tool = action.get("tool", original_tool)
    if tool != original_tool:
        raise InvalidInput(
            f"Edits may change the arguments, not the tool ({original_tool!r})", "action"
        )
    if check_args:
        check_args_fit(cp.action, action["args"])
    return {**(cp.final_action or cp.action or {}), "tool": tool, "args": action["args"]}


def check_args_fit(original_action: dict | None, args: Any) -> None:
    """InvalidInput (field `action`, the errors per argument) unless `args` fit the original
    action's `args_schema`. It depends on the original action only, which never changes, so
    a caller may run it before it locks the checkpoint (it can take up to a second:
    `HITL_ARGS_SCHEMA_CHECK_BUDGET`)."""
    errors = args_errors((original_action or {}).get("args_schema"), args)
    if errors:
        first = next(iter(errors.items()))
        where = f"{first[0]}: " if first[0] != "non_field_errors" else ""
        raise InvalidInput(
            f"The edited arguments do not fit the tool's schema: {where}{first[1][0]}",
            "action",
            detail={"args": errors},
        )
