"""What the router learns at run time: which models keep failing (cooldown) and how fast they
really are (an exponentially weighted moving average of observed latency).

The clock is injectable so tests can move time instead of sleeping.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class _Streak:
    failures: int = 0  # consecutive, reset by a success
    cool_until: float = 0.0
    cards: set[str] = field(default_factory=set)  # which cards failed (for a provider's streak)


class Health:
    """Cooldown after ``failure_threshold`` consecutive failures, per card and per provider
    (a provider's streak must span at least two of its cards).

    A failure after the cooldown has ended cools the model down again at once, with a fresh
    deadline counted from that failure (never an old, shorter one). A success clears the streak.
    """

    def __init__(self, *, clock: Callable[[], float] = time.monotonic, failure_threshold: int = 3,
                 cooldown_s: float = 60.0, latency_alpha: float = 0.3):
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        if not 0 < latency_alpha <= 1:
            raise ValueError("latency_alpha must be in (0, 1]")
        self.clock = clock
        self.failure_threshold = failure_threshold
        self.cooldown_s = cooldown_s
        self.latency_alpha = latency_alpha
        self._streaks: dict[str, _Streak] = {}
        self._latency: dict[str, tuple[float, int]] = {}  # card id -> (EWMA seconds, observations)

    # -- observations ------------------------------------------------------------------

    def record_success(self, card_id: str, provider: str, latency_s: float | None = None) -> None:
        self._streaks.pop(card_id, None)
        self._streaks.pop(provider_key(provider), None)
        if latency_s is not None and latency_s >= 0:
            previous = self._latency.get(card_id)
            if previous is None:  # the shipped figure was measured elsewhere: trust the first real one
                self._latency[card_id] = (latency_s, 1)
            else:
                value, n = previous
                self._latency[card_id] = (value + self.latency_alpha * (latency_s - value), n + 1)

    def record_failure(self, card_id: str, provider: str) -> None:
        now = self.clock()
        for key in (card_id, provider_key(provider)):
            streak = self._streaks.setdefault(key, _Streak())
            streak.failures += 1
            streak.cards.add(card_id)
            # One model failing is that model's problem; the provider as a whole cools down
            # only when the streak spans more than one of its models.
            whole_provider = key != card_id
            if streak.failures >= self.failure_threshold and (len(streak.cards) > 1 or not whole_provider):
                streak.cool_until = now + self.cooldown_s

    # -- what the router asks ----------------------------------------------------------

    def cooling_now(self, now: float | None = None) -> dict[str, str]:
        """Every card id and ``provider::<name>`` key cooling down now, with the reason."""
        if not self._streaks:
            return {}
        now = self.clock() if now is None else now
        found = {}
        for key, streak in self._streaks.items():
            if streak.cool_until > now:
                what = f"provider {key.split('::', 1)[1]!r}" if key.startswith("provider::") else "the model"
                found[key] = (f"cooling down: {what} failed {streak.failures} times in a row "
                              f"(back in {streak.cool_until - now:.0f} s)")
        return found

    def latency(self, card_id: str, default: float) -> tuple[float, int]:
        """Expected seconds per image and how many observations back it (0: the shipped figure)."""
        return self._latency.get(card_id, (default, 0))

    def observed_latencies(self) -> dict[str, tuple[float, int]]:
        """Card id -> (EWMA seconds per image, observations), for the cards observed so far (the
        router's table to look up; not to be changed)."""
        return self._latency

    def snapshot(self) -> dict[str, dict[str, float]]:
        """Cooldown and latency state, for display (`imagegen route --health`)."""
        now = self.clock()
        state: dict[str, dict[str, float]] = {}
        for key, streak in self._streaks.items():
            state.setdefault(key, {})["failures"] = streak.failures
            state[key]["cooldown_left_s"] = max(0.0, streak.cool_until - now)
        for key, (value, n) in self._latency.items():
            state.setdefault(key, {}).update(latency_s=value, observations=n)
        return state


def provider_key(provider: str) -> str:
    return f"provider::{provider}"
