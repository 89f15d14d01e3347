"""Many requests at once: `ImageGen.map` / `amap`.

Each request is routed as `ImageGen.agenerate` would route it (pool workers, local and cloud
models together, under the client's budget), up to ``concurrency`` at a time; results come back
as they finish. The sync `map` runs the same loop on its own thread, so the client's budget and
usage are only ever touched from one thread.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import AsyncGenerator, Callable, Iterable, Iterator, Sized
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from .errors import ConfigError

if TYPE_CHECKING:
    from imagegen.providers.base import Progress

    from .client import ImageGen
    from .request import GenerateRequest
    from .result import GenerateResult
    from .router import RoutePolicy

MapProgress = Callable[["Progress"], None]


async def amap(gen: ImageGen, requests: Iterable[GenerateRequest | str], *, concurrency: int = 4,
               policy: RoutePolicy | None = None, progress: MapProgress | None = None,
               return_exceptions: bool = False) -> AsyncGenerator[Any, None]:
    """Yield each request's result as it finishes; ``result.raw["index"]`` is the request's
    position in ``requests``. ``progress`` gets ``Progress(stage="done", step=finished,
    total=requests known so far, image_index=that position)`` after each one. A failure cancels
    the rest and raises, unless ``return_exceptions``: then the exception (its ``index`` set) is
    yielded in the result's place."""
    from imagegen.providers.base import Progress

    if concurrency < 1:
        raise ConfigError(f"concurrency must be at least 1, got {concurrency}")
    pending_requests = iter(requests)
    total = len(requests) if isinstance(requests, Sized) else 0
    running: dict[asyncio.Future[GenerateResult], int] = {}
    submitted = finished = 0
    exhausted = False
    try:
        while True:
            while not exhausted and len(running) < concurrency:
                try:
                    request = next(pending_requests)
                except StopIteration:
                    exhausted = True
                    break
                running[asyncio.ensure_future(gen.agenerate(request, policy=policy))] = submitted
                submitted += 1
            if not running:
                return
            done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
            for task in sorted(done, key=running.__getitem__):
                index = running.pop(task)
                finished += 1
                error = task.exception()
                if progress is not None:
                    progress(Progress(stage="done", step=finished, total=max(total, submitted),
                                      image_index=index, message=_describe(task, error)))
                if error is not None:
                    if not return_exceptions:
                        raise error
                    error.index = index  # type: ignore[attr-defined]
                    yield error
                else:
                    result = task.result()
                    result.raw["index"] = index
                    yield result
    finally:
        for task in running:
            task.cancel()
        if running:
            await asyncio.gather(*running, return_exceptions=True)


def _describe(task: asyncio.Future[Any], error: BaseException | None) -> str:
    if error is not None:
        return f"failed: {type(error).__name__}: {error}"
    result = task.result()
    return f"{result.model}: {len(result.images)} image(s)"


def map_sync(gen: ImageGen, requests: Iterable[GenerateRequest | str], *, concurrency: int = 4,
             policy: RoutePolicy | None = None, progress: MapProgress | None = None,
             return_exceptions: bool = False) -> Iterator[Any]:
    """`amap` for synchronous code: the loop runs on a thread of its own; closing the iterator
    early cancels what is still running."""
    if concurrency < 1:
        raise ConfigError(f"concurrency must be at least 1, got {concurrency}")
    items: queue.Queue[tuple[str, Any]] = queue.Queue()
    loop = asyncio.new_event_loop()
    # providers that run on threads (local, the pool) each hold one while they work
    loop.set_default_executor(ThreadPoolExecutor(max_workers=concurrency + 2, thread_name_prefix="imagegen-map"))
    main: list[asyncio.Task[None]] = []

    async def drain() -> None:
        stream = amap(gen, requests, concurrency=concurrency, policy=policy, progress=progress,
                      return_exceptions=return_exceptions)
        try:
            async for item in stream:
                items.put(("item", item))
        finally:
            await stream.aclose()

    def run() -> None:
        try:
            main.append(loop.create_task(drain()))
            loop.run_until_complete(main[0])
        except BaseException as exc:  # handed to the consumer
            items.put(("error", exc))
        finally:
            items.put(("end", None))
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()

    thread = threading.Thread(target=run, name="imagegen-map", daemon=True)
    thread.start()
    try:
        while True:
            kind, value = items.get()
            if kind == "end":
                return
            if kind == "error":
                if isinstance(value, asyncio.CancelledError):
                    return
                raise value
            yield value
    finally:
        if thread.is_alive() and main:
            try:
                loop.call_soon_threadsafe(main[0].cancel)
            except RuntimeError:  # the loop closed meanwhile: nothing left to cancel
                pass
