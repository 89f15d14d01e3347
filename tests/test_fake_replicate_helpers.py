"""FakeReplicate's conveniences for test authors: fixture, served files, records, retention."""

from __future__ import annotations

import io
import os
import time

import httpx
import pytest
import replicate
from PIL import Image

from imagegen.testing import FakeReplicate, requested_size_of
from imagegen.testing.pytest_plugin import fake_replicate  # noqa: F401 - the fixture under test


def test_fixture_points_the_environment_at_the_emulator(fake_replicate):  # noqa: F811
    assert os.environ["REPLICATE_BASE_URL"] == fake_replicate.base_url
    client = replicate.Client()
    assert client.accounts.current().username == fake_replicate.username


def test_delivered_files_hold_every_output_and_can_expire():
    with FakeReplicate() as fake:
        client = fake.client()
        prediction = client.models.predictions.create(
            model="black-forest-labs/flux-1.1-pro",
            input={"prompt": "x", "aspect_ratio": "custom", "width": 1000, "height": 500,
                   "output_format": "png"})
        prediction.wait()
        url = prediction.output
        data = fake.delivered_files[url]
        assert httpx.get(url).content == data
        assert requested_size_of(data) == (992, 512)  # nearest multiples of 32 (pro models)
        assert Image.open(io.BytesIO(data)).size == (64, 33)
        fake.expire_delivered_files()
        assert httpx.get(url).status_code == 404


def test_data_retention_removes_data_after_the_configured_time():
    with FakeReplicate() as fake:
        fake.data_retention_s = 0.05
        client = fake.client()
        prediction = client.models.predictions.create(model="black-forest-labs/flux-schnell",
                                                      input={"prompt": "x"})
        prediction.wait()
        time.sleep(0.1)
        prediction.reload()
        assert prediction.output is None and prediction.input is None


def test_prediction_error_makes_run_raise_model_error():
    with FakeReplicate() as fake:
        fake.prediction_error = "CUDA out of memory"
        with pytest.raises(replicate.exceptions.ModelError, match="CUDA out of memory"):
            fake.client().run("black-forest-labs/flux-dev", input={"prompt": "x"})


def test_records_expose_input_seed_and_requested_size():
    with FakeReplicate() as fake:
        fake.client().run("black-forest-labs/flux-dev",
                          input={"prompt": "x", "seed": 42, "aspect_ratio": "21:9"})
        [record] = fake.predictions.values()
        assert record.input == {"prompt": "x", "seed": 42, "aspect_ratio": "21:9"}
        assert record.effective_input["num_inference_steps"] == 28  # the model's default
        assert (record.seed, record.requested_size, record.status) == (42, (1536, 640),
                                                                      "succeeded")


def test_unseeded_predictions_log_the_seed_they_drew():
    with FakeReplicate() as fake:
        fake.client().run("black-forest-labs/flux-schnell", input={"prompt": "x"})
        [record] = fake.predictions.values()
        assert f"Using seed: {record.seed}" in record.logs
        assert 0 <= record.seed < 2**16


def test_repr_and_requests_never_show_the_token():
    with FakeReplicate(api_token="r8_secret_value") as fake:
        fake.client().models.get("black-forest-labs/flux-dev")
        assert "r8_secret_value" not in repr(fake) + repr(fake.requests)


def test_a_forgotten_emulator_stops_when_collected():
    import gc
    import socket

    fake = FakeReplicate().start()
    port = int(fake.base_url.rsplit(":", 1)[1])
    del fake
    gc.collect()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
