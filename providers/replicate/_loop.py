"""A background event loop for synchronous callers, so one connection pool serves every call.

`asyncio.run` per call would build and drop the HTTP clients (and their TLS sessions) each time.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class LoopThread:
    """A daemon thread running an event loop; `run` waits for a coroutine scheduled on it."""

    def __init__(self, name: str):
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], *, cancel_grace_s: float = 5.0) -> T:
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result()
        except BaseException:
            if not future.done():  # e.g. KeyboardInterrupt: stop the work, let it clean up
                future.cancel()
                concurrent.futures.wait([future], timeout=cancel_grace_s)
            raise

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        self.loop.close()
