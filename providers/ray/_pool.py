"""`Pool`: the driver's side of the workers: placement, the wait for a free worker, faults.

One request runs on a worker at a time; requests beyond that wait here, in arrival order, so no
request queues behind a long one on a busy worker while another worker is idle. A free worker
that has the request's checkpoint (and LoRAs) warm is preferred; otherwise the least-loaded free
worker (one with room in its warm budget first, then the fewest images served) loads it.

A worker that dies mid-request (actor killed, node lost, OOM) is dropped from the pool and the
request runs again on another worker: local generation costs nothing twice, and the dead
worker's answer can never arrive, so a request is neither lost nor returned twice.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from imagegen import errors

from ._worker import PoolWorker

if TYPE_CHECKING:
    from imagegen.providers.base import ProgressCallback

    from imagegen.catalog import ModelCard
    from imagegen.request import GenerateRequest
    from imagegen.result import GenerateResult

log = logging.getLogger("imagegen")
POLL_S = 0.05  # how often progress is fetched from a worker while a progress callback listens
_SIMPLE_ERRORS = ("ConfigError", "ModelLoadError", "ImageReadError", "UserCancelledError", "PromptSyntaxError")


@dataclass
class Worker:
    index: int
    actor: Any
    warm: list[tuple[str, tuple]] = field(default_factory=list)  # (model key, LoRAs), LRU first
    busy: bool = False
    alive: bool = True
    served_images: int = 0
    node: str = ""
    pid: int = 0

    def warmth(self, key: str, loras: tuple) -> int:
        """2: checkpoint and LoRAs warm; 1: the checkpoint; 0: neither."""
        for warm_key, warm_loras in self.warm:
            if warm_key == key:
                return 2 if warm_loras == loras else 1
        return 0


class Pool:
    """``workers`` Ray actors, each with ``num_gpus`` GPUs (1 on GPU clusters) or ``num_cpus``."""

    def __init__(self, ray: Any, *, workers: int, settings: dict[str, Any], num_gpus: float = 0,
                 num_cpus: float = 1, warm_budget: int = 2, start_timeout_s: float = 120.0,
                 inner: str = "local"):
        self.ray = ray
        self.warm_budget = warm_budget
        self._cond = threading.Condition()
        self._waiting: deque[object] = deque()
        self._per_image_s: dict[str, float] = {}  # model key -> learned seconds per image (EWMA)
        self._queued_images = 0  # images waiting or running
        remote = ray.remote(PoolWorker).options(
            num_gpus=num_gpus, num_cpus=num_cpus, max_restarts=0, max_task_retries=0,
            max_concurrency=4)  # run + events/cancel polls alongside
        self.workers = [Worker(i, remote.remote(settings, warm_budget, i, inner)) for i in range(workers)]
        try:
            infos = ray.get([w.actor.info.remote() for w in self.workers], timeout=start_timeout_s)
        except Exception as exc:
            self.close()
            raise errors.ProviderError(f"the Ray workers did not start within {start_timeout_s:g} s "
                                       f"({type(exc).__name__}); are {workers} x "
                                       f"{'GPU' if num_gpus else 'CPU'} slots free?",
                                       provider="ray", scope="provider") from None
        for worker, info in zip(self.workers, infos, strict=True):
            worker.node, worker.pid = info["node"], info["pid"]

    # -- state for cards --------------------------------------------------------------

    @property
    def live(self) -> list[Worker]:
        return [w for w in self.workers if w.alive]

    def ask(self, method: str, *args: Any, timeout_s: float = 60.0) -> Any:
        """Call ``method`` on some live worker (listing models, resolving a reference)."""
        for worker in self.live:
            try:
                return self.ray.get(getattr(worker.actor, method).remote(*args), timeout=timeout_s)
            except self._death_errors():
                self._mark_dead(worker, "did not answer")
        raise errors.ProviderError("the Ray pool has no live workers", provider="ray", scope="provider")

    def info(self) -> list[dict[str, Any]]:
        """Each live worker's own account: warm models, loads, images served."""
        return self.ray.get([w.actor.info.remote() for w in self.live])

    def expected_s_per_image(self, key: str, default: float) -> float:
        """Seconds per image for a new request now: the learned time per image, times the queue
        ahead of it spread over the live workers."""
        per_image = self._per_image_s.get(key, default)
        live = max(1, len(self.live))
        return per_image * (1 + self._queued_images / live)

    def warm_on(self, key: str) -> int:
        """How many live workers have the checkpoint ``key`` warm."""
        return sum(1 for w in self.live if w.warmth(key, ()))

    def describe(self) -> str:
        live = self.live
        busy = sum(w.busy for w in live)
        return f"{len(live)}/{len(self.workers)} workers live, {busy} busy, {len(self._waiting)} waiting"

    # -- running one request ----------------------------------------------------------

    def run(self, request: GenerateRequest, card: ModelCard, key: str, loras: tuple, *,
            progress: ProgressCallback | None = None, cancel: threading.Event | None = None) -> GenerateResult:
        images = request.image_count
        with self._cond:
            self._queued_images += images
        attempts: list[str] = []
        queued_at = time.perf_counter()
        try:
            while True:
                worker = self._acquire(key, loras, cancel)
                try:
                    reply = self._call(worker, request, card, key, loras, progress, cancel)
                except self._death_errors() as exc:
                    self._mark_dead(worker, f"died mid-request ({type(exc).__name__})")
                    attempts.append(f"worker {worker.index} died")
                    continue  # on another worker
                finally:
                    self._release(worker)
                return self._finish(reply, worker, key, images, attempts, queued_at)
        finally:
            with self._cond:
                self._queued_images -= images

    def _acquire(self, key: str, loras: tuple, cancel: threading.Event | None) -> Worker:
        ticket = object()
        with self._cond:
            self._waiting.append(ticket)
            try:
                while True:
                    live = self.live
                    if not live:
                        raise errors.ProviderError("the Ray pool has no live workers", provider="ray",
                                                   scope="provider")
                    if cancel is not None and cancel.is_set():
                        raise errors.UserCancelledError("generation cancelled before it started")
                    free = [w for w in live if not w.busy]
                    if free and self._waiting[0] is ticket:
                        worker = max(free, key=lambda w: (w.warmth(key, loras), len(w.warm) < self.warm_budget,
                                                          -w.served_images, -w.index))
                        worker.busy = True
                        return worker
                    self._cond.wait(0.1)
            finally:
                self._waiting.remove(ticket)
                self._cond.notify_all()

    def _release(self, worker: Worker) -> None:
        with self._cond:
            worker.busy = False
            self._cond.notify_all()

    def _call(self, worker: Worker, request: GenerateRequest, card: ModelCard, key: str, loras: tuple,
              progress: ProgressCallback | None, cancel: threading.Event | None) -> dict[str, Any]:
        ray = self.ray
        run_id = uuid.uuid4().hex
        ref = worker.actor.run.remote(run_id, request, card, key, loras)
        if progress is None and cancel is None:
            return ray.get(ref)
        seen = 0
        stopped: BaseException | None = None  # what the caller stopped with
        while True:
            try:
                ready, _ = ray.wait([ref], timeout=POLL_S)
                reply = ray.get(ref) if ready else None
            except self._death_errors():
                if stopped is not None:
                    raise stopped from None  # cancelled anyway: nothing to run again
                raise
            if reply is not None:
                if stopped is not None:
                    worker.warm = [(k, tuple(v)) for k, v in reply.get("warm", worker.warm)]
                    raise stopped
                if progress is not None:
                    for event in reply.get("events", [])[seen:]:
                        progress(event)  # the run is over: a cancel here comes too late to matter
                return reply
            if stopped is not None:
                continue
            try:
                if cancel is not None and cancel.is_set():
                    raise errors.UserCancelledError("generation cancelled")
                if progress is not None:
                    events = ray.get(worker.actor.events.remote(run_id, seen))
                    for event in events:
                        seen += 1
                        progress(event)
            except self._death_errors():
                raise
            except BaseException as exc:  # the callback stopped it (or failed): so does the worker
                worker.actor.cancel.remote(run_id)  # it stops at its next step, then is free again
                stopped = exc

    def _finish(self, reply: dict[str, Any], worker: Worker, key: str, images: int, attempts: list[str],
                queued_at: float) -> GenerateResult:
        worker.warm = [(k, tuple(v)) for k, v in reply.get("warm", worker.warm)]
        if "error" in reply:
            raise _as_error(reply, worker)
        result = reply["result"]
        service_s = reply["finished"] - reply["started"] - result.load_s
        with self._cond:
            worker.served_images += images
            per_image = service_s / max(1, images)
            old = self._per_image_s.get(key)
            self._per_image_s[key] = per_image if old is None else 0.7 * old + 0.3 * per_image
        result.raw["ray"] = {"worker": worker.index, "node": worker.node, "pid": reply["pid"],
                             "started": reply["started"], "finished": reply["finished"],
                             "queued_s": round(time.perf_counter() - queued_at - (reply["finished"] - reply["started"]), 4),
                             "attempts": len(attempts) + 1, "retried_after": attempts}
        return result

    def _mark_dead(self, worker: Worker, why: str) -> None:
        with self._cond:
            if worker.alive:
                worker.alive = False
                log.warning("ray worker %d %s; %d left", worker.index, why, len(self.live))
            self._cond.notify_all()

    def _death_errors(self) -> tuple[type[BaseException], ...]:
        exc = self.ray.exceptions
        found = [exc.RayActorError, getattr(exc, "WorkerCrashedError", None),
                 getattr(exc, "OutOfMemoryError", None), getattr(exc, "NodeDiedError", None)]
        return tuple(e for e in found if e is not None)

    def close(self) -> None:
        for worker in self.workers:
            try:
                self.ray.kill(worker.actor)
            except Exception:  # already gone, or Ray shut down first
                pass
            worker.alive = False


def _as_error(reply: dict[str, Any], worker: Worker) -> Exception:
    """A worker's failure as the SDK's own error: the same class for the plain ones, else a
    `ProviderError` from the ray provider."""
    name, message = reply["error"], reply["message"]
    if reply.get("imagegen") and name in _SIMPLE_ERRORS:
        return getattr(errors, name)(message)
    return errors.ProviderError(f"worker {worker.index}: {name}: {message}", provider="ray",
                                retryable=bool(reply.get("retryable", True)))
