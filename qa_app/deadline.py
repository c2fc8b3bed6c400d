"""Deadlines that stop the work, not only the response.

A Python thread cannot be killed, so a request that runs past its time limit would go on
holding a core after its 504 (a 2,000-character question once ran 114 s). Instead the limit
is put in a context variable for the thread doing the work, and retrieval and answering call
``check()`` between steps: past the deadline they raise ``DeadlineExceeded`` and the thread is
free again within one step. Generators read the variable of whoever calls ``next()`` on them,
so a stream is bounded by wrapping each ``next()`` (``within``).
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Callable, Iterator, TypeVar

T = TypeVar("T")

# (monotonic end, the limit in seconds as configured, for the message)
_END: ContextVar[tuple[float, float] | None] = ContextVar("qa_deadline", default=None)


class DeadlineExceeded(RuntimeError):
    def __init__(self, seconds: float):
        limit = f"{seconds:g}"
        super().__init__(f"处理超时（上限 {limit} 秒），请稍后再试或把问题拆短。"
                         f"(The question took longer than {limit} s: try again, or ask a shorter question.)")
        self.seconds = seconds


@contextmanager
def limit(seconds: float | None, end: float | None = None) -> Iterator[None]:
    """Work inside must finish within ``seconds`` (or by the monotonic time ``end``); 0 or None
    sets no limit. A limit inside another keeps the earlier end."""
    if end is None:
        if not seconds or seconds <= 0:
            yield
            return
        end = time.monotonic() + seconds
    current = _END.get()
    token = _END.set((end, seconds or 0.0) if current is None or end < current[0] else current)
    try:
        yield
    finally:
        _END.reset(token)


def check() -> None:
    """Raise ``DeadlineExceeded`` when the current work is past its deadline."""
    current = _END.get()
    if current is not None and time.monotonic() > current[0]:
        raise DeadlineExceeded(current[1])


def within(seconds: float | None, fn: Callable[[], T]) -> T:
    """``fn()`` bounded by ``seconds``."""
    with limit(seconds):
        return fn()


def bounded(items: Iterator[T], seconds: float | None) -> Iterator[T]:
    """``items``, every step of which runs under one deadline ``seconds`` from now."""
    if not seconds or seconds <= 0:
        yield from items
        return
    end = time.monotonic() + seconds
    while True:
        with limit(seconds, end):
            try:
                item = next(items)
            except StopIteration:
                return
        yield item
