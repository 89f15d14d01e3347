"""Fault injection for the emulator: random per-request faults from a seed, and scripted ones.

Kinds: ``"429"``, ``"5xx"``, ``"reset"`` (connection dropped before handling), ``"slow"``,
``"5xx_after_create"`` / ``"reset_after_create"`` (the create is committed server-side, then
the client sees an error: the case that tests "never create twice"), ``"late_commit"`` (a create
is held ``late_commit_s`` before it is committed, so a client that stopped waiting finds nothing
at first, then a prediction it must not create again).

Output files can be made hostile too: ``output_body`` replaces every served output's bytes
(e.g. a decompression bomb) and ``output_trickle_s`` serves them one byte per that many seconds.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field

KINDS = ("429", "5xx", "reset", "slow", "5xx_after_create", "reset_after_create",
         "processing_with_output", "late_commit")
AFTER_CREATE = ("5xx_after_create", "reset_after_create")


@dataclass
class Faults:
    """Per-request fault probabilities, drawn from ``random.Random(seed)`` in request order.

    ``processing_with_output`` is the chance that a ``Prefer: wait`` create answers
    ``status: "processing"`` with the outputs already filled, as Replicate sometimes does.
    ``paths`` limits the random faults to request paths starting with one of the prefixes.
    ``rate_late_commit`` is the chance that a create is committed only ``late_commit_s`` after
    it arrived (drawn only when the rate is set, so older seeds replay as before).
    """

    rate_429: float = 0.0
    rate_5xx: float = 0.0
    rate_reset: float = 0.0
    rate_slow: float = 0.0
    slow_s: float = 1.0
    rate_5xx_after_create: float = 0.0
    rate_reset_after_create: float = 0.0
    processing_with_output: float = 0.0
    rate_late_commit: float = 0.0
    late_commit_s: float = 6.0
    output_body: bytes | None = None
    output_trickle_s: float = 0.0
    status_5xx: int = 503
    retry_after_s: int = 1
    seed: int = 0
    paths: tuple[str, ...] | None = None


@dataclass
class _Scripted:
    kind: str
    times: int
    on: str  # "any", "create" (prediction or training create) or a path prefix
    method: str | None


@dataclass
class FaultPlan:
    """What the server does to one request: before handling, and after a committed create."""

    before: str | None = None  # "429", "5xx", "reset", "slow", "late_commit" (creates only)
    after_create: str | None = None  # "5xx_after_create", "reset_after_create"
    processing_with_output: bool = False


@dataclass
class FaultInjector:
    faults: Faults = field(default_factory=Faults)
    _scripted: list[_Scripted] = field(default_factory=list)
    _rng: random.Random = field(default_factory=lambda: random.Random(0))
    _rng_seed: int | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def script(self, kind: str, times: int, on: str, method: str | None) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {', '.join(KINDS)}")
        if times < 1:
            raise ValueError("times must be at least 1")
        with self._lock:
            self._scripted.append(_Scripted(kind, times, on, method.upper() if method else None))

    def clear(self) -> None:
        with self._lock:
            self._scripted.clear()

    def plan(self, method: str, path: str, is_create: bool) -> FaultPlan:
        """Decide the faults for one request (consumes scripted faults and random draws)."""
        plan = FaultPlan()
        with self._lock:
            for item in list(self._scripted):
                if not _matches(item, method, path, is_create):
                    continue
                if item.kind in AFTER_CREATE or item.kind in ("processing_with_output", "late_commit"):
                    if not is_create:
                        continue
                if item.kind in AFTER_CREATE:
                    if plan.after_create:
                        continue
                    plan.after_create = item.kind
                elif item.kind == "processing_with_output":
                    if plan.processing_with_output:
                        continue
                    plan.processing_with_output = True
                else:
                    if plan.before:
                        continue
                    plan.before = item.kind
                item.times -= 1
                if item.times == 0:
                    self._scripted.remove(item)
            self._draw(plan, path, is_create)
        return plan

    def _draw(self, plan: FaultPlan, path: str, is_create: bool) -> None:
        f = self.faults
        if self._rng_seed != f.seed:
            self._rng = random.Random(f.seed)
            self._rng_seed = f.seed
        if f.paths is not None and not any(path.startswith(p) for p in f.paths):
            return
        # One draw per rate, always in the same order, so a seed replays exactly.
        draws = {k: self._rng.random() for k in
                 ("429", "5xx", "reset", "slow", "5xx_after_create", "reset_after_create",
                  "processing_with_output")}
        if plan.before is None:
            for kind, rate in (("reset", f.rate_reset), ("429", f.rate_429),
                               ("5xx", f.rate_5xx), ("slow", f.rate_slow)):
                if draws[kind] < rate:
                    plan.before = kind
                    break
        if is_create and plan.after_create is None:
            for kind, rate in (("reset_after_create", f.rate_reset_after_create),
                               ("5xx_after_create", f.rate_5xx_after_create)):
                if draws[kind] < rate:
                    plan.after_create = kind
                    break
        if is_create and draws["processing_with_output"] < f.processing_with_output:
            plan.processing_with_output = True
        if f.rate_late_commit > 0:  # its own draw only when asked for: old seeds replay as before
            late = self._rng.random() < f.rate_late_commit
            if is_create and late and plan.before is None:
                plan.before = "late_commit"


def _matches(item: _Scripted, method: str, path: str, is_create: bool) -> bool:
    if item.method and item.method != method:
        return False
    if item.on == "any":
        return True
    if item.on == "create":
        return is_create
    return path.startswith(item.on)
