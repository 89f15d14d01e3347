"""Routing decisions per second over a 100-card catalog (goal: at most 100 µs of CPU per decision).

    python benchmarks/bench_router.py [--cards 100] [--seconds 1.0]

Cards are spread over three providers whose `prepare` is the shared `BaseProvider` one (what
real adapters start from; the router asks each provider once per decision for all its cards). Prints µs per decision for each strategy, wall-clock and CPU
time (CPU time is steadier on a busy machine), the ratio to the goal (below 1 meets it), and
the router's own share (providers whose preparing does nothing).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from imagegen.providers.base import BaseProvider, Prepared  # noqa: E402

from imagegen import GenerateRequest, ModelCard, Price  # noqa: E402
from imagegen.catalog import Capabilities, CatalogData, Elo  # noqa: E402
from imagegen.router import RoutePolicy, Router  # noqa: E402

GOAL_US = 100.0


class Provider(BaseProvider):
    def __init__(self, name: str):
        super().__init__()
        self.name = name


class NoCheckProvider(Provider):
    """Accepts everything at a fixed price: isolates the router's own work."""

    def prepare(self, request, cards, needs=None):
        return [Prepared(card, request, cost_usd=card.price.per_image * request.image_count) for card in cards]


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


def time_decisions(router, request, cards, providers, policy, seconds: float) -> tuple[float, float]:
    """(wall µs, CPU µs) per decision; CPU time is steadier on a shared machine."""
    router.decide(request, cards, providers, policy)  # warm up
    count, started, cpu_started = 0, time.perf_counter(), time.process_time()
    deadline = started + seconds
    while time.perf_counter() < deadline:
        for _ in range(20):
            router.decide(request, cards, providers, policy)
        count += 20
    wall = (time.perf_counter() - started) / count * 1e6
    return wall, (time.process_time() - cpu_started) / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cards", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=1.0)
    args = parser.parse_args()

    cards = catalog(args.cards)
    providers = {name: Provider(name) for name in ("local", "replicate", "other")}
    bare = {name: NoCheckProvider(name) for name in providers}
    request = GenerateRequest(prompt="a lighthouse at dusk", negative_prompt="text", seed=7)
    router = Router(catalog=CatalogData())
    for failing in cards[1:4]:  # some health state, as after a few failures
        router.record_failure(failing)
    print(f"{args.cards} cards, Python {sys.version.split()[0]}; goal {GOAL_US:.0f} µs per decision")
    print(f"{'strategy':<10} {'wall µs':>9} {'CPU µs':>9} {'CPU/goal':>9} {'router-only CPU µs':>19}")
    for strategy in ("cost", "quality", "speed", "balanced"):
        policy = RoutePolicy(strategy=strategy, max_cost_per_image=0.05)
        wall, cpu = time_decisions(router, request, cards, providers, policy, args.seconds)
        _, own = time_decisions(router, request, cards, bare, policy, args.seconds)
        print(f"{strategy:<10} {wall:>9.1f} {cpu:>9.1f} {cpu / GOAL_US:>9.2f} {own:>19.1f}")


if __name__ == "__main__":
    main()
