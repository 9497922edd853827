"""`@client.require_approval(...)`: gate a tool function behind a human decision."""

from __future__ import annotations

import functools
import inspect
import json
import string
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from hitl_client._text import one_line
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
        return one_line(str(template(**arguments)))
    text = template or f"Run {tool}"
    # An argument's value may hold a line break: the title is one line whatever it holds.
    return one_line(string.Formatter().vformat(text, (), _SafeDict(arguments)))


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
        """Call `fn` with exactly the approved arguments: the reviewer's edit is authoritative.
        Unchanged arguments keep their original Python objects; edited ones take the
        reviewer's JSON values (with their JSON types); removed ones fall back to the
        parameter's default, and a removed argument without a default stops the call."""
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        for name, param in self.sig.parameters.items():
            if name not in approved:
                value = _removed(fn, param)
            elif approved[name] == self.sent[name]:
                value = self.original[name]
            else:
                value = _edited(fn, param, approved[name])
            # Positionally, in order: every one has a value here (sent, or its default), and
            # a *args after them would otherwise collide with them passed by keyword.
            if param.kind in (_P.POSITIONAL_ONLY, _P.POSITIONAL_OR_KEYWORD):
                args.append(value)
            elif param.kind is _P.VAR_POSITIONAL:
                args.extend(value)
            elif param.kind is _P.VAR_KEYWORD:
                kwargs.update(value)
            else:
                kwargs[name] = value
        return fn(*args, **kwargs)


def _removed(fn: Callable, param: inspect.Parameter) -> Any:
    if param.kind is _P.VAR_POSITIONAL:
        return ()
    if param.kind is _P.VAR_KEYWORD:
        return {}
    if param.default is not _P.empty:
        return param.default
    # Running with the original value would undo the reviewer's edit.
    raise TypeError(
        f"{fn.__name__}() not run: the reviewer removed the required argument "
        f"{param.name!r} from the approved arguments"
    )


def _edited(fn: Callable, param: inspect.Parameter, value: Any) -> Any:
    if param.kind is _P.VAR_POSITIONAL and not isinstance(value, list):
        raise TypeError(f"{fn.__name__}() not run: approved *{param.name} is not a list")
    if param.kind is _P.VAR_KEYWORD and not isinstance(value, dict):
        raise TypeError(f"{fn.__name__}() not run: approved **{param.name} is not an object")
    return value


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
    confidence: float | Callable[..., float | None] | None = None,
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
                confidence=confidence(**call.original) if callable(confidence) else confidence,
            )

        def approved_args(cp: Checkpoint, call: _Call) -> dict[str, Any]:
            # None: approved as proposed. A dict (even {}) is the reviewer's edit.
            approved = cp.approved_args
            return call.sent if approved is None else approved

        def rejected(cp: Checkpoint) -> Any:
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
                if cp.status != "approved":
                    return rejected(cp)
                args = approved_args(cp, call)
                # Spend the receipt right before acting: another replica that acts on the same
                # approval gets a 409 (ConflictError) here instead of acting twice.
                await client.aredeem(cp.receipt, tool=tool_name, args=args)
                result = call.invoke(func, args)
                return await result if inspect.isawaitable(result) else result

            return async_wrapper

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            call = _Call(sig, args, kwargs)
            cp = client.request_approval(
                _title(title, tool_name, call.original), **ask_fields(call)
            )
            cp.wait(timeout=timeout)
            if cp.status != "approved":
                return rejected(cp)
            args = approved_args(cp, call)
            client.redeem(cp.receipt, tool=tool_name, args=args)  # see async_wrapper
            return call.invoke(func, args)

        return wrapper

    return decorate(fn) if fn is not None else decorate
