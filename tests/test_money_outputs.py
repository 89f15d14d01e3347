"""Outputs that are paid for but cannot be delivered (slow, hostile, refused): charged as the
provider charged, named so the user can fetch them, never an untyped exception; and the
download rules (host policy, size cap, overall deadline) fine-tune weights downloads reuse."""

from __future__ import annotations

import asyncio
import struct
import time
import zlib

import httpx
import pytest
from imagegen.providers.replicate import CallPolicy, ReplicateProvider
from imagegen.providers.replicate._downloads import (
    DownloadRules,
    check_url,
    download_to_file,
    download_to_file_sync,
    image_size,
)

from imagegen import BudgetExceededError, ImageGen, ImageGenError, NoRouteError, ProviderError
from imagegen.request import GenerateRequest
from imagegen.router import RoutePolicy
from imagegen.settings import Settings
from imagegen.testing import FakeReplicate, Faults

DEV = "replicate:black-forest-labs/flux-dev"  # $0.025 per image
FAST = dict(poll_initial_s=0.02, poll_max_s=0.05, get_backoff_s=0.01, reconcile_delay_s=0.01,
            commit_timeout_s=0.2, get_attempts=2)


def client_for(fake: FakeReplicate, budget: float | None = None, **policy) -> ImageGen:
    settings = Settings(replicate_api_token=fake.api_token, replicate_base_url=fake.base_url)
    provider = ReplicateProvider(settings, policy=CallPolicy(**{**FAST, **policy}))
    return ImageGen(providers=[provider], settings=settings, budget_usd=budget)


def bomb_png(side: int = 20000) -> bytes:
    """A valid 1-bit PNG of side x side pixels (400 M pixels for 20000), about 50 KB."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    row = b"\x00" * (1 + (side + 7) // 8)
    packer = zlib.compressobj(9)
    body = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def bomb() -> bytes:
    return bomb_png()


def test_paid_but_undownloadable_outputs_are_charged_named_and_trip_the_budget():
    with FakeReplicate(processing_time_s=0.01, data_urls="never") as fake:
        fake.faults = Faults(output_trickle_s=0.2)  # the download cannot finish in time
        gen = client_for(fake, budget=0.04, download_timeout_s=0.5)
        started = time.monotonic()
        with gen, pytest.raises(NoRouteError) as failed:
            gen.generate(GenerateRequest(prompt="a fox", seed=1, model=DEV))
        elapsed = time.monotonic() - started
        (prediction_id,) = fake.predictions
        assert prediction_id in str(failed.value) and "charged ($0.0250)" in str(failed.value)
        assert "did not finish within 0.5s" in str(failed.value)
        assert gen.spent_usd == pytest.approx(0.025)
        assert gen.usage[DEV]["cost_usd"] == pytest.approx(0.025)
        with pytest.raises(BudgetExceededError):  # $0.015 left: the next one is refused
            gen.generate(GenerateRequest(prompt="a fox", seed=2, model=DEV))
        assert len(fake.predictions) == 1
    assert elapsed < 3.0  # the overall deadline held, not 2 s per byte


def test_partial_delivery_keeps_what_arrived_and_charges_everything():
    from imagegen.providers.replicate._provider import _Paid, _Run
    from imagegen.providers.replicate._session import ClaimedIds, ReplicateSession
    from imagegen.providers.replicate._translate import PlannedPrediction

    settings = Settings(replicate_api_token="r8_x", replicate_base_url="http://127.0.0.1:9")
    provider = ReplicateProvider(settings)
    card = provider.card_for("black-forest-labs/flux-dev") or next(
        c for c in provider.models() if c.model == "black-forest-labs/flux-dev")
    request = GenerateRequest(prompt="a fox", seed=1, batch_size=2)
    prepared = provider.prepare(request, [card], request.needs())[0]
    session = ReplicateSession("r8_x", "http://127.0.0.1:9", provider.policy, ClaimedIds())
    run = _Run(session, prepared.plan, card, request, None)
    good = run._image(_small_png(), "data:", 1)
    planned = prepared.plan.predictions
    assert all(isinstance(p, PlannedPrediction) for p in planned)
    metrics = {"image_count": 1, "predict_time": 1.0}
    first = _Paid(planned[0], {"id": "p-ok", "metrics": metrics}, produced=1, images=[good])
    second = _Paid(planned[1], {"id": "p-lost", "metrics": metrics}, produced=1,
                   undelivered=[("https://replicate.delivery/x/out-0.png",
                                 ProviderError("download failed: HTTP 404"))])
    result = run.result([first, second], requests=4)
    assert len(result.images) == 1 and result.cost_usd == pytest.approx(0.05)
    assert result.raw["undelivered"] == [{"prediction_id": "p-lost", "error": "download failed: HTTP 404",
                                          "url": "https://replicate.delivery/x/out-0.png"}]
    assert any("p-lost" in w for w in result.warnings)
    assert result.raw["prediction_ids"] == ["p-ok", "p-lost"]


def _small_png() -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, "PNG")
    return buffer.getvalue()


def test_a_decompression_bomb_is_refused_from_its_header_and_the_router_falls_back(bomb):
    assert image_size(bomb) == (20000, 20000)
    with FakeReplicate(processing_time_s=0.01, data_urls="never") as fake:
        fake.faults = Faults(output_body=bomb)
        gen = client_for(fake)
        with gen, pytest.raises(NoRouteError) as failed:
            gen.generate("a fox", seed=1, policy=RoutePolicy(strategy="cost", max_attempts=2))
    # Two candidates tried (a fallback, not a cancelled batch), each refused before decoding.
    assert len(failed.value.excluded) == 2
    assert all("20000x20000 pixels" in reason for _, reason in failed.value.excluded)


@pytest.mark.parametrize("data", [b"\x89PNG\r\n\x1a\n" + b"\x00" * 4, b"GIF89a\x01", b"", b"<html>"])
def test_image_size_of_short_or_foreign_bytes_is_none(data):
    assert image_size(data) is None


def test_image_size_reads_jpeg_webp_and_gif_headers():
    import io

    from PIL import Image

    for fmt in ("JPEG", "WEBP", "GIF", "PNG"):
        buffer = io.BytesIO()
        Image.new("RGB", (37, 21)).save(buffer, fmt)
        assert image_size(buffer.getvalue()) == (37, 21), fmt


RULES = DownloadRules(api_base_url="http://127.0.0.1:8000")


@pytest.mark.parametrize("url", [
    "https://replicate.delivery/pbxt/abc/out-0.png",
    "https://pbxt.replicate.delivery/abc/out-0.webp",
    "http://127.0.0.1:8000/delivery/x/out-0.png",
    "data:image/png;base64,AAAA",
])
def test_allowed_output_urls(url):
    check_url(url, RULES)


@pytest.mark.parametrize("url", [
    "https://evil.example/out.png",
    "https://replicate.delivery.evil.example/out.png",
    "https://evilreplicate.delivery/out.png",
    "http://replicate.delivery/out.png",
    "https://169.254.169.254/latest/meta-data",
    "http://127.0.0.1:8001/delivery/x",
    "https://user:pw@replicate.delivery/out.png",
    "file:///etc/passwd",
    "ftp://replicate.delivery/x",
])
def test_refused_output_urls(url):
    with pytest.raises(ProviderError, match="refusing"):
        check_url(url, RULES)


def test_output_hosts_come_from_settings(monkeypatch):
    monkeypatch.setenv("IMAGEGEN_OUTPUT_HOSTS", "cdn.example.com,*.files.example.org")
    settings = Settings()
    assert settings.replicate_output_hosts == ("cdn.example.com", "*.files.example.org")
    provider = ReplicateProvider(settings)
    rules = DownloadRules.for_outputs(provider.policy, settings.replicate_base_url)
    check_url("https://a.files.example.org/x.png", rules)
    with pytest.raises(ProviderError, match="refusing"):
        check_url("https://replicate.delivery/x.png", rules)  # the list replaces the default


def _serve(fake: FakeReplicate, path: str, size: int) -> str:
    fake._store_blob(path, b"w" * size, "application/x-tar")
    return fake.base_url + path


def test_download_to_file_streams_under_the_cap_and_leaves_nothing_when_refused(tmp_path):
    with FakeReplicate() as fake:
        rules = DownloadRules(api_base_url=fake.base_url, max_bytes=1000, what="trained weights")
        url = _serve(fake, "/delivery/t1/trained_model.tar", 900)
        assert download_to_file_sync(url, tmp_path / "w.tar", rules) == 900
        assert (tmp_path / "w.tar").read_bytes() == b"w" * 900
        big = _serve(fake, "/delivery/t2/trained_model.tar", 5000)
        with pytest.raises(ProviderError, match="trained weights larger than 1000 bytes"):
            download_to_file_sync(big, tmp_path / "big.tar", rules)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["w.tar"]
        with pytest.raises(ProviderError, match="refusing"):
            download_to_file_sync("https://evil.example/w.tar", tmp_path / "e.tar", rules)


def test_download_deadline_holds_against_a_trickle(tmp_path):
    with FakeReplicate() as fake:
        fake.faults = Faults(output_trickle_s=0.1)
        url = _serve(fake, "/delivery/t3/trained_model.tar", 200)
        rules = DownloadRules(api_base_url=fake.base_url, deadline_s=0.5)

        async def main():
            async with httpx.AsyncClient() as http:
                return await download_to_file(http, url, tmp_path / "slow.tar", rules)

        started = time.monotonic()
        with pytest.raises(ProviderError, match="did not finish within 0.5s"):
            asyncio.run(main())
        assert time.monotonic() - started < 2.0
        assert list(tmp_path.iterdir()) == []


def test_every_failure_is_an_imagegen_error():
    with FakeReplicate(processing_time_s=0.01, data_urls="never") as fake:
        fake.faults = Faults(output_body=b"\x89PNG\r\n\x1a\n garbage")
        with client_for(fake) as gen, pytest.raises(ImageGenError, match="does not decode"):
            gen.generate(GenerateRequest(prompt="a fox", seed=1, model=DEV))


def test_a_failed_per_second_prediction_is_charged_for_the_time_it_ran():
    with FakeReplicate(processing_time_s=0.05) as fake:
        version = fake.add_model("fake-user/my-lora")
        fake.prediction_error = "CUDA out of memory"
        gen = client_for(fake, budget=1.0)
        model = f"replicate:fake-user/my-lora:{version.id}"
        with gen, pytest.raises(NoRouteError, match="CUDA out of memory"):
            gen.generate(GenerateRequest(prompt="TOK dog", seed=1, model=model))
        (job,) = fake.predictions.values()
        ran = float((fake._job_json(job).get("metrics") or {}).get("predict_time") or 0.0)
    assert ran > 0
    assert gen.spent_usd == pytest.approx(ran * 0.001525, abs=1e-6)
    assert gen.usage[model]["cost_usd"] == pytest.approx(gen.spent_usd)
