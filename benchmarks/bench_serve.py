"""What `imagegen serve` adds over calling `gen.generate` directly, on loopback.

Served and direct calls are interleaved (so drift hits both alike) on the same `ImageGen`
(the `agenerate` baseline, which is what the server awaits, has a client of its own):
the demo model (64x64, few steps) and FakeReplicate's flux-schnell. Reports p50/p95 latency
of each, the added milliseconds (goal: <= 10 ms at p50), the served/direct ratios, and
requests per second, sequential and with concurrent clients, through both APIs.

    python benchmarks/bench_serve.py [--requests 30] [--steps 4] [--clients 4]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from imagegen import GenerateRequest, ImageGen, RoutePolicy
from imagegen.server import ServerLimits, create_app
from imagegen.server._thread import running
from imagegen.testing import FakeReplicate

KEY = "sk-bench-0123456789"


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def _bodies(model: str, steps: int) -> tuple[GenerateRequest, dict, dict]:
    """The same job three ways: a request, an OpenAI body and a WebUI body."""
    side = 64 if model.startswith("local:") else 512
    request = GenerateRequest(prompt="a red circle on a blue background", model=model, seed=1, steps=steps,
                              width=side, height=side, sampler="Euler", cfg_scale=7.0)
    openai_body = {"prompt": request.prompt, "model": model, "seed": 1, "steps": steps, "size": f"{side}x{side}",
                   "sampler": "Euler", "cfg_scale": 7.0, "response_format": "b64_json"}
    webui_body = {"prompt": request.prompt, "seed": 1, "steps": steps, "width": side, "height": side,
                  "sampler_name": "Euler", "cfg_scale": 7.0, "override_settings": {"sd_model_checkpoint": model}}
    return request, openai_body, webui_body


def _client(url: str, headers: dict[str, str]) -> httpx.Client:
    return httpx.Client(base_url=url, headers=headers, timeout=120)  # keep-alive, as real clients


class AsyncBaseline:
    """`await gen.agenerate(...)` (what the server awaits) on a loop of its own, with its own
    client: the async provider sessions belong to one loop, so it cannot share the server's."""

    def __init__(self, gen: ImageGen):
        self.gen = gen
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()

    def __call__(self, request: GenerateRequest) -> None:
        asyncio.run_coroutine_threadsafe(self.gen.agenerate(request), self.loop).result()


def measure(gen: ImageGen, agen: AsyncBaseline, url: str, model: str, requests: int, steps: int,
            clients: int) -> None:
    request, openai_body, webui_body = _bodies(model, steps)
    headers = {"Authorization": f"Bearer {KEY}"}
    http = _client(url, headers)
    # Warm up: weights loaded, connections open, first-call costs paid.
    gen.generate(request)
    agen(request)
    http.post("/v1/images/generations", json=openai_body).raise_for_status()
    http.post("/sdapi/v1/txt2img", json=webui_body).raise_for_status()

    direct, direct_async, served_openai, served_webui = [], [], [], []
    for _ in range(requests):
        started = time.perf_counter()
        gen.generate(request)
        direct.append(time.perf_counter() - started)
        started = time.perf_counter()
        agen(request)
        direct_async.append(time.perf_counter() - started)
        started = time.perf_counter()
        http.post("/v1/images/generations", json=openai_body).raise_for_status()
        served_openai.append(time.perf_counter() - started)
        started = time.perf_counter()
        http.post("/sdapi/v1/txt2img", json=webui_body).raise_for_status()
        served_webui.append(time.perf_counter() - started)

    print(f"\n{model}  ({requests} requests each, interleaved)")
    for name, values in (("gen.generate", direct), ("gen.agenerate", direct_async)):
        print(f"  direct {name:<16} p50 {_pct(values, 0.5) * 1e3:8.2f} ms  p95 {_pct(values, 0.95) * 1e3:8.2f} ms  "
              f"{1 / statistics.mean(values):6.1f} req/s")
    for name, values in (("OpenAI /v1/images", served_openai), ("A1111 /sdapi/v1", served_webui)):
        p50, p95 = _pct(values, 0.5), _pct(values, 0.95)
        print(f"  served {name:<16} p50 {p50 * 1e3:8.2f} ms  p95 {p95 * 1e3:8.2f} ms  "
              f"{1 / statistics.mean(values):6.1f} req/s")
        for base_name, base in (("generate", direct), ("agenerate", direct_async)):
            added = [s - d for s, d in zip(values, base)]
            print(f"      added over {base_name:<9}: p50 {_pct(added, 0.5) * 1e3:7.2f} ms  "
                  f"p95 {_pct(added, 0.95) * 1e3:7.2f} ms  ratio p50 {p50 / _pct(base, 0.5):5.3f}  (goal: <= 10 ms at p50)")

    local = threading.local()

    def one(_: int) -> None:
        if not hasattr(local, "http"):  # one keep-alive connection per client thread
            local.http = _client(url, headers)
        local.http.post("/v1/images/generations", json=openai_body).raise_for_status()

    def one_direct(_: int) -> None:
        gen.generate(request)

    count = requests * clients // 2 or 1
    for label, fn in (("direct", one_direct), ("served", one)):
        with ThreadPoolExecutor(clients) as pool:
            started = time.perf_counter()
            list(pool.map(fn, range(count)))
            elapsed = time.perf_counter() - started
        print(f"  {clients} concurrent clients, {label:>6}: {count / elapsed:7.1f} req/s")
    http.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--processing", type=float, default=0.05, help="emulated seconds per prediction")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with FakeReplicate(processing_time_s=args.processing) as fake:
        gen = ImageGen(replicate_api_token=fake.api_token, replicate_base_url=fake.base_url)
        missing = [c.id for c in gen.models() if c.provider == "replicate" and c.model not in fake.models]
        gen.policy = RoutePolicy(exclude=missing)
        baseline = AsyncBaseline(ImageGen(replicate_api_token=fake.api_token, replicate_base_url=fake.base_url))
        app = create_app(gen, api_key=KEY, limits=ServerLimits(max_concurrency=64))
        with running(app) as url:
            for model in ("local:demo", "replicate:black-forest-labs/flux-schnell"):
                measure(gen, baseline, url, model, args.requests, args.steps, args.clients)


if __name__ == "__main__":
    main()
