"""FakeReplicate checked against the official ``replicate`` client (1.0.x), offline."""

from __future__ import annotations

import io
import json
import tarfile
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
import replicate
from PIL import Image
from replicate.exceptions import ReplicateError
from replicate.helpers import FileOutput
from replicate.webhook import InvalidSignatureError, WebhookSigningSecret

from imagegen.testing import FakeReplicate
from imagegen.webhooks import verify_webhook


@pytest.fixture
def fake():
    with FakeReplicate() as emulator:
        yield emulator


@pytest.fixture
def client(fake):
    return fake.client()


class WebhookReceiver:
    """A loopback server that records every POST it receives."""

    def __init__(self) -> None:
        received = self.received = []
        arrived = self.arrived = threading.Condition()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with arrived:
                    received.append((dict(self.headers), body))
                    arrived.notify_all()
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()

    def wait_for(self, count: int, timeout: float = 5.0) -> list:
        with self.arrived:
            assert self.arrived.wait_for(lambda: len(self.received) >= count, timeout)
            return list(self.received)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _decode(file_output: FileOutput) -> Image.Image:
    return Image.open(io.BytesIO(file_output.read()))


def test_run_flux_schnell_returns_file_outputs_that_decode_as_images(client):
    outputs = client.run("black-forest-labs/flux-schnell",
                         input={"prompt": "a red fox", "num_outputs": 2, "seed": 7,
                                "aspect_ratio": "16:9", "output_format": "png"})
    assert len(outputs) == 2
    assert all(isinstance(o, FileOutput) for o in outputs)
    images = [_decode(o) for o in outputs]
    assert [im.format for im in images] == ["PNG", "PNG"]
    assert images[0].size == (64, 37)  # 1344x768 scaled down, ratio kept
    assert images[0].info["requested_size"] == "1344x768"
    assert images[0].tobytes() != images[1].tobytes()  # out-0 and out-1 differ


def test_same_prompt_and_seed_give_same_bytes_and_a_new_seed_new_pixels(client):
    def run(seed: int) -> bytes:
        [out] = client.run("black-forest-labs/flux-dev", input={"prompt": "a fox", "seed": seed})
        return out.read()

    first, again, other = run(1), run(1), run(2)
    assert first == again
    assert Image.open(io.BytesIO(first)).tobytes() != Image.open(io.BytesIO(other)).tobytes()


def test_pro_models_return_one_file_output_not_a_list(client):
    out = client.run("black-forest-labs/flux-1.1-pro-ultra", input={"prompt": "a fox"})
    assert isinstance(out, FileOutput)
    assert _decode(out).format == "JPEG"  # ultra's default output_format is jpg


def test_predictions_create_wait_reports_succeeded_with_metrics_and_served_urls(fake, client):
    prediction = client.models.predictions.create(model="black-forest-labs/flux-schnell",
                                                  input={"prompt": "a cat", "seed": 5})
    assert prediction.status == "starting"
    assert prediction.urls["get"] == f"{fake.base_url}/v1/predictions/{prediction.id}"
    prediction.wait()
    assert prediction.status == "succeeded"
    assert prediction.metrics["predict_time"] >= 0
    assert "Using seed: 5" in prediction.logs
    [url] = prediction.output
    assert url.startswith(fake.base_url + "/delivery/")
    assert Image.open(io.BytesIO(httpx.get(url).content)).format == "WEBP"
    assert fake.create_count == 1


def test_run_with_a_version_reference_polls_to_completion(fake, client):
    version = fake.models["black-forest-labs/flux-schnell"].latest_version.id
    outputs = client.run(f"black-forest-labs/flux-schnell:{version}",
                         input={"prompt": "a cat"}, wait=False)
    # Served over http://, so the client hands back plain URL strings (research note §1.8).
    assert outputs[0].startswith(fake.base_url)
    assert fake.requests_to(f"/v1/models/black-forest-labs/flux-schnell/versions/{version}")


def test_cancel_stops_a_running_prediction(fake, client):
    fake.processing_time_s = 5
    prediction = client.predictions.create(model="black-forest-labs/flux-dev",
                                           input={"prompt": "slow"})
    prediction.cancel()
    assert prediction.status == "canceled"
    assert client.predictions.get(prediction.id).status == "canceled"
    assert fake.predictions[prediction.id].output is None


def test_files_create_get_list_delete(fake, client, tmp_path):
    path = tmp_path / "photos.zip"
    path.write_bytes(b"PK\x03\x04 not much of a zip")
    created = client.files.create(path, metadata={"job": "42"})
    assert created.name == "photos.zip"
    assert created.content_type == "application/zip"
    assert created.size == path.stat().st_size
    assert created.metadata == {"job": "42"}
    assert client.files.get(created.id).checksums == created.checksums
    assert [f.id for f in client.files.list()] == [created.id]
    download = httpx.get(f"{created.urls['get']}/download",
                         headers={"Authorization": f"Bearer {fake.api_token}"})
    assert download.content == path.read_bytes()
    assert client.files.delete(created.id) is True
    with pytest.raises(ReplicateError) as err:
        client.files.get(created.id)
    assert err.value.status == 404


def _dataset_zip() -> io.BytesIO:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("photo1.txt", "a photo of TOK")
    buffer.seek(0)
    buffer.name = "data.zip"
    return buffer


def test_training_creates_a_new_version_usable_for_predictions(fake, client):
    destination = client.models.create(owner=fake.username, name="my-lora",
                                       visibility="private", hardware="gpu-t4")
    assert destination.latest_version is None
    trainer = client.models.get("ostris/flux-dev-lora-trainer").latest_version.id
    training = client.trainings.create(
        version=f"ostris/flux-dev-lora-trainer:{trainer}",
        input={"input_images": _dataset_zip(), "steps": 100, "trigger_word": "TOK"},
        destination=f"{fake.username}/my-lora")
    assert training.status == "starting"
    assert training.input["input_images"].startswith(f"{fake.base_url}/v1/files/")
    deadline = time.monotonic() + 5
    while training.status not in ("succeeded", "failed", "canceled"):
        assert time.monotonic() < deadline
        time.sleep(0.02)
        training.reload()
    assert training.status == "succeeded", training.error
    assert training.destination == f"{fake.username}/my-lora"
    new_version = training.output["version"]
    assert new_version.split(":")[1] == client.models.get(
        f"{fake.username}/my-lora").latest_version.id

    weights = httpx.get(training.output["weights"]).content
    with tarfile.open(fileobj=io.BytesIO(weights)) as tar:
        lora = tar.extractfile("output/flux_train_replicate/lora.safetensors").read()
    from safetensors.numpy import load

    tensors = load(lora)
    assert any(name.endswith("lora_A.weight") for name in tensors)

    [out] = client.run(new_version, input={"prompt": "a photo of TOK", "seed": 1})
    assert _decode(out).size == (64, 64)


def test_training_to_a_missing_destination_is_404_with_replicates_body(fake, client):
    trainer = fake.models["ostris/flux-dev-lora-trainer"].latest_version.id
    with pytest.raises(ReplicateError) as err:
        client.trainings.create(version=f"ostris/flux-dev-lora-trainer:{trainer}",
                                input={"input_images": "https://example.com/d.zip"},
                                destination=f"{fake.username}/nope")
    assert err.value.status == 404
    assert err.value.detail == "The specified training destination does not exist"
    assert fake.training_create_count == 0


def test_invalid_input_is_422_naming_the_field(fake, client):
    with pytest.raises(ReplicateError) as err:
        client.run("black-forest-labs/flux-schnell", input={"prompt": "x", "num_outputs": 9})
    assert err.value.status == 422
    assert err.value.title == "Input validation failed"
    assert "input.num_outputs: Must be less than or equal to 4" in err.value.detail
    raw = httpx.post(f"{fake.base_url}/v1/models/black-forest-labs/flux-schnell/predictions",
                     json={"input": {"prompt": "x", "num_outputs": 9}},
                     headers={"Authorization": f"Bearer {fake.api_token}"})
    assert raw.headers["content-type"] == "application/problem+json"
    assert raw.json()["invalid_fields"] == [{"type": "number_lte", "field": "input.num_outputs",
                                             "description": "Must be less than or equal to 4"}]
    assert fake.create_count == 0


def test_wrong_token_is_401_unauthenticated(fake):
    wrong = replicate.Client(api_token="r8_wrong", base_url=fake.base_url)
    with pytest.raises(ReplicateError) as err:
        wrong.run("black-forest-labs/flux-schnell", input={"prompt": "x"})
    assert err.value.status == 401
    assert err.value.title == "Unauthenticated"
    assert err.value.detail == "You did not pass a valid authentication token"


def test_base_url_from_environment_with_or_without_v1_suffix(fake, monkeypatch):
    for base in (fake.base_url, fake.base_url + "/v1"):
        monkeypatch.setenv("REPLICATE_API_TOKEN", fake.api_token)
        monkeypatch.setenv("REPLICATE_BASE_URL", base)
        assert replicate.Client().models.get("black-forest-labs/flux-dev").name == "flux-dev"


def test_webhook_delivery_validates_with_the_official_client_and_verify_webhook(fake, client):
    receiver = WebhookReceiver()
    try:
        client.models.predictions.create(
            model="black-forest-labs/flux-schnell", input={"prompt": "hook"},
            webhook=receiver.url, webhook_events_filter=["start", "completed"])
        deliveries = receiver.wait_for(2)
    finally:
        receiver.close()
    secret = client.webhooks.default.secret()
    assert secret.key == fake.webhook_secret
    for headers, body in deliveries:
        # Returns None when valid, raises otherwise.
        replicate.webhooks.validate(headers=headers, body=body.decode(), secret=secret,
                                    tolerance=300)
        verify_webhook(headers, body, secret.key)
    assert [json.loads(b)["status"] for _, b in deliveries] == ["processing", "succeeded"]
    headers, body = deliveries[-1]
    with pytest.raises(InvalidSignatureError):
        replicate.webhooks.validate(headers=headers, body=body.decode().replace("s", "z"),
                                    secret=WebhookSigningSecret(key=fake.webhook_secret))


def test_models_create_returns_the_model_and_rejects_a_duplicate(fake, client):
    model = client.models.create(owner=fake.username, name="dest", visibility="public",
                                 hardware="cpu", description="for LoRAs")
    assert (model.owner, model.name, model.description) == (fake.username, "dest", "for LoRAs")
    assert f"{fake.username}/dest" in fake.models
    with pytest.raises(ReplicateError) as err:
        client.models.create(owner=fake.username, name="dest", visibility="public",
                             hardware="cpu")
    assert err.value.status == 409


def test_paginate_follows_the_emulators_absolute_next_urls(fake, client):
    fake.page_size = 2
    for i in range(5):
        client.models.predictions.create(model="black-forest-labs/flux-schnell",
                                         input={"prompt": f"p{i}"})
    pages = list(replicate.paginate(client.predictions.list))
    prompts = [p.input["prompt"] for page in pages for p in page]
    assert prompts == ["p4", "p3", "p2", "p1", "p0"]
    assert len(pages) == 3


async def test_async_run_works_too(fake, client):
    [out] = await client.async_run("black-forest-labs/flux-schnell",
                                   input={"prompt": "async", "seed": 1})
    assert Image.open(io.BytesIO(await out.aread())).format == "WEBP"
