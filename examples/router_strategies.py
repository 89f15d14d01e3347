"""The router side by side: one request, four strategies, a constraint, and the explanation.
Replicate's cards are live here because the offline emulator stands in for the API.

    python examples/router_strategies.py
"""

from imagegen import GenerateRequest, ImageGen, NoRouteError, RoutePolicy
from imagegen.testing import FakeReplicate

request = GenerateRequest(prompt="a fox in the snow, golden hour", aspect_ratio="3:2", seed=5)

with FakeReplicate(processing_time_s=0.1) as fake:
    gen = ImageGen(replicate_api_token=fake.api_token, replicate_base_url=fake.base_url)
    for strategy in ("cost", "quality", "speed", "balanced"):
        decision = gen.route(request, policy=RoutePolicy(strategy=strategy))
        best = decision.candidates[0]
        print(f"{strategy:>9}: {decision.chosen.id}  est. ${best.cost_usd:.4f}, ~{best.latency_s:.1f}s")

    # Constraints: at most 4.5 cents an image, and a known Elo of at least 1000.
    policy = RoutePolicy(strategy="quality", max_cost_per_image=0.045, min_elo=1000)
    print()
    print(gen.route(request, policy=policy).explain())

    # A generation follows the same decision (and falls back if the chosen model fails).
    result = gen.generate(request, policy=RoutePolicy(strategy="cost", providers=["replicate"]))
    print(f"\ngenerated on {result.model} for ${result.cost_usd:.4f}")

    try:
        gen.route(request, policy=RoutePolicy(max_cost_per_image=0.0001, providers=["replicate"]))
    except NoRouteError as exc:
        print("no route:", str(exc)[:160], "...")
