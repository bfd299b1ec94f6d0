"""The correlation context of the current request, and helpers that carry it where Python does not.

A ``ContextVar`` follows asyncio tasks on its own, but not plain threads, ``ThreadPoolExecutor`` jobs or
``loop.run_in_executor`` (the anchors lose the ID there); the carriers below copy the context explicitly.
"""

from __future__ import annotations

import contextvars
import functools
import threading
from collections.abc import Callable, Coroutine, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from corrtrace.ids import new_uuid7

if TYPE_CHECKING:  # imported lazily at run time: asyncio alone is ~30 ms of a Lambda cold start
    import asyncio
    from concurrent.futures import Future, ThreadPoolExecutor

P = ParamSpec("P")
R = TypeVar("R")

_correlation_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("corrtrace_id", default=None)
_log_fields: contextvars.ContextVar[Mapping[str, Any] | None] = contextvars.ContextVar(
    "corrtrace_log_fields", default=None
)

get_correlation_id = _correlation_id.get
get_log_fields = _log_fields.get


# Bind without a ``with`` block (the middleware's per-request path): ``token = set_correlation_id(cid)``, then
# ``reset_correlation_id(token)`` in a ``finally``. The ContextVar's own methods: no wrapper call per request.
set_correlation_id = _correlation_id.set
reset_correlation_id = _correlation_id.reset


_LOGGED = "__corrtrace_logged__"


def mark_logged(exc: BaseException) -> None:
    """Note that ``exc`` was logged under its request's ID, so a server's second traceback of it can be dropped."""
    try:
        setattr(exc, _LOGGED, True)
    except Exception:  # an exception type that refuses attributes: the server may log it a second time
        pass


def was_logged(exc: BaseException | None) -> bool:
    return exc is not None and getattr(exc, _LOGGED, False) is True


@contextmanager
def bind_correlation_id(value: str | None = None) -> Iterator[str]:
    """Bind a correlation ID (a fresh one when ``value`` is None) for the ``with`` block, then restore."""
    bound = value if value is not None else new_uuid7()
    token = _correlation_id.set(bound)
    try:
        yield bound
    finally:
        _correlation_id.reset(token)


def set_log_fields(fields: Mapping[str, Any] | None) -> contextvars.Token[Mapping[str, Any] | None]:
    return _log_fields.set(fields)


def reset_log_fields(token: contextvars.Token[Mapping[str, Any] | None]) -> None:
    _log_fields.reset(token)


@contextmanager
def bind_log_fields(fields: Mapping[str, Any]) -> Iterator[None]:
    """Add nested ECS fields (e.g. ``{"faas": {"name": "f"}}``) to every log line written in the block."""
    current = _log_fields.get()
    merged = {**current, **fields} if current else dict(fields)
    token = _log_fields.set(merged)
    try:
        yield
    finally:
        _log_fields.reset(token)


def wrap(fn: Callable[P, R]) -> Callable[P, R]:
    """Return ``fn`` bound to a copy of the current context, to run later in another thread."""
    ctx = contextvars.copy_context()

    @functools.wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        return ctx.run(fn, *args, **kwargs)

    return run


class CorrelatedThread(threading.Thread):
    """A ``threading.Thread`` whose target runs in the context of the code that created it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._corrtrace_ctx = contextvars.copy_context()

    def run(self) -> None:
        self._corrtrace_ctx.run(super().run)


def _make_executor_class() -> type[ThreadPoolExecutor]:
    from concurrent.futures import ThreadPoolExecutor

    class CorrelatedThreadPoolExecutor(ThreadPoolExecutor):
        """A ``ThreadPoolExecutor`` whose jobs run in the context of the code that submitted them."""

        def submit(self, fn: Callable[..., R], /, *args: Any, **kwargs: Any) -> Future[R]:
            return super().submit(contextvars.copy_context().run, fn, *args, **kwargs)

    return CorrelatedThreadPoolExecutor


if TYPE_CHECKING:
    CorrelatedThreadPoolExecutor = _make_executor_class()


def __getattr__(name: str) -> Any:
    """Build ``CorrelatedThreadPoolExecutor`` on first use, so importing the core stays cheap."""
    if name == "CorrelatedThreadPoolExecutor":
        cls = _make_executor_class()
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def run_in_executor(
    loop: asyncio.AbstractEventLoop, executor: Any, fn: Callable[..., R], *args: Any
) -> asyncio.Future[R]:
    """``loop.run_in_executor`` that keeps the correlation context (the plain one drops it)."""
    return loop.run_in_executor(executor, contextvars.copy_context().run, fn, *args)


def create_task(coro: Coroutine[Any, Any, R], correlation_id: str | None = None) -> asyncio.Task[R]:
    """Start a task in a copy of this context, optionally under its own correlation ID."""
    ctx = contextvars.copy_context()
    if correlation_id is not None:
        ctx.run(_correlation_id.set, correlation_id)
    import asyncio

    return asyncio.get_running_loop().create_task(coro, context=ctx)
