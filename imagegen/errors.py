"""Every error imagegen raises on purpose.

    ImageGenError
    ├── ConfigError            settings or a model reference that cannot be used
    ├── PromptSyntaxError      a prompt that does not parse (says where: column, token)
    ├── NoRouteError           no model can serve the request (says why for each)
    ├── BudgetExceededError    a call would spend more than the budget left
    ├── ModelLoadError         a local checkpoint that is missing or unreadable
    ├── ProviderError          a backend failed (provider, status, detail)
    │   └── UnknownOutcomeError  a paid call may or may not have been made
    ├── WebhookVerificationError
    ├── ImageReadError         an image given to imagegen (file or bytes) that cannot be read
    ├── UserCancelledError     the caller stopped a generation (its progress callback raised it)
    ├── FineTuneError          a dataset or training problem
    │   └── FineTuneTimeout    `FineTuneJob.wait` ran out of time (also a TimeoutError)
    ├── JobStoreError          the fine-tune job store cannot be read or is locked (path, what to do)
    ├── VoteError              an arena vote that cannot be recorded (names the field)
    └── PoseError              OpenPose keypoint JSON that cannot be drawn (names the field)

Request validation errors are pydantic's ``ValidationError``: they name the field.
"""

from __future__ import annotations

from typing import Any


class ImageGenError(Exception):
    """Base class: catch this to catch everything imagegen raises on purpose."""


class ConfigError(ImageGenError):
    pass


class PromptSyntaxError(ImageGenError):
    """A prompt that does not parse; ``column`` is 1-based where known."""

    def __init__(self, message: str, *, column: int | None = None, token: str | None = None):
        self.column = column
        self.token = token
        where = f" (column {column})" if column is not None else ""
        super().__init__(f"{message}{where}")


class NoRouteError(ImageGenError):
    """No model can serve the request. ``excluded`` holds (card id, reason) pairs."""

    def __init__(self, message: str, excluded: list[tuple[str, str]] | None = None):
        self.excluded = excluded or []
        if self.excluded:
            reasons = "; ".join(f"{card}: {reason}" for card, reason in self.excluded[:8])
            message = f"{message} ({reasons})"
        super().__init__(message)


class BudgetExceededError(ImageGenError):
    def __init__(self, message: str, *, estimate_usd: float = 0.0, remaining_usd: float = 0.0):
        self.estimate_usd = estimate_usd
        self.remaining_usd = remaining_usd
        super().__init__(message)


class ModelLoadError(ImageGenError):
    pass


class ProviderError(ImageGenError):
    """A backend failed. ``retryable`` tells the router it may fall back to another model.

    ``scope`` says what failed: ``"model"`` (this model or this call: a sibling model of the
    same provider may still work) or ``"provider"`` (the provider itself: unreachable, refused
    credentials; the router skips every model of that provider). ``cost_usd`` is what the
    provider charged for the failed call (e.g. predictions that ran but whose outputs could not
    be fetched); ``prediction_ids`` names what was paid for, so it can be fetched later.
    """

    def __init__(
        self,
        message: str,
        *,
        provider: str = "",
        status: int | None = None,
        detail: Any = None,
        retryable: bool = True,
        scope: str = "model",
        cost_usd: float = 0.0,
        prediction_ids: list[str] | None = None,
    ):
        if scope not in ("model", "provider"):
            raise ValueError(f"scope must be 'model' or 'provider', not {scope!r}")
        self.provider = provider
        self.status = status
        self.detail = detail
        self.retryable = retryable
        self.scope = scope
        self.cost_usd = cost_usd
        self.prediction_ids = list(prediction_ids or [])
        parts = [p for p in (provider, f"HTTP {status}" if status else "") if p]
        prefix = f"[{' '.join(parts)}] " if parts else ""
        super().__init__(f"{prefix}{message}")


class UnknownOutcomeError(ProviderError):
    """A paid call was sent but its outcome is unknown; it is never re-sent blindly."""

    def __init__(self, message: str, **kwargs: Any):
        kwargs.setdefault("retryable", False)
        super().__init__(message, **kwargs)


class WebhookVerificationError(ImageGenError):
    pass


class ImageReadError(ImageGenError):
    """An image handed to imagegen (a path, bytes, an init image) that is not a readable image."""


class UserCancelledError(ImageGenError):
    """Raised by a progress callback to stop between steps (not asyncio's CancelledError)."""


class FineTuneError(ImageGenError):
    """A fine-tune problem. ``problems`` lists every bad file or field found."""

    def __init__(self, message: str, problems: list[str] | None = None):
        self.problems = problems or []
        if self.problems:
            message = message + ":\n" + "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(message)


class FineTuneTimeout(FineTuneError, TimeoutError):
    """`FineTuneJob.wait` ran out of time; the training goes on and can be waited on again."""


class JobStoreError(ImageGenError):
    """The durable job store cannot be used: ``path`` is the file, the message says what to do.
    Nothing in it is changed or deleted."""

    def __init__(self, message: str, *, path: Any = None):
        self.path = path
        super().__init__(message)


class VoteError(ImageGenError, ValueError):
    """A vote that cannot be recorded (the message names the field)."""


class PoseError(ImageGenError):
    """Keypoint JSON that cannot be drawn (names the field)."""
