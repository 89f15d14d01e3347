"""`RayProvider`: the pool of local workers as one provider, ``ray``, to the router.

Cards are the local models the workers can load (``ray:<model>``), with the local adapter's
capabilities and Elo, and an expected latency that counts the pool's queue. Without an address
(`IMAGEGEN_RAY_ADDRESS` / ``ImageGen(ray_address=...)``) the provider is inert: no cards, no
``ray`` import. When Ray is missing or the cluster unreachable it logs one line, offers no cards,
and an explicit ``ray:`` model raises that line as an `ImageGenError`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from imagegen.catalog import ModelCard, elo_for
from imagegen.errors import ConfigError, ImageGenError

from ..base import BaseProvider, Prepared, ProgressCallback, runnable

if TYPE_CHECKING:
    from imagegen.request import GenerateRequest, RequestNeeds
    from imagegen.result import GenerateResult

    from ._pool import Pool

log = logging.getLogger("imagegen")
CARDS_TTL_S = 30.0  # how long the workers' model listing is reused
RETRY_CONNECT_S = 30.0  # after a failed connection, how long cards stay empty before trying again
LIVE = "live: learned seconds per image x (1 + queued images / live workers)"


class RayProvider(BaseProvider):
    """``address``: ``"auto"``, ``"ray://host:10001"`` or ``"local"`` (default: the
    ``ray_address`` setting). ``workers``: how many (default: the ``ray_workers`` setting, else
    one per GPU in the cluster, else 1). ``num_cpus`` per CPU worker; ``num_gpus`` per worker
    (default 1 when the cluster has GPUs). ``warm_budget``: checkpoints each worker keeps loaded.
    ``inner``: the provider the workers run, by its entry-point name (the local adapter)."""

    name = "ray"

    def __init__(self, settings: Any = None, *, address: str | None = None, workers: int | None = None,
                 num_cpus: float = 1, num_gpus: float | None = None, warm_budget: int = 2,
                 connect_timeout_s: float = 20.0, start_timeout_s: float = 120.0, inner: str = "local"):
        super().__init__(settings)
        self.address = address or self.settings.ray_address
        self.inner = inner
        self.workers = workers or self.settings.ray_workers
        self.num_cpus, self.num_gpus = num_cpus, num_gpus
        self.warm_budget = warm_budget
        self.connect_timeout_s, self.start_timeout_s = connect_timeout_s, start_timeout_s
        self._pool: Pool | None = None
        self._lock = threading.Lock()
        self._failure: tuple[float, ImageGenError] | None = None
        self._cards: tuple[float, list[ModelCard]] | None = None  # the workers' local cards
        self._checker: Any = None

    # -- the pool ---------------------------------------------------------------------

    @property
    def configured(self) -> bool:
        return bool(self.address)

    def pool(self) -> Pool:
        """The running pool, connecting and starting workers on first use; raises a one-line
        `ImageGenError` when that cannot be done (and again, without retrying, for a while)."""
        if self._pool is not None:
            return self._pool
        with self._lock:
            if self._pool is not None:
                return self._pool
            if self._failure is not None and time.monotonic() - self._failure[0] < RETRY_CONNECT_S:
                raise self._failure[1]
            if not self.address:
                raise ConfigError("the ray provider has no address: set IMAGEGEN_RAY_ADDRESS "
                                  "('auto', 'ray://host:10001' or 'local') or ImageGen(ray_address=...)")
            try:
                self._pool = self._start()
            except ImageGenError as exc:
                self._failure = (time.monotonic(), exc)
                log.warning("ray provider unavailable: %s", exc)
                raise
            self._failure = None
            return self._pool

    def _start(self) -> Pool:
        from ._connect import connect
        from ._pool import Pool

        ray = connect(self.address or "", self.connect_timeout_s)
        gpus = ray.cluster_resources().get("GPU", 0) if self.num_gpus is None else 0
        num_gpus = self.num_gpus if self.num_gpus is not None else (1 if gpus >= 1 else 0)
        workers = self.workers or (int(gpus) if num_gpus else 1) or 1
        settings = {"models_dir": self.settings.models_dir, "device": self.settings.device,
                    "home": self.settings.home}
        return Pool(ray, workers=workers, settings=settings, num_gpus=num_gpus,
                    num_cpus=0 if num_gpus else self.num_cpus, warm_budget=self.warm_budget,
                    start_timeout_s=self.start_timeout_s, inner=self.inner)

    # -- cards ------------------------------------------------------------------------

    def models(self) -> list[ModelCard]:
        if not self.configured:
            return []
        try:
            pool = self.pool()
            if not pool.live:
                return []  # nothing to route to; an explicit ray: model gets the ProviderError
            now = time.monotonic()
            if self._cards is None or now - self._cards[0] > CARDS_TTL_S:
                self._cards = (now, [ModelCard.model_validate(c) for c in pool.ask("models")])
        except ImageGenError:
            return []  # logged once by pool(); the rest of the SDK goes on
        return [self._pool_card(card, pool) for card in self._cards[1]]

    def card_for(self, model: str) -> ModelCard | None:
        pool = self.pool()  # an explicit ray: model says why the pool cannot be used
        for card in self._cards[1] if self._cards else []:
            if card.model == model:
                return self._pool_card(card, pool)
        raw = pool.ask("card_for", model)
        return self._pool_card(ModelCard.model_validate(raw), pool) if raw else None

    def _pool_card(self, local: ModelCard, pool: Pool) -> ModelCard:
        key = local.model
        warm = pool.warm_on(_model_key(key, {}))
        return local.model_copy(update={
            "id": f"ray:{local.model}", "provider": "ray", "elo": elo_for(local),
            "latency_s": round(pool.expected_s_per_image(_model_key(key, {}), local.latency_s), 3),
            "latency_source": LIVE,
            "notes": f"{local.notes}; on the Ray pool: {pool.describe()}, warm on {warm}",
        })

    # -- prepare and generate ---------------------------------------------------------

    def prepare(self, request: GenerateRequest, cards: list[ModelCard],
                needs: RequestNeeds | None = None) -> list[Prepared]:
        """The local adapter's checks, made for the local card behind each pool card; the plan is
        that local card."""
        if self._checker is None:
            from ._worker import provider_factory

            self._checker = provider_factory(self.inner)(self.settings)  # checks only: loads nothing
        locals_ = [self._inner_card(card) for card in cards]
        out = []
        for card, one in zip(cards, self._checker.prepare(request, locals_, needs), strict=True):
            out.append(Prepared(card, request, one.missing, one.warnings, one.cost_usd, plan=one.card))
        return out

    def generate(self, prepared: Prepared, *, progress: ProgressCallback | None = None,
                 cancel: threading.Event | None = None) -> GenerateResult:
        runnable(prepared)
        request = prepared.request
        local = prepared.plan if prepared.plan is not None else self._inner_card(prepared.card)
        result = self.pool().run(request, local, _model_key(local.model, _load_options(request)),
                                 lora_key(request), progress=progress, cancel=cancel)
        result.provider, result.model = self.name, prepared.card.id
        return result

    async def agenerate(self, prepared: Prepared, *,
                        progress: ProgressCallback | None = None) -> GenerateResult:
        """`generate` on a thread; cancelling the awaiting task reaches the worker, which stops
        at its next step."""
        cancel = threading.Event()
        task = asyncio.ensure_future(asyncio.to_thread(self.generate, prepared, progress=progress,
                                                       cancel=cancel))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            cancel.set()
            raise

    def _inner_card(self, card: ModelCard) -> ModelCard:
        """The worker's own card behind a pool card (``ray:demo`` -> ``local:demo``)."""
        return card.model_copy(update={"id": f"{self.inner}:{card.model}", "provider": self.inner})

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()




def _load_options(request: GenerateRequest) -> dict[str, Any]:
    raw = request.provider_options.get("local", {}) or {}
    return {k: raw[k] for k in ("dtype", "cpu_offload", "config") if k in raw}


def _model_key(model: str, load_options: dict[str, Any]) -> str:
    """A warm checkpoint's identity on a worker: the model and what changes how it loads."""
    extra = ",".join(f"{k}={load_options[k]}" for k in sorted(load_options))
    return f"{model}|{extra}" if extra else model


def lora_key(request: GenerateRequest) -> tuple:
    """The LoRA set a request applies (its own and its prompt's <lora:...> tags), for placement."""
    from imagegen.prompt.a1111 import extract_extra_networks
    from imagegen.prompt.translate import sd_prompt_text

    _, tags = extract_extra_networks(sd_prompt_text(request), [])
    loras: list[Any] = [*tags, *request.loras]
    return tuple(sorted((lora.name, float(lora.weight)) for lora in loras))
