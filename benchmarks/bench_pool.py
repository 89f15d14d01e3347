"""The Ray pool vs. one in-process local adapter, on the same tiny model and requests.

Reports (1) throughput: images/s of N CPU workers (`gen.map` over the `ray` provider) vs. one
in-process `LocalProvider` running the same requests one after another, and their ratio (on a
2-core machine 2 workers should approach 2x); (2) per-request overhead: the median wall time of
a one-step request through the pool minus in-process (ms; goal <= 50 ms on loopback).

Run from the repository root: `python benchmarks/bench_pool.py [--workers 2] [--requests 8]`.
Starts a local Ray (`ray.init(num_cpus=workers)`) and shuts it down at the end.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def requests_for(count: int, *, steps: int, size: int, model: str) -> list:
    from imagegen import GenerateRequest

    return [GenerateRequest(prompt=f"a red circle on a hill, {i}", seed=1000 + i, steps=steps, width=size,
                            height=size, model=model) for i in range(count)]


def throughput(gen, requests: list, concurrency: int) -> tuple[float, float]:
    """Images per second for all of ``requests`` through ``gen.map``, and how many workers were
    busy on average (the pool's own start/finish times; 0 in process)."""
    started = time.perf_counter()
    results = list(gen.map(requests, concurrency=concurrency))
    wall = time.perf_counter() - started
    busy = sum(r.raw["ray"]["finished"] - r.raw["ray"]["started"] for r in results if "ray" in r.raw)
    return sum(len(r.images) for r in results) / wall, busy / wall


def overhead_ms(gen, model_pool: str, model_local: str, repeats: int, size: int) -> tuple[float, float, float]:
    """Median ms of a one-step request through the pool and in process, and their difference."""
    pool, local = [], []
    for request in requests_for(repeats, steps=1, size=size, model=model_pool):
        for times, model in ((pool, model_pool), (local, model_local)):  # interleaved: noise hits both
            started = time.perf_counter()
            gen.generate(request.model_copy(update={"model": model}))
            times.append((time.perf_counter() - started) * 1000)
    p, loc = statistics.median(pool), statistics.median(local)
    return p, loc, p - loc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--requests", type=int, default=8)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=15, help="one-step requests timed for the overhead")
    parser.add_argument("--model", default="demo", help="demo (shipped) or tiny (the test fixtures' SD 1.x)")
    args = parser.parse_args()

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    import ray
    from imagegen.providers.local import LocalProvider
    from imagegen.providers.ray import RayProvider

    from imagegen import ImageGen
    from imagegen.settings import Settings

    with tempfile.TemporaryDirectory() as tmp:
        models_dir = None
        if args.model == "tiny":
            from tests.local_fixtures import build_all

            models_dir = build_all(Path(tmp) / "tiny").models_dir
        settings = Settings(home=Path(tmp) / "home", models_dir=models_dir, device="cpu")
        ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False, configure_logging=False)
        pool = RayProvider(settings, address="auto", workers=args.workers, num_cpus=1)
        gen = ImageGen(providers=[pool, LocalProvider(settings)])
        try:
            warm = requests_for(args.workers * 2, steps=1, size=args.size, model=f"ray:{args.model}")
            list(gen.map(warm, concurrency=args.workers))  # every worker loads the model
            gen.generate(warm[0].model_copy(update={"model": f"local:{args.model}"}))

            pooled, busy = throughput(gen, requests_for(args.requests, steps=args.steps, size=args.size,
                                                  model=f"ray:{args.model}"), args.workers)
            local, _ = throughput(gen, requests_for(args.requests, steps=args.steps, size=args.size,
                                                 model=f"local:{args.model}"), 1)
            p_ms, l_ms, extra = overhead_ms(gen, f"ray:{args.model}", f"local:{args.model}", args.repeats, args.size)
        finally:
            gen.close()
            ray.shutdown()

    print(f"model {args.model}, {args.requests} requests x {args.steps} steps at {args.size}px, "
          f"{os.cpu_count()} CPUs")
    print(f"throughput: in-process {local:.2f} images/s, pool of {args.workers} workers {pooled:.2f} images/s, "
          f"ratio {pooled / local:.2f}x (workers busy {busy:.2f} of {args.workers} on average)")
    print(f"one-step request: pool {p_ms:.1f} ms, in-process {l_ms:.1f} ms, overhead {extra:.1f} ms "
          f"({'within' if extra <= 50 else 'over'} the 50 ms goal)")


if __name__ == "__main__":
    main()
