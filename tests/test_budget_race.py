"""The budget under concurrency: checking and reserving are one step, and a finished call's charge
is counted before its hold is released, so threads racing for the last dollars never overspend."""

from __future__ import annotations

import sys
import threading
import time

import pytest
from imagegen.providers.base import BaseProvider
from PIL import Image

from imagegen import BudgetExceededError, GeneratedImage, GenerateResult, ImageGen, ModelCard, Price
from imagegen.catalog import Capabilities, CatalogData
from imagegen.router import Router


class Painter(BaseProvider):
    """One card priced per image (or per GPU-second); each call takes ``delay`` seconds."""

    def __init__(self, price: Price, *, delay: float = 0.0, latency: float = 1.0, charge=None):
        super().__init__()
        self.name = "paint"
        self.card = ModelCard(id="paint:model", provider="paint", price=price, latency_s=latency,
                              capabilities=Capabilities(max_images_per_call=4))
        self.delay, self.charge = delay, charge
        self.calls = 0
        self._lock = threading.Lock()

    def models(self):
        return [self.card]

    def generate(self, prepared, *, progress=None):
        with self._lock:
            self.calls += 1
        time.sleep(self.delay)
        image = GeneratedImage.from_pil(Image.new("RGB", (8, 8)), seed=prepared.request.seed)
        cost = self.charge if self.charge is not None else prepared.cost_usd
        return GenerateResult(images=[image], cost_usd=cost)

    async def agenerate(self, prepared, *, progress=None):
        return self.generate(prepared)


def client(provider: BaseProvider, budget: float) -> ImageGen:
    return ImageGen(providers=[provider], budget_usd=budget,
                    router=Router(catalog=CatalogData(), failure_threshold=1000))


def race(gen: ImageGen, threads: int, **overrides) -> tuple[int, int]:
    start = threading.Barrier(threads)
    served, refused, lock = [0], [0], threading.Lock()

    def one(i: int) -> None:
        start.wait()
        try:
            gen.generate("a kite", seed=i, **overrides)
            outcome = served
        except BudgetExceededError:
            outcome = refused
        with lock:
            outcome[0] += 1

    workers = [threading.Thread(target=one, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return served[0], refused[0]


@pytest.fixture
def busy_switching():
    """Switch threads as often as the interpreter can, so any unlocked window is found."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)


@pytest.mark.parametrize("delay", [0.0, 0.002])
def test_twenty_threads_never_overspend_a_six_cent_budget(busy_switching, delay):
    overspent = []
    for trial in range(40):
        painter = Painter(Price(per_image=0.025), delay=delay)
        gen = client(painter, 0.06)
        served, refused = race(gen, 20)
        if gen.spent_usd > 0.06 + 1e-9 or painter.calls > 2:
            overspent.append((trial, gen.spent_usd, painter.calls))
        assert (served, refused) == (painter.calls, 20 - painter.calls)
        assert gen._reserved_usd == pytest.approx(0.0)
        assert served == 2  # the two that fit were not refused either
    assert overspent == []


def test_charge_is_counted_before_the_hold_is_released():
    """No moment where a finished call is counted neither as spent nor as held."""
    painter = Painter(Price(per_image=0.025))
    gen = client(painter, 0.06)
    seen = []
    release = gen._release_budget

    def watching(held: float) -> None:
        seen.append(gen.spent_usd + gen._reserved_usd)  # just before the hold goes
        release(held)

    gen._release_budget = watching
    gen.generate("a kite", seed=1)
    assert seen == [pytest.approx(0.05)]  # charged (0.025) and still held (0.025)
    assert gen.spent_usd == pytest.approx(0.025) and gen._reserved_usd == pytest.approx(0.0)


def test_per_second_models_hold_twice_their_estimate():
    # 1 s expected on a $0.01/s card: estimate $0.01, held $0.02 while it runs.
    painter = Painter(Price(per_gpu_second=0.01), latency=1.0, charge=0.0125)
    gen = client(painter, 0.015)
    with pytest.raises(BudgetExceededError):
        gen.generate("a kite", seed=1)  # the estimate fits, twice it does not
    assert painter.calls == 0
    gen = client(painter, 0.02)
    gen.generate("a kite", seed=1)  # ran 25% over its estimate: still within what was held
    assert gen.spent_usd == pytest.approx(0.0125) and gen.spent_usd <= gen.budget_usd
    with pytest.raises(BudgetExceededError):
        gen.generate("a kite", seed=2)


def test_twenty_threads_through_the_emulator_never_overspend(busy_switching):
    from imagegen.providers.replicate import CallPolicy, ReplicateProvider

    from imagegen.settings import Settings
    from imagegen.testing import FakeReplicate

    with FakeReplicate(processing_time_s=0.01) as fake:
        settings = Settings(replicate_api_token=fake.api_token, replicate_base_url=fake.base_url)
        for trial in range(5):
            provider = ReplicateProvider(settings, policy=CallPolicy(poll_initial_s=0.01))
            gen = ImageGen(providers=[provider], settings=settings, budget_usd=0.06)
            before = len(fake.predictions)
            served, refused = race(gen, 20, model="replicate:black-forest-labs/flux-dev")
            gen.close()
            made = len(fake.predictions) - before
            assert (served, refused, made) == (2, 18, 2), trial  # $0.025 each: two fit
            assert gen.spent_usd == pytest.approx(0.05) and gen.spent_usd <= 0.06
