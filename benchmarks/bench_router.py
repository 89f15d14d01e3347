"""Routing decisions per second over a 100-card catalog (goal: at most 50 µs per decision).

    python benchmarks/bench_router.py [--cards 100] [--seconds 1.0]

Cards are spread over three providers whose `check` and `estimate_cost` are the shared
`BaseProvider` ones (what real adapters start from). Prints µs per decision for each strategy,
the ratio to the goal (below 1 is better than the goal), and how much of the time the
providers' own `check` calls take.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from imagegen import GenerateRequest, ModelCard, Price  # noqa: E402
from imagegen.catalog import Capabilities, CatalogData, Elo  # noqa: E402
from imagegen.router import RoutePolicy, Router  # noqa: E402
from providers.base import BaseProvider, CheckResult  # noqa: E402

GOAL_US = 50.0


class Provider(BaseProvider):
    def __init__(self, name: str):
        super().__init__()
        self.name = name


class NoCheckProvider(Provider):
    """Accepts everything at a fixed price: isolates the router's own work."""

    def check(self, request, card):
        return CheckResult()

    def estimate_cost(self, request, card):
        return card.price.per_image * request.image_count


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


def time_decisions(router, request, cards, providers, policy, seconds: float) -> float:
    router.decide(request, cards, providers, policy)  # warm up
    count, started = 0, time.perf_counter()
    deadline = started + seconds
    while time.perf_counter() < deadline:
        for _ in range(20):
            router.decide(request, cards, providers, policy)
        count += 20
    return (time.perf_counter() - started) / count * 1e6


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
    print(f"{args.cards} cards, {sys.version.split()[0]}; goal {GOAL_US:.0f} µs per decision")
    print(f"{'strategy':<10} {'µs/decision':>12} {'ratio to goal':>14} {'router only µs':>15}")
    for strategy in ("cost", "quality", "speed", "balanced"):
        policy = RoutePolicy(strategy=strategy, max_cost_per_image=0.05)
        full = time_decisions(router, request, cards, providers, policy, args.seconds)
        own = time_decisions(router, request, cards, bare, policy, args.seconds)
        print(f"{strategy:<10} {full:>12.1f} {full / GOAL_US:>14.2f} {own:>15.1f}")


if __name__ == "__main__":
    main()
