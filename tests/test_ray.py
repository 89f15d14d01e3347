"""The `ray` provider: a pool of local workers on a local Ray, started once for the session.

Two CPU workers (half a logical CPU each, so a second small pool fits beside them for the
fault tests) on the demo model and the tiny SD fixtures. Skipped when Ray is not installed,
except the Ray-absent path, which must work without it.
"""

from __future__ import annotations

import os
import sys
import threading
import time

import pytest

from imagegen import GenerateRequest, ImageGen, LoraRef, RoutePolicy
from imagegen.errors import ConfigError, ProviderError, UserCancelledError
from imagegen.settings import Settings

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="session")
def ray_session():
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray = pytest.importorskip("ray")
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def settings(tiny, tmp_path_factory):
    return Settings(models_dir=tiny.models_dir, home=tmp_path_factory.mktemp("ray_home"), device="cpu")


@pytest.fixture(scope="session")
def provider(ray_session, settings):
    from imagegen.providers.ray import RayProvider

    pool = RayProvider(settings, address="auto", workers=2, num_cpus=0.5)
    yield pool
    pool.close()


@pytest.fixture(scope="session")
def local(settings):
    from imagegen.providers.local import LocalProvider

    return LocalProvider(settings)


def demo(**fields) -> GenerateRequest:
    return GenerateRequest(**{"prompt": "a red circle", "model": "ray:demo", "seed": 11, "steps": 4,
                              "width": 64, "height": 64, **fields})


def pixels(result) -> list[bytes]:
    return [image.pil().tobytes() for image in result.images]


# -- the pool gives what the local adapter gives --------------------------------------------

def test_pixels_equal_the_in_process_local_adapter(provider, local):
    gen = ImageGen(providers=[provider, local])
    for model, extra in (("demo", {}), ("tiny", {"loras": [LoraRef(name="tiny_style", weight=0.7)]})):
        request = demo(model=f"ray:{model}", batch_size=2, **extra)
        pooled = gen.generate(request)
        direct = gen.generate(request.model_copy(update={"model": f"local:{model}"}))
        assert pooled.provider == "ray" and pooled.model == f"ray:{model}"
        assert pixels(pooled) == pixels(direct)
        assert [i.seed for i in pooled.images] == [11, 12]
        assert [i.infotext for i in pooled.images] == [i.infotext for i in direct.images]
        assert pooled.raw["ray"]["attempts"] == 1


def test_cards_are_the_local_models_with_local_capabilities(provider, local):
    from imagegen.catalog import elo_for

    cards = {c.model: c for c in provider.models()}
    assert {"demo", "tiny"} <= set(cards)
    for card in local.models():
        pooled = cards[card.model]
        assert pooled.id == f"ray:{card.model}" and pooled.provider == "ray"
        assert pooled.capabilities == card.capabilities
        assert pooled.elo == elo_for(card) and pooled.family == card.family
        assert pooled.latency_source.startswith("live:")
    gen = ImageGen(providers=[provider, local])
    decision = gen.route(GenerateRequest(prompt="a cat", loras=[LoraRef(name="tiny_style")]))
    explained = decision.explain()
    assert "ray:tiny" in explained and "local:tiny" in explained
    assert "ray:demo" in {e.card.id for e in decision.excluded}  # the demo model takes no LoRA


def test_expected_latency_counts_the_queue(provider):
    pool = provider.pool()
    idle = {c.model: c.latency_s for c in provider.models()}["demo"]
    with pool._cond:
        pool._queued_images += 4  # as if 4 images were waiting or running on the 2 workers
    try:
        busy = {c.model: c.latency_s for c in provider.models()}["demo"]
    finally:
        with pool._cond:
            pool._queued_images -= 4
    assert busy == pytest.approx(idle * 3, rel=0.01)  # 1 + 4 images / 2 workers


# -- concurrency and placement ---------------------------------------------------------------

def test_two_workers_serve_concurrently(provider, local):
    gen = ImageGen(providers=[provider, local])
    results = list(gen.map([demo(seed=1, steps=12), demo(seed=2, steps=12)], concurrency=2))
    assert sorted(r.raw["index"] for r in results) == [0, 1]
    spans = {r.raw["ray"]["worker"]: (r.raw["ray"]["started"], r.raw["ray"]["finished"]) for r in results}
    assert set(spans) == {0, 1}
    (a0, a1), (b0, b1) = spans.values()
    assert a0 < b1 and b0 < a1  # the two runs overlapped in time


def test_placement_prefers_the_worker_with_the_model_warm(provider, local):
    gen = ImageGen(providers=[provider, local])
    pool = provider.pool()
    loads_before = sum(info["loads"] for info in pool.info())
    served: dict[str, set[int]] = {"demo": set(), "tiny": set()}
    for model in ("demo", "tiny") * 3:
        result = gen.generate(demo(model=f"ray:{model}"))
        served[model].add(result.raw["ray"]["worker"])
    # after its first run each model stays on one worker; nothing loads twice
    assert len(served["demo"]) == 1 and len(served["tiny"]) == 1
    assert sum(info["loads"] for info in pool.info()) - loads_before <= 2


def test_worker_keeps_a_warm_budget_evicting_the_least_recently_used(settings, local):
    from imagegen.providers.ray._worker import PoolWorker

    config = settings.model_dump(include={"models_dir", "device", "home"})
    card = {m: local.card_for(m) for m in ("demo", "tiny")}
    request = demo(model=None)
    for budget, loads, warm in ((2, 2, ["tiny", "demo"]), (1, 3, ["demo"])):
        worker = PoolWorker(config, warm_budget=budget)
        for model in ("demo", "tiny", "tiny", "demo"):
            reply = worker.run(f"run-{model}", request, card[model], model, ())
            assert "result" in reply, reply
        assert worker.loads == loads  # budget 1: coming back to demo loads it again
        assert [key for key, _ in worker.warm()] == warm  # least recently used first


# -- cancellation ------------------------------------------------------------------------------

def test_cancellation_reaches_the_worker_between_steps(provider, local):
    gen = ImageGen(providers=[provider, local])
    steps: list[int] = []

    def stop_after_two(event):
        if event.stage == "step":
            steps.append(event.step)
            if event.step >= 2:
                raise UserCancelledError("stop")

    started = time.perf_counter()
    with pytest.raises(UserCancelledError):
        gen.generate(demo(steps=40), progress=stop_after_two)
    elapsed = time.perf_counter() - started
    full = gen.generate(demo(steps=40)).latency_s
    assert elapsed < full * 0.8, (elapsed, full)  # stopped well before the end
    assert steps and steps[0] == 1 and max(steps) < 40


async def test_cancelling_the_awaiting_task_stops_the_worker(provider, local):
    import asyncio

    gen = ImageGen(providers=[provider, local])
    first_step = asyncio.Event()
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(gen.agenerate(
        demo(steps=40), progress=lambda e: e.stage == "step" and loop.call_soon_threadsafe(first_step.set)))
    await asyncio.wait_for(first_step.wait(), 60)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    pool = provider.pool()
    deadline = time.monotonic() + 30
    while any(w.busy for w in pool.workers) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert not any(w.busy for w in pool.workers)  # the worker stopped and is free again


# -- faults ------------------------------------------------------------------------------------

def kill_once_busy(ray_session, workers, timeout_s: float = 60.0) -> int | None:
    """Kill the first of ``workers`` seen mid-request (not on a timer: a fast run could finish
    before it fired); its index, or None if none was busy in time."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for worker in workers:
            if worker.busy and worker.alive:
                time.sleep(0.1)  # into its denoising steps
                if worker.busy:  # still mid-request (a fast run may have finished)
                    ray_session.kill(worker.actor)
                    return worker.index
        time.sleep(0.01)
    return None


def test_a_worker_killed_mid_batch_loses_nothing_and_duplicates_nothing(ray_session, settings, local):
    from imagegen.providers.ray import RayProvider

    fragile = RayProvider(settings, address="auto", workers=2, num_cpus=0.5)
    try:
        gen = ImageGen(providers=[fragile, local],
                       policy=RoutePolicy(strategy="speed", exclude=["ray:tiny", "local:tiny"]))
        pool = fragile.pool()
        requests = [demo(seed=100 + i, steps=20) for i in range(4)]
        killed: list[int | None] = []
        killer = threading.Thread(target=lambda: killed.append(kill_once_busy(ray_session, pool.workers)))
        killer.start()
        results = list(gen.map(requests, concurrency=4))
        killer.join()
        assert killed[0] is not None and len(pool.live) == 1
        assert sorted(r.raw["index"] for r in results) == [0, 1, 2, 3]  # each once
        assert sorted(r.images[0].seed for r in results) == [100, 101, 102, 103]
        retried = [r for r in results if r.raw["ray"]["attempts"] > 1]
        assert retried and all(r.raw["ray"]["worker"] != killed[0] for r in retried)
        again = requests[retried[0].raw["index"]].model_copy(update={"model": None})
        assert pixels(retried[0]) == pixels(local.run(again, local.card_for("demo")))  # the same image

        # the last worker dies mid-request: a provider failure the client falls back from
        last = pool.live[0]
        request = demo(model=None, seed=7, steps=150)
        pool._per_image_s["demo"] = 0.01  # so the pool is the fastest choice (the CPUs are shared)
        assert gen.route(request).chosen.id == "ray:demo"
        killer = threading.Thread(target=kill_once_busy, args=(ray_session, [last]))
        killer.start()
        result = gen.generate(request)
        killer.join()
        assert result.provider == "local"
        assert any("fell back after ray:demo" in w for w in result.warnings)
        assert not pool.live and fragile.models() == []
        with pytest.raises(ProviderError, match="no live workers") as err:
            fragile.run(demo(), fragile._pool_card(local.card_for("demo"), pool))
        assert err.value.retryable
    finally:
        fragile.close()


def test_budget_and_usage_count_pool_work(provider, local):
    from imagegen.providers.replicate import ReplicateProvider

    from imagegen.errors import BudgetExceededError
    from imagegen.testing import FakeReplicate

    with FakeReplicate(processing_time_s=0.01) as fake:
        cloud = ReplicateProvider(Settings(replicate_api_token=fake.api_token, replicate_base_url=fake.base_url))
        gen = ImageGen(providers=[provider, local, cloud], budget_usd=0.004)
        schnell = "replicate:black-forest-labs/flux-schnell"
        requests = [demo(seed=1), demo(model=schnell, seed=2, steps=None, width=None, height=None),
                    demo(seed=3), demo(model=schnell, seed=4, steps=None, width=None, height=None)]
        out = list(gen.map(requests, concurrency=4, return_exceptions=True))
        cloud.close()
    refused = [o for o in out if isinstance(o, BudgetExceededError)]
    done = [o for o in out if not isinstance(o, Exception)]
    assert len(refused) == 1 and refused[0].index == 3  # one cloud image ($0.003) fits in $0.004
    assert sorted(r.raw["index"] for r in done) == [0, 1, 2]
    assert gen.usage["ray:demo"] == {"calls": 2, "images": 2, "cost_usd": 0.0}
    assert gen.usage[schnell]["images"] == 1
    assert gen.spent_usd == pytest.approx(gen.usage[schnell]["cost_usd"]) and gen.spent_usd <= 0.004
    assert gen.usage_by_provider["ray"]["images"] == 2


# -- Ray missing, or no cluster ------------------------------------------------------------------

def test_without_ray_the_provider_says_so_in_one_line_and_the_rest_works(monkeypatch, caplog):
    from imagegen.providers.ray import RayProvider

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    gen = ImageGen(providers=[RayProvider(Settings(ray_address="auto")), _local_provider()])
    assert [c.id for c in gen.models()] == ["local:demo"]
    assert "pip install 'imagegen[ray]'" in caplog.text
    with pytest.raises(ConfigError, match=r"needs Ray: pip install 'imagegen\[ray\]'") as err:
        gen.generate(demo())
    assert "\n" not in str(err.value)
    assert gen.generate(demo(model=None)).provider == "local"


def test_unset_address_means_no_cards_and_no_ray_import():
    from imagegen.providers.ray import RayProvider

    provider = RayProvider(Settings())
    assert provider.models() == []
    with pytest.raises(ConfigError, match="IMAGEGEN_RAY_ADDRESS"):
        provider.card_for("demo")


@pytest.mark.parametrize("address, needle", [("10.0.0.5:6379", "ray://<head>:10001"),
                                             ("http://head:8265", "expected 'auto'")])
def test_addresses_that_would_hang_or_mean_nothing_are_refused(address, needle):
    from imagegen.providers.ray._connect import normalize_address

    with pytest.raises(ConfigError, match=needle):
        normalize_address(address)
    assert normalize_address("ray://head:10001") == "ray://head:10001"
    assert normalize_address("local") is None


def test_an_unreachable_cluster_is_one_line_within_the_timeout(tmp_path):
    pytest.importorskip("ray")
    import socket
    import subprocess

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code = (
        "import time\n"
        "from imagegen import ImageGen, ImageGenError\n"
        "from imagegen.providers.ray import RayProvider\n"
        f"ray = RayProvider(address='ray://127.0.0.1:{port}', connect_timeout_s=3)\n"
        "gen = ImageGen(providers=[ray])\n"
        "t = time.monotonic(); print(gen.models())\n"
        "try: gen.card('ray:demo')\n"
        "except ImageGenError as e: print(type(e).__name__, '|', e)\n"
        "print(round(time.monotonic() - t))\n")
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "IMAGEGEN_HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    lines = out.stdout.strip().splitlines()
    assert lines[0] == "[]", out.stderr[-2000:]
    assert lines[1].startswith("ProviderError | [ray] could not reach Ray at") or \
        lines[1].startswith("ProviderError | [ray] could not connect to Ray at"), lines
    assert int(lines[2]) < 10  # the failure is remembered: the second ask does not wait again


def _local_provider():
    from imagegen.providers.local import LocalProvider

    return LocalProvider(Settings())


def test_placement_order_warm_loras_then_room_then_least_served():
    """The choice among free workers, on the pool's own bookkeeping (no Ray needed)."""
    import collections

    from imagegen.providers.ray._pool import Pool, Worker

    pool = Pool.__new__(Pool)  # the placement state only: no actors
    pool._cond, pool._waiting, pool.warm_budget = threading.Condition(), collections.deque(), 2
    style = (("tiny_style", 0.7),)
    pool.workers = [Worker(0, None, warm=[("demo", ()), ("sd", ())], served_images=1),
                    Worker(1, None, warm=[("tiny", ())], served_images=5),
                    Worker(2, None, warm=[("tiny", style)], served_images=9),
                    Worker(3, None, warm=[], served_images=3)]

    def pick(key, loras=()):
        worker = pool._acquire(key, loras, None)
        pool._release(worker)
        return worker.index

    assert pick("tiny", style) == 2  # checkpoint and LoRAs warm
    assert pick("tiny") == 1  # checkpoint warm with the same (no) LoRAs
    assert pick("sdxl") == 3  # nobody has it: room in the warm budget, then fewest images served
    pool.workers[3].busy = True
    assert pick("sdxl") == 1  # worker 0 would evict; 1 and 2 have room, 1 served fewer
    pool.workers[2].alive = pool.workers[1].alive = False
    assert pick("sd") == 0
    pool.workers[0].alive = pool.workers[3].alive = False
    with pytest.raises(ProviderError, match="no live workers"):
        pick("demo")
