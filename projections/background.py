"""Calls in the background: how a rebuild overlaps reading the log, folding and writing to Redis."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")

# Threads kept for the process's life: a rebuild hands off two calls per batch, and starting a
# thread for each cost about a twentieth of its time.
_pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="rebuild")


def background(call: Callable[..., T], *args: Any) -> Future[T]:
    """`call(*args)`, started at once in a thread of the pool; the future's `result()` waits for it."""
    return _pool.submit(call, *args)
