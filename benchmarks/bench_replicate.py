"""Replicate adapter throughput against FakeReplicate: 100 images, 1 s emulated processing each.

Reports our wall time over one image's wall time (goal <= 1.3) and HTTP requests per image
(goal <= 1.1), beside the official `replicate.run` driven from a thread pool in the same run.

    python benchmarks/bench_replicate.py [--images 100] [--processing 1.0] [--threads 32]
"""

from __future__ import annotations

import argparse
import multiprocessing
import time
from concurrent.futures import ThreadPoolExecutor

from imagegen.providers.replicate import ReplicateProvider

from imagegen.request import GenerateRequest
from imagegen.settings import Settings
from imagegen.testing import FakeReplicate

MODEL = "black-forest-labs/flux-schnell"


class RemoteFake:
    """FakeReplicate in its own process, so its image rendering does not share our GIL."""

    def __init__(self, processing_s: float):
        self._conn, child = multiprocessing.Pipe()
        self._process = multiprocessing.Process(target=_serve, args=(child, processing_s),
                                                daemon=True)
        self._process.start()
        self.base_url, self.api_token = self._conn.recv()

    @property
    def request_count(self) -> int:
        self._conn.send("count")
        return self._conn.recv()

    def server_span(self, last: int) -> float:
        """Seconds from the first create to the last completion of the newest ``last`` jobs:
        what the emulator itself needed, whatever the client."""
        self._conn.send(("span", last))
        return self._conn.recv()

    def client(self):
        import replicate

        return replicate.Client(api_token=self.api_token, base_url=self.base_url)

    def stop(self) -> None:
        self._conn.send("stop")
        self._process.join(timeout=10)


def _serve(conn, processing_s: float) -> None:
    with FakeReplicate(processing_time_s=processing_s) as fake:
        conn.send((fake.base_url, fake.api_token))
        while (message := conn.recv()) != "stop":
            if message == "count":
                conn.send(len(fake.requests))
            else:
                jobs = sorted(fake.predictions.values(), key=lambda j: j.created_at)[-message[1]:]
                conn.send(max(j.completed_at or 0 for j in jobs) - jobs[0].created_at)


def ours(fake: RemoteFake, images: int) -> tuple[float, float, int, float, float]:
    provider = ReplicateProvider(Settings(replicate_api_token=fake.api_token,
                                          replicate_base_url=fake.base_url))
    card = next(c for c in provider.models() if c.model == MODEL)
    provider.run(GenerateRequest(prompt="warm-up", seed=0), card)  # imports, TLS setup
    started = time.perf_counter()
    one = provider.run(GenerateRequest(prompt="bench", seed=1), card)
    single = time.perf_counter() - started
    assert len(one.images) == 1
    before = fake.request_count
    cpu = time.process_time()
    started = time.perf_counter()
    result = provider.run(GenerateRequest(prompt="bench", seed=1000, batch_size=4,
                                               batch_count=images // 4), card)
    wall = time.perf_counter() - started
    cpu = time.process_time() - cpu
    assert len(result.images) == images
    return single, wall, fake.request_count - before, cpu, fake.server_span(images)


def official(fake: RemoteFake, images: int, threads: int) -> tuple[float, float, int, float, float]:
    client = fake.client()
    client.poll_interval = 0.5  # the client's default

    def run(seed: int) -> bytes:
        (output,) = client.run(MODEL, input={"prompt": "bench", "seed": seed, "output_format": "png"})
        return output.read()

    run(0)  # warm-up
    started = time.perf_counter()
    run(1)
    single = time.perf_counter() - started
    before = fake.request_count
    started = time.perf_counter()
    cpu = time.process_time()
    with ThreadPoolExecutor(threads) as pool:
        outputs = list(pool.map(run, range(2000, 2000 + images)))
    wall = time.perf_counter() - started
    cpu = time.process_time() - cpu
    assert len(outputs) == images
    return single, wall, fake.request_count - before, cpu, fake.server_span(images)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--processing", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=32)
    args = parser.parse_args()
    fake = RemoteFake(args.processing)
    try:
        rows = [("imagegen ReplicateProvider", *ours(fake, args.images)),
                (f"replicate.run x {args.threads} threads", *official(fake, args.images, args.threads))]
    finally:
        fake.stop()
    print(f"{args.images} images, {args.processing:g} s emulated processing each")
    print(f"{'client':34} {'1 image s':>10} {'batch s':>8} {'ratio':>6} {'req/img':>8} "
          f"{'client CPU s':>12} {'server span s':>13}")
    for name, single, wall, requests, cpu, span in rows:
        print(f"{name:34} {single:10.2f} {wall:8.2f} {wall / single:6.2f} "
              f"{requests / args.images:8.2f} {cpu:12.2f} {span:13.2f}")
    print("server span: first create to last completion inside the emulator (a floor for any client)")


if __name__ == "__main__":
    main()
