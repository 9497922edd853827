"""`@client.require_approval(...)`: gate a tool function behind a human decision."""

from __future__ import annotations

import functools
import inspect
import json
import string
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from hitl_client.errors import ApprovalRejected
from hitl_client.models import Checkpoint, Rejection

if TYPE_CHECKING:
    from hitl_client.client import HitlClient

_P = inspect.Parameter


def _jsonable(value: Any) -> Any:
    """What the reviewer sees (and may edit). Non-JSON values are shown as their repr."""
    return json.loads(json.dumps(value, default=repr))


class _SafeDict(dict):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def _title(template: Any, tool: str, arguments: dict[str, Any]) -> str:
    if callable(template):
        return str(template(**arguments))
    text = template or f"Run {tool}"
    return string.Formatter().vformat(text, (), _SafeDict(arguments))[:300]


class _Call:
    """One call of the decorated function: its bound arguments, what is sent for review, and
    how to call it again with the approved arguments."""

    def __init__(self, sig: inspect.Signature, args: tuple, kwargs: dict):
        bound = sig.bind(*args, **kwargs)
        bound.apply_defaults()
        self.sig = sig
        self.original = dict(bound.arguments)
        self.sent = {name: _jsonable(value) for name, value in self.original.items()}

    def invoke(self, fn: Callable, approved: dict[str, Any]) -> Any:
        # Unchanged arguments keep their original Python objects; edited ones take the
        # reviewer's JSON values (with their JSON types).
        final = {
            name: (
                self.original[name]
                if approved.get(name, self.sent[name]) == self.sent[name]
                else approved[name]
            )
            for name in self.original
        }
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        for name, param in self.sig.parameters.items():
            if name not in final:
                continue
            if param.kind is _P.POSITIONAL_ONLY:
                args.append(final[name])
            elif param.kind is _P.VAR_POSITIONAL:
                args.extend(final[name])
            elif param.kind is _P.VAR_KEYWORD:
                kwargs.update(final[name])
            else:
                kwargs[name] = final[name]
        return fn(*args, **kwargs)


def require_approval_decorator(
    client: HitlClient,
    fn: Callable | None = None,
    *,
    title: str | Callable[..., str] | None = None,
    risk: str = "medium",
    tool: str | None = None,
    summary: str = "",
    timeout: float | None = None,
    on_reject: str = "raise",
    role_hint: str = "",
    expires_in: int | None = None,
):
    if on_reject not in ("raise", "return"):
        raise ValueError('on_reject is "raise" or "return"')

    def decorate(func: Callable) -> Callable:
        sig = inspect.signature(func)
        tool_name = tool or func.__name__

        def ask_fields(call: _Call) -> dict[str, Any]:
            return dict(
                tool=tool_name,
                args=call.sent,
                risk=risk,
                summary=summary,
                role_hint=role_hint,
                expires_in=expires_in,
            )

        def outcome(cp: Checkpoint, call: _Call) -> Any:
            if cp.status == "approved":
                return call.invoke(func, cp.approved_args or call.sent)
            rejection = Rejection(cp.status, cp.reason, cp)
            if on_reject == "return":
                return rejection
            raise ApprovalRejected(cp, cp.reason or str(rejection), cp.status)

        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                call = _Call(sig, args, kwargs)
                cp = await client.arequest_approval(
                    _title(title, tool_name, call.original), **ask_fields(call)
                )
                await cp.wait_async(timeout=timeout)
                result = outcome(cp, call)
                return await result if inspect.isawaitable(result) else result

            return async_wrapper

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            call = _Call(sig, args, kwargs)
            cp = client.request_approval(
                _title(title, tool_name, call.original), **ask_fields(call)
            )
            cp.wait(timeout=timeout)
            return outcome(cp, call)

        return wrapper

    return decorate(fn) if fn is not None else decorate
