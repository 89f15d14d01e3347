"""What an hour of this machine's GPU costs the user, for local generation and training alike:
``IMAGEGEN_LOCAL_GPU_HOUR_USD`` (electricity, or what the machine costs), else 0.

``IMAGEGEN_GPU_HOUR_USD``, the name local training read first, is still read when the other is
unset.
"""

from __future__ import annotations

import os

from imagegen.catalog import Price

GPU_HOUR_ENV = "IMAGEGEN_LOCAL_GPU_HOUR_USD"
_EARLIER_ENV = "IMAGEGEN_GPU_HOUR_USD"


def gpu_hour_price(configured: float | None = None) -> float:
    """USD per GPU hour: ``configured`` (a request's own figure) when given, else the environment."""
    if configured is not None:
        return configured
    name = GPU_HOUR_ENV if os.environ.get(GPU_HOUR_ENV, "").strip() else _EARLIER_ENV
    raw = os.environ.get(name, "").strip()
    try:
        return max(0.0, float(raw)) if raw else 0.0
    except ValueError:
        from imagegen.errors import ConfigError

        raise ConfigError(f"{name} must be a number of USD per GPU hour, got {raw!r}") from None


def local_price(hour: float) -> Price:
    """A local card's price at ``hour`` USD per GPU hour, billed for its expected seconds."""
    return Price(per_gpu_second=hour / 3600, source=(
        f"{GPU_HOUR_ENV}={hour:g} USD per GPU hour" if hour else "runs on the user's own hardware: no charge"),
        date="2026-12-01")


def cost_note(hour: float) -> str:
    """What a local card's notes say it costs."""
    return "0 USD" if not hour else f"{hour:g} USD/GPU-hour"
