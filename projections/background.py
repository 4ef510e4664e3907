"""A call in a thread of its own: how a rebuild overlaps reading the log, folding and writing to Redis."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Background(threading.Thread, Generic[T]):
    """A call in a thread of its own, started at once; `result()` waits for it. A rebuild reads the
    next batch of the log and has Redis apply the last one while it folds this one."""

    def __init__(self, call: Callable[..., T], *args: Any) -> None:
        super().__init__(name="rebuild", daemon=True)
        self.call, self.args = call, args
        self.answer: T | None = None
        self.error: Exception | None = None
        self.start()

    def run(self) -> None:
        try:
            self.answer = self.call(*self.args)
        except Exception as e:  # noqa: BLE001 - raised again by result(), in the folding thread
            self.error = e

    def result(self) -> T:
        self.join()
        if self.error is not None:
            raise self.error
        assert self.answer is not None
        return self.answer
