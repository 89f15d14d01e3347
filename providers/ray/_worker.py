"""`PoolWorker`: one Ray actor holding warm local pipelines.

It runs the local adapter itself (the provider registered as ``local`` under the
`imagegen.providers` entry points, through the Provider protocol), one instance per warm
checkpoint so that several stay loaded, evicting the least recently used past ``warm_budget``. Progress events are
kept per run for the driver to poll, and a cancel request stops the run at its next step.
Plain Python: the pool wraps it with ``ray.remote``; tests can also call it in-process.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from typing import Any

from imagegen.errors import ImageGenError, UserCancelledError


class PoolWorker:
    def __init__(self, settings: dict[str, Any], warm_budget: int = 2, index: int = 0,
                 provider: str = "local"):
        from imagegen.settings import Settings

        self.settings = Settings(**settings)
        self.factory = provider_factory(provider)
        self.warm_budget = max(1, warm_budget)
        self.index = index
        self._providers: OrderedDict[str, Any] = OrderedDict()  # model key -> LocalProvider, LRU first
        self._loras: dict[str, tuple] = {}  # model key -> the LoRA set last applied on it
        self._events: dict[str, list[Any]] = {}
        self._cancelled: set[str] = set()
        self._lock = threading.Lock()  # one generation at a time (the pool sends one anyway)
        self.loads = 0  # checkpoint loads: observable warm-cache behaviour
        self.served = 0

    # -- what the driver asks ---------------------------------------------------------

    def info(self) -> dict[str, Any]:
        node = ""
        gpus: list[Any] = []
        try:
            import ray

            context = ray.get_runtime_context()
            node, gpus = context.get_node_id(), list(ray.get_gpu_ids())
        except Exception:  # in-process (tests) or an old Ray: identity only
            pass
        return {"index": self.index, "pid": os.getpid(), "node": node, "gpus": gpus,
                "warm": self.warm(), "loads": self.loads, "served": self.served}

    def warm(self) -> list[tuple[str, tuple]]:
        """(model key, LoRA set) of each warm checkpoint, least recently used first."""
        return [(key, self._loras.get(key, ())) for key in self._providers]

    def models(self) -> list[dict[str, Any]]:
        return [card.model_dump() for card in self.factory(self.settings).models()]

    def card_for(self, model: str) -> dict[str, Any] | None:
        card = self.factory(self.settings).card_for(model)
        return card.model_dump() if card is not None else None

    def events(self, run_id: str, since: int = 0) -> list[Any]:
        return list(self._events.get(run_id, ())[since:])

    def cancel(self, run_id: str) -> None:
        self._cancelled.add(run_id)

    # -- one generation ---------------------------------------------------------------

    def run(self, run_id: str, request: Any, card: Any, key: str, loras: tuple) -> dict[str, Any]:
        """Generate ``request`` on the local ``card``. Returns ``{"result", "events", "warm",
        ...}`` or, for a failure, ``{"error": class name, "message", "retryable"}`` (exceptions
        cross back as data: the driver re-raises them as the SDK's own errors)."""
        events: list[Any] = []
        self._events[run_id] = events
        started = time.time()

        def progress(event: Any) -> None:
            events.append(event)
            if run_id in self._cancelled:
                raise UserCancelledError("generation cancelled")

        try:
            with self._lock:
                if run_id in self._cancelled:
                    raise UserCancelledError("generation cancelled")
                provider = self._provider(key)
                prepared = provider.prepare(request, [card])[0]
                result = provider.generate(prepared, progress=progress)
                self.loads += result.load_s > 0
                self._loras[key] = loras
                self.served += 1
            return {"result": result, "events": events, "warm": self.warm(), "started": started,
                    "finished": time.time(), "pid": os.getpid(), "index": self.index}
        except Exception as exc:
            return {"error": type(exc).__name__, "message": str(exc), "events": events,
                    "imagegen": isinstance(exc, ImageGenError),
                    "retryable": bool(getattr(exc, "retryable", True)), "warm": self.warm()}
        finally:
            self._events.pop(run_id, None)
            self._cancelled.discard(run_id)

    def _provider(self, key: str) -> Any:
        """The warm LocalProvider for ``key`` (most recently used now); loads past the budget
        evict the least recently used one."""
        if key in self._providers:
            self._providers.move_to_end(key)
            return self._providers[key]
        while len(self._providers) >= self.warm_budget:
            old_key, old = self._providers.popitem(last=False)
            self._loras.pop(old_key, None)
            old.close()
        provider = self.factory(self.settings)
        self._providers[key] = provider
        return provider


def provider_factory(name: str) -> Any:
    """The provider class registered as ``name`` under the `imagegen.providers` entry points (the
    pool runs that adapter as it is, through the Provider protocol)."""
    from importlib.metadata import entry_points

    from imagegen.errors import ConfigError
    from imagegen.plugins import ENTRY_POINT_GROUP

    for entry in entry_points(group=ENTRY_POINT_GROUP, name=name):
        return entry.load()
    raise ConfigError(f"the Ray pool runs the {name!r} provider, which is not installed")
