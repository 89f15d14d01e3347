"""What keeps `imagegen serve` safe to expose: keys, limits, budgets and the concurrency cap.

Everything here is plain Python (no web framework), so the rules are easy to read and test:
the API layers ask `Guard` for a decision and turn a refusal into their own error shape.
"""

from __future__ import annotations

import hmac
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError
from ..loopback import is_loopback


@dataclass(frozen=True)
class ServerLimits:
    """Per-request and per-server limits. Every refusal names the limit it hit."""

    max_body_bytes: int = 32 * 1024 * 1024  # a request body (JSON or multipart), all images included
    max_images: int = 10  # images one request may ask for (OpenAI's `n` allows 1-10)
    max_pixels: int = 2048 * 2048  # width x height of one image, hires output included
    max_concurrency: int = 4  # generations in flight at once, over all keys; more get 429
    max_prompt_chars: int = 32000  # OpenAI's own limit for a prompt
    url_ttl_s: float = 3600.0  # how long an image served by URL stays reachable
    max_stored_images: int = 512  # URL images kept at most (oldest dropped first)


class Refusal(Exception):
    """A request the server will not run. ``status`` is the HTTP status; ``code`` a short name."""

    def __init__(self, status: int, message: str, *, code: str, param: str | None = None,
                 retry_after_s: float | None = None, kind: str = "invalid_request_error"):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.retry_after_s = retry_after_s
        self.kind = kind

    def headers(self) -> dict[str, str]:
        if self.retry_after_s is None:
            return {}
        return {"Retry-After": str(max(1, math.ceil(self.retry_after_s)))}


def check_bind(host: str, keys: dict[str, Any]) -> None:
    """Refuse to listen beyond this machine without a key (anyone on the network could spend)."""
    if not is_loopback(host) and not keys:
        raise ConfigError(f"refusing to listen on {host} without an API key: pass --api-key "
                          "(or bind 127.0.0.1)")


@dataclass
class _KeyState:
    budget_usd: float | None
    spent_usd: float = 0.0
    reserved_usd: float = 0.0


@dataclass
class Ticket:
    """One admitted request: release it when the generation ends (charge what it cost)."""

    guard: Guard
    key_id: str
    reserved_usd: float
    started: float = field(default_factory=time.monotonic)
    _done: bool = False

    def release(self, cost_usd: float | None = None) -> None:
        if not self._done:
            self._done = True
            self.guard._release(self, cost_usd)


class Guard:
    """API keys (compared in constant time), per-key budgets and the concurrency cap.

    ``keys`` maps each accepted key to its budget in USD (None: no budget of its own). With no
    keys the server is open (loopback only, see `check_bind`).
    """

    def __init__(self, keys: dict[str, float | None] | None, limits: ServerLimits):
        self.limits = limits
        # Keys are kept as bytes for hmac.compare_digest; ids ("key-1"...) name them elsewhere.
        self._keys = [(f"key-{i + 1}", k.encode()) for i, k in enumerate(keys or {})]
        self._state = {f"key-{i + 1}": _KeyState(budget) for i, budget in enumerate((keys or {}).values())}
        self._state.setdefault("open", _KeyState(None))
        self._lock = threading.Lock()
        self.in_flight = 0
        self._durations: list[float] = []

    @property
    def open(self) -> bool:
        return not self._keys

    def __repr__(self) -> str:  # never shows a key
        return f"Guard(keys={len(self._keys)}, max_concurrency={self.limits.max_concurrency})"

    # -- who is asking -------------------------------------------------------------

    def authenticate(self, presented: str | None) -> str:
        """The key id for a presented key; `Refusal` 401 when it is missing or wrong."""
        if self.open:
            return "open"
        if not presented:
            raise Refusal(401, "Missing API key: send it as 'Authorization: Bearer <key>'.",
                          code="missing_api_key")
        candidate = presented.encode()
        found = None
        for key_id, key in self._keys:  # every key is compared, so timing tells nothing
            if hmac.compare_digest(candidate, key):
                found = key_id
        if found is None:
            raise Refusal(401, "Incorrect API key provided.", code="invalid_api_key")
        return found

    # -- admission -----------------------------------------------------------------

    def admit(self, key_id: str, estimate_usd: float = 0.0) -> Ticket:
        """Hold a concurrency slot and the estimate against the key's budget, or refuse (429)."""
        with self._lock:
            state = self._state[key_id]
            if state.budget_usd is not None:
                left = state.budget_usd - state.spent_usd - state.reserved_usd
                if estimate_usd > left + 1e-12:
                    raise Refusal(429, f"This key's budget is spent: the request would cost about "
                                  f"${estimate_usd:.4f} and ${max(left, 0.0):.4f} is left.",
                                  code="insufficient_quota", kind="insufficient_quota")
            if self.in_flight >= self.limits.max_concurrency:
                raise Refusal(429, f"Too many requests in flight (limit {self.limits.max_concurrency}); "
                              "retry after the time in Retry-After.", code="rate_limit_exceeded",
                              kind="requests", retry_after_s=self.retry_after_s())
            self.in_flight += 1
            state.reserved_usd += estimate_usd
        return Ticket(self, key_id, estimate_usd)

    def retry_after_s(self) -> float:
        """About when a slot frees: the median duration of recent generations (at least 1 s)."""
        recent = sorted(self._durations[-32:])
        return max(1.0, recent[len(recent) // 2]) if recent else 1.0

    def _release(self, ticket: Ticket, cost_usd: float | None) -> None:
        with self._lock:
            self.in_flight -= 1
            state = self._state[ticket.key_id]
            state.reserved_usd -= ticket.reserved_usd
            if cost_usd:
                state.spent_usd += cost_usd
            self._durations.append(time.monotonic() - ticket.started)
            del self._durations[:-64]

    def spent_usd(self, key_id: str) -> float:
        return self._state[key_id].spent_usd

    # -- request contents ----------------------------------------------------------

    def check_size(self, width: int | None, height: int | None, images: int, *,
                   param: str = "size", scale: float = 1.0) -> None:
        limits = self.limits
        if images > limits.max_images:
            raise Refusal(400, f"At most {limits.max_images} images per request (asked for {images}).",
                          code="too_many_images", param="n")
        if width and height and width * height * scale * scale > limits.max_pixels:
            raise Refusal(400, f"{width}x{height}" + (f" x{scale:g}" if scale != 1 else "") +
                          f" is over this server's limit of {limits.max_pixels} pixels per image.",
                          code="image_too_large", param=param)


def check_references(request: Any, *, allow_paths: bool, known_models: frozenset[str] = frozenset()) -> None:
    """Refuse references that would make the server read its own files or fetch URLs for a
    client (a local model by path, a LoRA/VAE path or URL, a control image by path), unless
    the server was started with ``allow_paths``. Names in the models folder, and the cards the
    router lists (``known_models``), stay usable."""
    if allow_paths:
        return
    model = request.model or ""
    if model.startswith("local:") and model not in known_models and _looks_like_path(model.split(":", 1)[1]):
        raise Refusal(400, "Local models are chosen by name here, not by path.", code="path_not_allowed",
                      param="model")
    for index, lora in enumerate(request.loras):
        if _looks_like_path(lora.name):
            raise Refusal(400, "LoRAs are chosen by name here, not by path or URL.", code="path_not_allowed",
                          param=f"loras.{index}.name")
    if request.vae and _looks_like_path(request.vae):
        raise Refusal(400, "VAEs are chosen by name here, not by path or URL.", code="path_not_allowed",
                      param="vae")
    for index, unit in enumerate(request.controlnets):
        if _looks_like_path(unit.model):
            raise Refusal(400, "ControlNet models are chosen by name here, not by path.",
                          code="path_not_allowed", param=f"controlnets.{index}.model")
        if unit.image is not None and unit.image.data is None and not (unit.image.url or "").startswith("data:"):
            raise Refusal(400, "Control images must be sent inline (base64), not as a path or URL.",
                          code="path_not_allowed", param=f"controlnets.{index}.image")
    for name in ("init_image", "mask_image"):
        image = getattr(request, name)
        if image is not None and image.data is None and not (image.url or "").startswith("data:"):
            raise Refusal(400, "Images must be sent inline (base64 or multipart), not as a path or URL.",
                          code="path_not_allowed", param=name)


def _looks_like_path(name: str) -> bool:
    return ("/" in name or "\\" in name or name.startswith((".", "~")) or "://" in name
            or (len(name) > 1 and name[1] == ":"))
