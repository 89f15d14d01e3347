"""Replicate adapter throughput against FakeReplicate: 100 images, 1 s emulated processing each.

Reports our wall time over one image's wall time (goal <= 1.3) and HTTP requests per image
(goal <= 1.1), beside the official `replicate.run` driven from a thread pool in the same run.

    python benchmarks/bench_replicate.py [--images 100] [--processing 1.0] [--threads 32]
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ThreadPoolExecutor

from imagegen.request import GenerateRequest
from imagegen.settings import Settings
from imagegen.testing import FakeReplicate
from providers.replicate import ReplicateProvider

MODEL = "black-forest-labs/flux-schnell"


def ours(fake: FakeReplicate, images: int) -> tuple[float, float, int]:
    provider = ReplicateProvider(Settings(replicate_api_token=fake.api_token,
                                          replicate_base_url=fake.base_url))
    card = next(c for c in provider.models() if c.model == MODEL)
    started = time.perf_counter()
    one = provider.generate(GenerateRequest(prompt="bench", seed=1), card)
    single = time.perf_counter() - started
    assert len(one.images) == 1
    before = len(fake.requests)
    started = time.perf_counter()
    result = provider.generate(GenerateRequest(prompt="bench", seed=1000, batch_size=4,
                                               batch_count=images // 4), card)
    wall = time.perf_counter() - started
    assert len(result.images) == images
    return single, wall, len(fake.requests) - before


def official(fake: FakeReplicate, images: int, threads: int) -> tuple[float, float, int]:
    client = fake.client()
    client.poll_interval = 0.5  # the client's default

    def run(seed: int) -> bytes:
        (output,) = client.run(MODEL, input={"prompt": "bench", "seed": seed, "output_format": "png"})
        return output.read()

    started = time.perf_counter()
    run(1)
    single = time.perf_counter() - started
    before = len(fake.requests)
    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        outputs = list(pool.map(run, range(2000, 2000 + images)))
    wall = time.perf_counter() - started
    assert len(outputs) == images
    return single, wall, len(fake.requests) - before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--processing", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=32)
    args = parser.parse_args()
    with FakeReplicate(processing_time_s=args.processing) as fake:
        rows = [("imagegen ReplicateProvider", *ours(fake, args.images)),
                (f"replicate.run x {args.threads} threads", *official(fake, args.images, args.threads))]
    print(f"{args.images} images, {args.processing:g} s emulated processing each")
    print(f"{'client':34} {'1 image s':>10} {'batch s':>8} {'ratio':>6} {'req/img':>8}")
    for name, single, wall, requests in rows:
        print(f"{name:34} {single:10.2f} {wall:8.2f} {wall / single:6.2f} {requests / args.images:8.2f}")


if __name__ == "__main__":
    main()
