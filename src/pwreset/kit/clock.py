"""Time, in one place, so tests can move it."""

from __future__ import annotations

import time
from datetime import UTC, datetime


class Clock:
    """Wall-clock time in UTC. Tests subclass it to travel in time."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def timestamp(self) -> float:
        return time.time()


class FrozenClock(Clock):
    """A clock that only moves when told to (tests and benchmarks)."""

    def __init__(self, start: float | None = None) -> None:
        self._t = time.time() if start is None else start

    def now(self) -> datetime:
        return datetime.fromtimestamp(self._t, UTC)

    def timestamp(self) -> float:
        return self._t

    def advance(self, seconds: float) -> None:
        self._t += seconds
