"""Your arena ratings as the router reads them: from the arena file under ``home``, read again
only when the file has changed since the last read (a decision asks on every call)."""

from __future__ import annotations

from pathlib import Path

from ._store import Arena, UserRating


class ArenaRatings:
    """``ArenaRatings(home)()`` -> card id -> `UserRating`; empty while no arena file exists."""

    def __init__(self, home: str | Path):
        self.path = Path(home) / "arena.sqlite"
        self._stamp: tuple[int, int] | None = None
        self._ratings: dict[str, UserRating] = {}

    def __call__(self) -> dict[str, UserRating]:
        stamp = self._file_stamp()
        if stamp != self._stamp:
            self._ratings = Arena(self.path).ratings_for_router() if stamp != (0, 0) else {}
            self._stamp = stamp
        return self._ratings

    def _file_stamp(self) -> tuple[int, int]:
        try:
            stat = self.path.stat()
        except OSError:
            return (0, 0)
        return (stat.st_mtime_ns, stat.st_size)
