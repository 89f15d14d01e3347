"""`ImageGen.map` / `amap` (the bulk path the Ray pool is used through) and `imagegen generate
--batch`, on in-process providers: no Ray needed."""

from __future__ import annotations

import threading
import time

import pytest
from imagegen.providers.base import BaseProvider
from PIL import Image

from imagegen import GeneratedImage, GenerateRequest, GenerateResult, ImageGen
from imagegen.catalog import Capabilities, ModelCard, Price
from imagegen.errors import BudgetExceededError, ConfigError, ProviderError


class SlowPaint(BaseProvider):
    """Sleeps ``delay(request)`` seconds, then paints; records how many run at once."""

    def __init__(self, name="slow", price=0.0, delay=lambda r: 0.05, fail_seeds=()):
        super().__init__()
        self.name, self.price, self.delay, self.fail_seeds = name, price, delay, set(fail_seeds)
        self.running = self.most = 0
        self.started: list[int] = []
        self._lock = threading.Lock()

    def models(self):
        return [ModelCard(id=f"{self.name}:flat", provider=self.name, price=Price(per_image=self.price),
                          latency_s=1.0, capabilities=Capabilities(negative_prompt=True))]

    def generate(self, prepared, *, progress=None):
        request = prepared.request
        with self._lock:
            self.running += 1
            self.most = max(self.most, self.running)
            self.started.append(request.seed)
        try:
            time.sleep(self.delay(request))
            if request.seed in self.fail_seeds:
                raise ProviderError("boom", provider=self.name, retryable=False)
            image = GeneratedImage.from_pil(Image.new("RGB", (8, 8)), seed=request.seed)
            return GenerateResult(images=[image], cost_usd=self.price)
        finally:
            with self._lock:
                self.running -= 1


def reqs(n, model="slow:flat"):
    return [GenerateRequest(prompt=f"p{i}", seed=i, model=model) for i in range(n)]


def test_map_yields_results_as_they_finish_with_their_index():
    slow = SlowPaint(delay=lambda r: 0.4 if r.seed == 0 else 0.02)
    gen = ImageGen(providers=[slow])
    order = [r.raw["index"] for r in gen.map(reqs(4), concurrency=4)]
    assert sorted(order) == [0, 1, 2, 3] and order[-1] == 0  # the slow first request comes last


def test_map_keeps_at_most_concurrency_in_flight_and_reports_progress():
    slow = SlowPaint(delay=lambda r: 0.03)
    gen = ImageGen(providers=[slow])
    events = []
    results = list(gen.map(reqs(9), concurrency=3, progress=events.append))
    assert len(results) == 9 and 1 < slow.most <= 3
    assert [e.step for e in events] == list(range(1, 10)) and events[-1].total == 9
    assert sorted(e.image_index for e in events) == list(range(9))
    assert all(e.stage == "done" and "slow:flat" in e.message for e in events)


def test_map_takes_a_generator_and_strings():
    gen = ImageGen(providers=[SlowPaint(delay=lambda r: 0.0)])
    results = list(gen.map((f"a cat --seed {i}" for i in range(3)), concurrency=2))
    assert sorted(r.images[0].seed for r in results) == [0, 1, 2]


def test_a_failure_raises_unless_return_exceptions():
    gen = ImageGen(providers=[SlowPaint(delay=lambda r: 0.01, fail_seeds={2})])
    with pytest.raises(ProviderError, match="boom"):
        list(gen.map(reqs(4), concurrency=2))
    out = list(gen.map(reqs(4), concurrency=2, return_exceptions=True))
    failed = [o for o in out if isinstance(o, Exception)]
    assert len(out) == 4 and len(failed) == 1 and failed[0].index == 2


def test_budget_is_shared_across_the_batch():
    gen = ImageGen(providers=[SlowPaint(price=0.01, delay=lambda r: 0.05)], budget_usd=0.025)
    out = list(gen.map(reqs(4), concurrency=4, return_exceptions=True))
    refused = [o for o in out if isinstance(o, BudgetExceededError)]
    assert len(refused) == 2 and gen.spent_usd == pytest.approx(0.02)
    assert gen.usage["slow:flat"]["calls"] == 2


def test_closing_the_iterator_early_starts_nothing_more():
    slow = SlowPaint(delay=lambda r: 0.05)
    gen = ImageGen(providers=[slow])
    stream = gen.map(reqs(20), concurrency=2)
    next(stream)
    stream.close()
    time.sleep(0.3)
    assert len(slow.started) <= 4


async def test_amap_in_a_running_loop():
    gen = ImageGen(providers=[SlowPaint(delay=lambda r: 0.01)])
    seen = [r.raw["index"] async for r in gen.amap(reqs(5), concurrency=2)]
    assert sorted(seen) == [0, 1, 2, 3, 4]


def test_concurrency_below_one_is_refused():
    gen = ImageGen(providers=[SlowPaint()])
    with pytest.raises(ConfigError, match="concurrency"):
        list(gen.map(reqs(1), concurrency=0))


def test_cli_generate_batch_reads_one_prompt_a_line(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    import imagegen.cli as cli

    slow = SlowPaint(delay=lambda r: 0.01)
    monkeypatch.setattr(cli, "make_client", lambda strategy=None, budget=None, **c: ImageGen(providers=[slow]))
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red cat --seed 3\n\n# a comment\na blue dog --seed 5\n")
    out = tmp_path / "out"
    result = CliRunner().invoke(cli.app, ["generate", "--batch", str(prompts), "-o", str(out),
                                          "--concurrency", "2"])
    assert result.exit_code == 0, result.output
    assert sorted(slow.started) == [3, 5]
    assert sorted(p.name for p in out.iterdir()) == ["image-3.png", "image-5.png"]
    missing = CliRunner().invoke(cli.app, ["generate", "-o", str(out)])
    assert missing.exit_code == 2 and "--batch" in missing.output
