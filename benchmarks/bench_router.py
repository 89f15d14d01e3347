"""Routing decisions per second over a 100-card catalog (goal: at most 100 µs of CPU per decision).

    python benchmarks/bench_router.py [--cards 100] [--seconds 1.0]

Cards are spread over three providers whose `prepare` is the shared `BaseProvider` one (what
real adapters start from; the router asks each provider once per decision for all its cards).
Prints µs per decision for each strategy, wall-clock and CPU time (CPU time is steadier on a
busy machine), the ratio to the goal (below 1 meets it), and how the CPU time splits between
the providers' `prepare` and the router's own work. Last, a floor: the least any decision can
do under the provider contract (one `Prepared` per card from the generic check, one `Candidate`
per capable card, one sort by cost), with none of the router's policy, Elo, health or reasons.
And one real decision: `ImageGen.route` over the shipped catalog, where Replicate translates the
request for each Flux model.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from imagegen.providers.base import BaseProvider  # noqa: E402

from imagegen import GenerateRequest, ImageGen, ModelCard, Price  # noqa: E402
from imagegen.catalog import Capabilities, CatalogData, Elo  # noqa: E402
from imagegen.ranking import Candidate  # noqa: E402
from imagegen.router import RoutePolicy, Router  # noqa: E402
from imagegen.settings import Settings  # noqa: E402

GOAL_US = 100.0


class Provider(BaseProvider):
    def __init__(self, name: str):
        super().__init__()
        self.name = name


class TimedProvider(Provider):
    """The generic `prepare`, with the CPU time spent in it added up."""

    cpu_s = 0.0

    def prepare(self, request, cards, needs=None):
        started = time.process_time()
        try:
            return super().prepare(request, cards, needs)
        finally:
            TimedProvider.cpu_s += time.process_time() - started


def catalog(n: int, seed: int = 0) -> list[ModelCard]:
    rng = random.Random(seed)
    cards = [ModelCard(id="local:demo", provider="local", family="demo", kind="builtin", latency_s=0.2)]
    for i in range(n - 1):
        provider = ("local", "replicate", "other")[i % 3]
        cards.append(ModelCard(
            id=f"{provider}:model-{i:03d}", provider=provider, family="sdxl",
            price=Price(per_image=0.0 if provider == "local" else rng.choice([0.003, 0.025, 0.04, 0.055])),
            elo=Elo(value=rng.choice([None, float(rng.randint(950, 1250))])),
            latency_s=rng.uniform(0.5, 20.0),
            capabilities=Capabilities(lora=rng.random() < 0.5, negative_prompt=provider == "local",
                                      max_images_per_call=4)))
    return cards


def time_calls(decide, seconds: float) -> tuple[float, float]:
    """(wall µs, CPU µs) per call; CPU time is steadier on a shared machine."""
    decide()  # warm up
    count, started, cpu_started = 0, time.perf_counter(), time.process_time()
    deadline = started + seconds
    while time.perf_counter() < deadline:
        for _ in range(20):
            decide()
        count += 20
    wall = (time.perf_counter() - started) / count * 1e6
    return wall, (time.process_time() - cpu_started) / count * 1e6


def floor_decision(request, cards, providers, needs) -> list[Candidate]:
    """What any decision must do under the provider contract, and nothing else."""
    batches: dict[str, list[ModelCard]] = {}
    for card in cards:
        batches.setdefault(card.provider, []).append(card)
    prepared = [one for name, batch in batches.items()
                for one in BaseProvider.prepare(providers[name], request, batch, needs)]
    candidates = [Candidate(one.card, 0.0, one.cost_usd, one.card.latency_s, one.warnings, None, "", False, one)
                  for one in prepared if not one.missing]
    candidates.sort(key=lambda c: c.cost_usd)
    return candidates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cards", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=1.0)
    args = parser.parse_args()

    cards = catalog(args.cards)
    providers = {name: TimedProvider(name) for name in ("local", "replicate", "other")}
    request = GenerateRequest(prompt="a lighthouse at dusk", negative_prompt="text", seed=7)
    router = Router(catalog=CatalogData())
    for failing in cards[1:4]:  # some health state, as after a few failures
        router.record_failure(failing)
    print(f"{args.cards} cards, Python {sys.version.split()[0]}; goal {GOAL_US:.0f} µs per decision")
    print(f"{'strategy':<10} {'wall µs':>9} {'CPU µs':>9} {'CPU/goal':>9} {'providers µs':>13} {'router µs':>10}")
    for strategy in ("cost", "quality", "speed", "balanced"):
        policy = RoutePolicy(strategy=strategy, max_cost_per_image=0.05)
        TimedProvider.cpu_s, calls = 0.0, 0

        def decide(policy=policy):
            nonlocal calls
            calls += 1
            router.decide(request, cards, providers, policy)

        wall, cpu = time_calls(decide, args.seconds)
        in_providers = TimedProvider.cpu_s / calls * 1e6
        print(f"{strategy:<10} {wall:>9.1f} {cpu:>9.1f} {cpu / GOAL_US:>9.2f} {in_providers:>13.1f} "
              f"{cpu - in_providers:>10.1f}")
    needs = request.needs()
    _, floor = time_calls(lambda: floor_decision(request, cards, providers, needs), args.seconds)
    print(f"floor: {floor:.1f} µs CPU ({floor / GOAL_US:.2f} of the goal)")
    shipped_catalog(args.seconds)


def shipped_catalog(seconds: float) -> None:
    with tempfile.TemporaryDirectory() as home:
        gen = ImageGen(settings=Settings(replicate_api_token="r8_bench", home=Path(home)))
        request = GenerateRequest.from_midjourney("a lighthouse at dusk --ar 16:9")
        cards = len(gen.models())
        _, cpu = time_calls(lambda: gen.route(request), seconds)
        print(f"ImageGen.route over the shipped catalog ({cards} cards): {cpu:.0f} µs CPU per decision")
        gen.close()


if __name__ == "__main__":
    main()
