"""A stand-in for `ImageGen` for the arena page's handler tests: the few methods the page calls
(models, route, generate with progress, policy, settings), each model painting its own colour,
so the tests run in milliseconds without a model or a network."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

from PIL import Image

from imagegen.errors import NoRouteError
from imagegen.result import GeneratedImage, GenerateResult
from imagegen.router import RoutePolicy

COLOURS = {"stub:red": (220, 40, 40), "stub:blue": (40, 60, 220), "stub:gold": (230, 190, 40)}
COSTS = {"stub:red": 0.0, "stub:blue": 0.01, "stub:gold": 0.40}
SHIPPED = {"stub:red": 1000.0, "stub:blue": 1100.0, "stub:gold": None}


class StubGen:
    def __init__(self, home, *, policy: RoutePolicy | None = None, delay_s: float = 0.0,
                 fail: set[str] | None = None):
        self.settings = SimpleNamespace(home=home)
        self.policy = policy or RoutePolicy()
        self.delay_s = delay_s
        self.fail = fail or set()
        self.calls: list = []
        self.lock = threading.Lock()

    def models(self):
        return [SimpleNamespace(id=m, provider=m.split(":")[0], family="stub",
                                elo=SimpleNamespace(value=SHIPPED[m], source="stub table" if SHIPPED[m] else "",
                                                    date="2026-01-01"))
                for m in COLOURS]

    def route(self, request):
        if request.model not in COLOURS:
            raise NoRouteError(f"model {request.model} is unknown", [])
        return SimpleNamespace(candidates=[SimpleNamespace(cost_usd=COSTS[request.model])])

    def generate(self, request, *, progress=None):
        with self.lock:
            self.calls.append(request)
        steps = 4
        for step in range(1, steps + 1):
            if progress:
                progress(SimpleNamespace(stage="step", step=step, total=steps, image_index=0))
            time.sleep(self.delay_s / steps)
        if request.model in self.fail:
            raise NoRouteError(f"{request.model} broke on purpose", [])
        infotext = f"{request.prompt}\nSteps: {steps}, Seed: {request.seed}, Model: {request.model}"
        image = GeneratedImage.from_pil(Image.new("RGB", (32, 32), COLOURS[request.model]), seed=request.seed,
                                        infotext=infotext)
        return GenerateResult(images=[image], provider="stub", model=request.model, cost_usd=COSTS[request.model])

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None
