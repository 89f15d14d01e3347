"""`imagegen serve` as a Ray Serve deployment: the demo model behind the router, two replicas
behind Serve's HTTP proxy on a free loopback port, called with the official `openai` client.

One local Ray for the session (shared with tests/test_ray*.py when they run in the same session:
whichever starts first, the other reuses it). Skipped without Ray Serve."""

from __future__ import annotations

import asyncio
import base64
import io
import os
import socket
import subprocess
import sys
import threading

import pytest
from PIL import Image

openai = pytest.importorskip("openai")
pytest.importorskip("fastapi")
pytest.importorskip("imagegen.providers.local")

from imagegen import GenerateRequest, ImageGen, read_infotext  # noqa: E402
from imagegen.errors import ConfigError  # noqa: E402
from imagegen.settings import Settings  # noqa: E402

KEY = "sk-test-ray-serve-0123456789"
DEPLOY_TIMEOUT_S = 180.0
pytestmark = pytest.mark.usefixtures("one_thread")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def ray_serve_session():
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray = pytest.importorskip("ray")
    try:
        from ray import serve
    except ImportError as exc:
        pytest.skip(f"Ray Serve is not installed ({exc})")
    started = not ray.is_initialized()
    if started:  # the same arguments as tests/test_ray.py, so either can reuse the other's Ray
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield serve
    if started:
        ray.shutdown()


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    home = tmp_path_factory.mktemp("ray_serve_home")
    return Settings(home=home, models_dir=home / "models", device="cpu")


@pytest.fixture(scope="module")
def deployed(ray_serve_session, settings):
    from imagegen.server import ray_deployment

    serve = ray_serve_session
    port = _free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    application = ray_deployment(num_replicas=2, settings=settings, api_key=KEY, name="imagegen-test",
                                 ray_actor_options={"num_cpus": 0})
    outcome: dict = {}

    def deploy() -> None:
        try:
            outcome["handle"] = serve.run(application, name="imagegen-test", route_prefix="/")
        except BaseException as exc:  # reported below
            outcome["error"] = exc

    thread = threading.Thread(target=deploy, daemon=True)
    thread.start()
    thread.join(DEPLOY_TIMEOUT_S)
    try:
        assert not thread.is_alive(), f"the deployment was not up within {DEPLOY_TIMEOUT_S:g} s"
        if "error" in outcome:
            raise outcome["error"]
        yield {"url": f"http://127.0.0.1:{port}", "serve": serve}
    finally:
        serve.shutdown()


@pytest.fixture(scope="module")
def client(deployed):
    return openai.OpenAI(base_url=deployed["url"] + "/v1", api_key=KEY, max_retries=0, timeout=60.0)


def _png(b64: str) -> Image.Image:
    image = Image.open(io.BytesIO(base64.b64decode(b64)))
    image.load()
    return image


def test_the_deployment_serves_the_demo_model_with_the_seed_asked_for(client, settings):
    response = client.images.generate(prompt="a red circle", model="local:demo", n=2, size="64x64",
                                      extra_body={"seed": 23, "steps": 4})
    assert response.model_extra["imagegen"]["model"] == "local:demo"
    assert response.model_extra["imagegen"]["seeds"] == [23, 24]
    served = [_png(d.b64_json) for d in response.data]
    assert [image.size for image in served] == [(64, 64), (64, 64)]
    assert "Seed: 24" in read_infotext(base64.b64decode(response.data[1].b64_json))
    # the replicas' router gives the pixels the same request gives in this process
    with ImageGen(settings=settings) as gen:
        direct = gen.generate(GenerateRequest(prompt="a red circle", model="local:demo", seed=23, steps=4,
                                              width=64, height=64, batch_size=2))
    assert [image.convert("RGB").tobytes() for image in served] == [i.pil().convert("RGB").tobytes()
                                                                     for i in direct.images]


def test_every_replica_answers_and_keys_still_guard_it(client, deployed):
    seeds = [client.images.generate(prompt="a blue square", model="local:demo", size="64x64",
                                    extra_body={"seed": 100 + i, "steps": 2}).model_extra["imagegen"]["seeds"]
             for i in range(4)]
    assert seeds == [[100], [101], [102], [103]]
    anonymous = openai.OpenAI(base_url=deployed["url"] + "/v1", api_key="sk-wrong-key-000000", max_retries=0,
                              timeout=30.0)
    with pytest.raises(openai.AuthenticationError):
        anonymous.images.generate(prompt="x", model="local:demo", size="64x64")


# -- without a Ray cluster ----------------------------------------------------------------

def test_the_replica_app_builds_on_lifespan_startup_and_closes_on_shutdown(settings):
    from imagegen.server._ray_serve import ReplicaApp, ReplicaSpec

    closed: list[bool] = []

    def factory() -> ImageGen:
        return ImageGen(settings=settings)

    shim = ReplicaApp(ReplicaSpec(gen_factory=factory))
    cloudpickle = pytest.importorskip("ray.cloudpickle")  # what Serve pickles the app with
    shim.gen = ImageGen(settings=settings)  # a built copy would not be sent on
    copy = cloudpickle.loads(cloudpickle.dumps(shim))
    assert copy.app is None and copy.gen is None
    inbox = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[dict] = []

    async def receive() -> dict:
        return inbox.pop(0)

    async def send(event: dict) -> None:
        sent.append(event)
        if event["type"] == "lifespan.startup.complete":
            assert copy.gen is not None and copy.app is not None
            copy.gen.close = lambda: closed.append(True)  # the replica's own ImageGen

    asyncio.run(asyncio.wait_for(copy({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}},
                                      receive, send), 30))
    assert [e["type"] for e in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert closed == [True] and copy.gen is None


def test_a_replica_that_cannot_build_fails_its_startup_without_a_traceback():
    from imagegen.server._ray_serve import ReplicaApp, ReplicaSpec

    def factory() -> ImageGen:
        raise ConfigError("no models here")

    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "lifespan.startup"}

    async def send(event: dict) -> None:
        sent.append(event)

    asyncio.run(asyncio.wait_for(ReplicaApp(ReplicaSpec(gen_factory=factory))(
        {"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send), 30))
    assert sent == [{"type": "lifespan.startup.failed", "message": "ConfigError: no models here"}]


def test_bad_replica_counts_and_keys_are_refused_before_anything_deploys():
    pytest.importorskip("ray.serve")
    from imagegen.server import ray_deployment

    for bad in (0, -1, True, "many"):
        with pytest.raises(ConfigError, match="num_replicas"):
            ray_deployment(num_replicas=bad, gen_factory=ImageGen)
    with pytest.raises(ValueError, match="at least 8"):
        ray_deployment(api_key="short", gen_factory=ImageGen)


def test_import_imagegen_server_does_not_import_ray():
    code = "import sys, imagegen.server; print(imagegen.server.ray_deployment.__name__, 'ray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.split() == ["ray_deployment", "False"]
