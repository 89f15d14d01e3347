"""`imagegen serve` safe by default: loopback unless keyed, keys in constant time, limits,
per-key budgets, the concurrency cap (429 + Retry-After), CORS off, no tracebacks or secrets."""

from __future__ import annotations

import threading

import httpx
import pytest

openai = pytest.importorskip("openai")
pytest.importorskip("fastapi")

from typer.testing import CliRunner  # noqa: E402

from imagegen import ConfigError, GenerateRequest, ImageGen  # noqa: E402
from imagegen.cli import app as cli_app  # noqa: E402
from imagegen.server import Guard, Refusal, ServerLimits, check_bind, create_app, is_loopback  # noqa: E402
from imagegen.server._security import check_references  # noqa: E402
from imagegen.server._thread import running  # noqa: E402
from imagegen.testing import FakeReplicate  # noqa: E402

RICH, POOR = "sk-rich-key-0123456789", "sk-poor-key-0123456789"
FLUX = "replicate:black-forest-labs/flux-schnell"


@pytest.fixture(scope="module")
def fake():
    with FakeReplicate(processing_time_s=0.6) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def gen(fake, tmp_path_factory):
    home = tmp_path_factory.mktemp("serve_home")
    return ImageGen(replicate_api_token=fake.api_token, replicate_base_url=fake.base_url, home=home,
                    models_dir=home / "models")


@pytest.fixture(scope="module")
def estimate(gen):
    """What one flux-schnell image is expected to cost (the per-key budgets are set from it)."""
    return gen.route(GenerateRequest(prompt="x", model=FLUX)).candidates[0].cost_usd


@pytest.fixture(scope="module")
def served(gen, estimate):
    app = create_app(gen, api_keys={RICH: None, POOR: estimate * 1.5},
                     limits=ServerLimits(max_concurrency=1, max_body_bytes=64 * 1024))
    with running(app) as url:
        yield url


def _client(url, key):
    return openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0, timeout=30)


def test_over_the_concurrency_limit_clients_get_429_with_retry_after(served):
    barrier = threading.Barrier(3)
    outcomes: list = []

    def call():
        client = _client(served, RICH)
        barrier.wait()
        try:
            client.images.generate(prompt="a fox", model=FLUX)
            outcomes.append(200)
        except openai.APIStatusError as exc:
            outcomes.append((exc.status_code, exc.body.get("code"), exc.response.headers.get("retry-after")))

    threads = [threading.Thread(target=call) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    refused = [o for o in outcomes if o != 200]
    assert outcomes.count(200) >= 1 and len(refused) >= 1, outcomes
    for status, code, retry_after in refused:
        assert status == 429 and code == "rate_limit_exceeded" and int(retry_after) >= 1
    # Once the slot is free again, the same client gets through.
    assert _client(served, RICH).images.generate(prompt="a fox", model=FLUX).data


def test_a_key_over_its_budget_gets_429_insufficient_quota_and_others_go_on(served):
    poor = _client(served, POOR)
    assert poor.images.generate(prompt="a hill", model=FLUX).data  # about 1 of its 1.5 images
    with pytest.raises(openai.RateLimitError) as caught:
        poor.images.generate(prompt="a hill", model=FLUX)
    assert caught.value.body["code"] == "insufficient_quota"
    assert _client(served, RICH).images.generate(prompt="a hill", model=FLUX).data


def test_request_bodies_over_the_limit_get_413_whether_or_not_they_say_their_length(served):
    headers = {"Authorization": f"Bearer {RICH}", "Content-Type": "application/json"}
    big = b'{"prompt": "' + b"a" * (70 * 1024) + b'"}'
    sized = httpx.post(served + "/v1/images/generations", content=big, headers=headers)
    assert sized.status_code == 413 and sized.json()["error"]["code"] == "request_too_large"

    def chunks():
        for start in range(0, len(big), 8192):
            yield big[start:start + 8192]

    streamed = httpx.post(served + "/v1/images/generations", content=chunks(), headers=headers)
    assert streamed.status_code == 413
    webui = httpx.post(served + "/sdapi/v1/txt2img", content=big, headers=headers)
    assert webui.status_code == 413 and webui.json()["error"] == "HTTPException"


def test_a_long_prompt_within_the_body_limit_is_a_400_on_prompt():
    limits = ServerLimits(max_prompt_chars=10)
    app = create_app(ImageGen(providers=[]), limits=limits)
    from starlette.testclient import TestClient

    with TestClient(app) as client:
        response = client.post("/v1/images/generations", json={"prompt": "a" * 11})
    assert response.status_code == 400 and response.json()["error"]["param"] == "prompt"


def test_an_unexpected_failure_is_a_500_without_traceback_or_secret(gen, monkeypatch):
    secret = "r8_supersecret_token_value"

    async def broken(*args, **kwargs):
        raise RuntimeError(f"internal state with {secret}")

    app = create_app(gen)
    from starlette.testclient import TestClient

    monkeypatch.setattr(gen, "agenerate", broken)
    with TestClient(app, raise_server_exceptions=False) as client:
        openai_style = client.post("/v1/images/generations", json={"prompt": "x", "model": FLUX})
        webui_style = client.post("/sdapi/v1/txt2img", json={"prompt": "x"})
    for response in (openai_style, webui_style):
        assert response.status_code == 500
        assert secret not in response.text and "Traceback" not in response.text and "RuntimeError" not in response.text
    assert openai_style.json()["error"]["type"] == "server_error"


def test_the_replicate_token_never_reaches_a_client(served, fake):
    for path in ("/v1/models", "/sdapi/v1/sd-models", "/sdapi/v1/options"):
        response = httpx.get(served + path, headers={"Authorization": f"Bearer {RICH}"})
        assert response.status_code == 200 and fake.api_token not in response.text


def test_cors_is_off_unless_origins_are_given():
    from starlette.testclient import TestClient

    preflight = {"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    with TestClient(create_app(ImageGen(providers=[]))) as client:
        response = client.options("/v1/images/generations", headers=preflight)
        assert "access-control-allow-origin" not in response.headers
    allowed = create_app(ImageGen(providers=[]), cors_origins=["https://app.example"])
    with TestClient(allowed) as client:
        ok = client.options("/v1/images/generations", headers={**preflight, "Origin": "https://app.example"})
        assert ok.headers["access-control-allow-origin"] == "https://app.example"
        other = client.options("/v1/images/generations", headers=preflight)
        assert other.headers.get("access-control-allow-origin") != "https://evil.example"


def test_loopback_only_without_a_key():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost") and is_loopback("127.8.0.1")
    assert not is_loopback("0.0.0.0") and not is_loopback("::") and not is_loopback("192.168.1.4")
    check_bind("127.0.0.1", {})
    check_bind("0.0.0.0", {"sk-some-key-123": None})
    for host in ("0.0.0.0", "::", "10.0.0.2", "example.com"):
        with pytest.raises(ConfigError, match="--api-key"):
            check_bind(host, {})


def test_cli_refuses_a_public_host_without_a_key(monkeypatch):
    monkeypatch.delenv("IMAGEGEN_API_KEY", raising=False)
    result = CliRunner().invoke(cli_app, ["serve", "--host", "0.0.0.0", "--port", "0"])
    assert result.exit_code == 2 and "--api-key" in result.output


def test_keys_are_checked_against_every_key_and_never_shown():
    guard = Guard({RICH: None, POOR: 1.0}, ServerLimits())
    assert guard.authenticate(RICH) == "key-1" and guard.authenticate(POOR) == "key-2"
    for wrong in ("", None, RICH[:-1], RICH + "x", "sk-rich-key-012345678\u00e9"):
        with pytest.raises(Refusal) as caught:
            guard.authenticate(wrong)
        assert caught.value.status == 401 and RICH not in str(caught.value)
    assert RICH not in repr(guard) and POOR not in repr(guard)
    with pytest.raises(ValueError):
        create_app(ImageGen(providers=[]), api_key="short")


@pytest.mark.parametrize(("fields", "param"), [
    ({"model": "local:/etc/passwd"}, "model"),
    ({"loras": [{"name": "../../secret"}]}, "loras.0.name"),
    ({"loras": [{"name": "https://example.com/x.safetensors"}]}, "loras.0.name"),
    ({"vae": "/tmp/vae.pt"}, "vae"),
])
def test_clients_cannot_name_server_files_or_urls(fields, param):
    request = GenerateRequest(prompt="x", **fields)
    with pytest.raises(Refusal) as caught:
        check_references(request, allow_paths=False)
    assert caught.value.status == 400 and caught.value.param == param
    check_references(request, allow_paths=True)  # the operator may allow it


def test_a_path_model_over_http_is_refused_before_touching_the_disk(served):
    response = httpx.post(served + "/v1/images/generations", headers={"Authorization": f"Bearer {RICH}"},
                          json={"prompt": "x", "model": "local:/etc/hostname"})
    assert response.status_code == 400 and response.json()["error"]["code"] == "path_not_allowed"


def test_the_concurrency_slot_is_released_after_a_failure(gen, estimate):
    guard = Guard({RICH: estimate}, ServerLimits(max_concurrency=1))
    ticket = guard.admit("key-1", estimate)
    with pytest.raises(Refusal) as caught:
        guard.admit("key-1", 0.0)
    assert caught.value.status == 429 and caught.value.headers()["Retry-After"] == "1"
    ticket.release(None)  # failed: nothing charged
    guard.admit("key-1", estimate).release(estimate)
    assert guard.spent_usd("key-1") == pytest.approx(estimate) and guard.in_flight == 0


def test_the_arena_page_is_mounted_behind_the_same_keys(gen):
    pytest.importorskip("imagegen.arena._web")
    with running(create_app(gen)) as url:
        assert httpx.get(url + "/arena/").status_code == 200
    with running(create_app(gen, api_key=RICH)) as url:
        refused = httpx.get(url + "/arena/")
        assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Basic"
        assert httpx.get(url + "/arena/", auth=("me", RICH)).status_code == 200


def test_the_serve_command_starts_on_loopback_and_stops(tmp_path):
    import os
    import socket
    import subprocess
    import sys
    import time

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "IMAGEGEN_HOME": str(tmp_path), "IMAGEGEN_API_KEY": RICH, "HF_HUB_OFFLINE": "1"}
    env.pop("REPLICATE_API_TOKEN", None)
    process = subprocess.Popen([sys.executable, "-m", "imagegen.cli", "serve", "--port", str(port)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except httpx.TransportError:
                assert process.poll() is None, process.stderr.read().decode()
                assert time.monotonic() < deadline, "imagegen serve did not start"
                time.sleep(0.2)
        assert health.status_code == 200 and health.json() == {"status": "ok"}  # for load balancers
        assert httpx.get(f"http://127.0.0.1:{port}/v1/models").status_code == 401  # IMAGEGEN_API_KEY applies
        models = httpx.get(f"http://127.0.0.1:{port}/sdapi/v1/sd-models", auth=("me", RICH))
        assert models.status_code == 200 and "local:demo" in [m["title"] for m in models.json()]
    finally:
        process.terminate()
        process.wait(20)
