"""What the `imagegen serve` API tests share: the router over the demo model and the Replicate
emulator, served on a free loopback port for the length of a test module."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from imagegen import ImageGen
from imagegen.server import ServerLimits, create_app
from imagegen.server._thread import running
from imagegen.testing import FakeReplicate


@contextmanager
def served_router(home: Path, key: str, models_dir: Path | None = None) -> Iterator[dict]:
    """{"url", "gen", "fake"}: ``gen`` routes over the demo model and the emulator's models."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        with FakeReplicate(processing_time_s=0.01) as fake:
            gen = ImageGen(replicate_api_token=fake.api_token, replicate_base_url=fake.base_url, home=home,
                           models_dir=models_dir or home / "models")
            app = create_app(gen, api_key=key, limits=ServerLimits(max_pixels=1024 * 1024, max_concurrency=8))
            with running(app) as url:
                yield {"url": url, "gen": gen, "fake": fake}
