"""FakeReplicate's wire behaviour, checked with raw HTTP against the research note's facts."""

from __future__ import annotations

import base64
import io
import socket
import time

import httpx
import pytest
from PIL import Image

from imagegen.testing import FakeReplicate, Faults

SCHNELL = "/v1/models/black-forest-labs/flux-schnell/predictions"


@pytest.fixture
def fake():
    with FakeReplicate() as emulator:
        yield emulator


@pytest.fixture
def http(fake):
    with httpx.Client(base_url=fake.base_url,
                      headers={"Authorization": f"Bearer {fake.api_token}"}) as session:
        yield session


def _create(http, input=None, path=SCHNELL, **headers):
    body = {"input": {"prompt": "a cat"} if input is None else input}
    return http.post(path, json=body, headers=headers)


def _wait(http, prediction_id: str, timeout: float = 5.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        body = http.get(f"/v1/predictions/{prediction_id}").json()
        if body["status"] in ("succeeded", "failed", "canceled", "aborted"):
            return body
        assert time.monotonic() < deadline, body["status"]
        time.sleep(0.01)


def test_create_is_201_starting_with_every_field_a_client_needs(fake, http):
    response = _create(http)
    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "starting"
    assert len(body["id"]) == 26
    assert body["model"] == "black-forest-labs/flux-schnell"
    assert body["version"].startswith("dp-")  # official models carry pseudo-versions
    assert body["input"] == {"prompt": "a cat"}
    assert body["data_removed"] is False
    assert set(body["urls"]) == {"get", "cancel", "stream", "web"}
    assert response.headers["ratelimit-remaining"].isdigit()


def test_prefer_wait_returns_the_finished_prediction_with_data_urls(http):
    response = _create(http, {"prompt": "a cat", "output_format": "png"}, Prefer="wait")
    assert response.status_code == 201
    assert response.headers["Preference-Applied"] == "wait"
    body = response.json()
    assert body["status"] == "succeeded"
    header, _, data = body["output"][0].partition(",")
    assert header == "data:image/png;base64"
    assert Image.open(io.BytesIO(base64.b64decode(data))).format == "PNG"
    # A later GET carries served URLs, not data URLs.
    assert _wait(http, body["id"])["output"][0].startswith("http://127.0.0.1")


def test_prefer_wait_n_returns_the_unfinished_prediction_after_n_seconds(fake, http):
    fake.queue_time_s = 3
    started = time.monotonic()
    response = _create(http, Prefer="wait=1")
    assert 0.9 < time.monotonic() - started < 2.5
    assert response.headers["Preference-Applied"] == "wait=1"
    assert response.json()["status"] == "starting"


def test_processing_with_output_fault_answers_processing_with_outputs_filled(fake, http):
    fake.fail_next("processing_with_output", on="create")
    body = _create(http, Prefer="wait").json()
    assert body["status"] == "processing"
    assert body["output"][0].startswith("data:image/webp;base64,")


def test_429_carries_retry_after_header_and_body_field(fake, http):
    fake.fail_next("429", on="create")
    response = _create(http)
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "1"
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json() == {"title": "Request was throttled",
                               "detail": "Request was throttled. Your rate limit resets in ~1s.",
                               "status": 429, "retry_after": 1}
    assert fake.create_count == 0


def test_rate_limit_per_minute_throttles_creates(fake, http):
    fake.rate_limit_create_per_minute = 2
    statuses = [_create(http).status_code for _ in range(3)]
    assert statuses == [201, 201, 429]
    assert fake.create_count == 2


def test_5xx_after_create_leaves_a_prediction_a_list_can_reconcile(fake, http):
    fake.fail_next("5xx_after_create", on="create")
    sent = {"prompt": "reconcile me", "seed": 11}
    response = _create(http, sent)
    assert response.status_code == 503
    assert fake.create_count == 1  # the server did create it
    listed = http.get("/v1/predictions").json()["results"]
    [match] = [p for p in listed if p["input"] == sent]
    assert match["model"] == "black-forest-labs/flux-schnell"
    assert match["created_at"].endswith("Z")


def test_reset_after_create_drops_the_connection_but_keeps_the_prediction(fake, http):
    fake.fail_next("reset_after_create", on="create")
    with pytest.raises(httpx.TransportError):
        _create(http)
    assert fake.create_count == 1
    assert len(http.get("/v1/predictions").json()["results"]) == 1


def test_random_faults_replay_exactly_for_the_same_seed():
    def statuses(seed: int) -> list:
        with FakeReplicate() as fake:
            fake.faults = Faults(rate_429=0.3, rate_5xx=0.3, seed=seed)
            with httpx.Client(base_url=fake.base_url,
                              headers={"Authorization": f"Bearer {fake.api_token}"}) as c:
                return [c.get("/v1/account").status_code for _ in range(20)]

    first = statuses(3)
    assert first == statuses(3)
    assert {429, 503, 200} <= set(first)
    assert first != statuses(4)


def test_list_paginates_newest_first_with_absolute_next_urls(fake, http):
    fake.page_size = 2
    ids = [_create(http).json()["id"] for _ in range(5)]
    seen, url, pages = [], "/v1/predictions", 0
    while url:
        page = http.get(url).json()
        seen += [p["id"] for p in page["results"]]
        url, pages = page["next"], pages + 1
        assert url is None or url.startswith(fake.base_url + "/v1/predictions?cursor=")
    assert seen == ids[::-1]
    assert pages == 3
    second = http.get(http.get("/v1/predictions").json()["next"]).json()
    assert http.get(second["previous"]).json()["results"][0]["id"] == ids[-1]


def test_list_filters_by_created_after(fake, http):
    first = _create(http).json()
    later = _create(http).json()
    page = http.get("/v1/predictions", params={"created_after": first["created_at"]}).json()
    assert [p["id"] for p in page["results"]] == [later["id"]]


def test_cancel_after_deadline_before_start_is_aborted(fake, http):
    fake.queue_time_s = 1
    created = _create(http, **{"Cancel-After": "100ms"}).json()
    assert _wait(http, created["id"])["status"] == "aborted"


def test_cancel_after_deadline_while_running_is_canceled(fake, http):
    fake.processing_time_s = 2
    created = _create(http, **{"Cancel-After": "0.2s"}).json()
    assert created["deadline"] is not None
    assert _wait(http, created["id"])["status"] == "canceled"


def test_cancel_of_a_finished_prediction_returns_it_unchanged(http):
    done = _create(http, Prefer="wait").json()
    response = http.post(f"/v1/predictions/{done['id']}/cancel")
    assert response.status_code == 200
    assert response.json()["status"] == "succeeded"


def test_requested_size_is_recorded_while_images_stay_small(fake, http):
    body = _create(http, {"prompt": "tall", "aspect_ratio": "9:16", "megapixels": "0.25",
                          "output_format": "jpg"}, Prefer="wait").json()
    record = fake.predictions[body["id"]]
    assert record.requested_size == (384, 672)
    image = Image.open(io.BytesIO(record.images[0]))
    assert image.format == "JPEG" and max(image.size) == 64


@pytest.mark.parametrize("input, expected", [
    ({}, {"type": "required", "field": "input", "description": "prompt is required"}),
    ({"prompt": "x", "output_format": "gif"},
     {"type": "enum", "field": "input.output_format",
      "description": 'output_format must be one of the following: "webp", "jpg", "png"'}),
    ({"prompt": "x", "num_inference_steps": 0},
     {"type": "number_gte", "field": "input.num_inference_steps",
      "description": "Must be greater than or equal to 1"}),
    ({"prompt": "x", "seed": "7"},
     {"type": "invalid_type", "field": "input.seed",
      "description": "Invalid type. Expected: integer, given: string"}),
    ({"prompt": "x", "negative_prompt": "y"},
     {"type": "additional_property_not_allowed", "field": "input",
      "description": "Additional property negative_prompt is not allowed"}),
])
def test_invalid_inputs_get_replicates_422_body(http, input, expected):
    response = _create(http, input)
    assert response.status_code == 422
    body = response.json()
    assert body["invalid_fields"] == [expected]
    assert body["detail"] == f"- {expected['field']}: {expected['description']}\n"


def test_unknown_version_is_422_invalid_version(http):
    response = http.post("/v1/predictions", json={"version": "0" * 64, "input": {}})
    assert response.status_code == 422
    assert response.json()["title"] == "Invalid version or not permitted"


def test_version_reference_forms_are_accepted(fake, http):
    version = fake.models["black-forest-labs/flux-dev"].latest_version.id
    for ref in (version, f"black-forest-labs/flux-dev:{version}", "black-forest-labs/flux-dev"):
        response = http.post("/v1/predictions", json={"version": ref, "input": {"prompt": "x"}})
        assert response.status_code == 201, ref
        assert response.json()["model"] == "black-forest-labs/flux-dev"


def test_deployment_predictions_run_the_deployed_model(fake, http):
    fake.add_deployment(f"{fake.username}/prod", "black-forest-labs/flux-schnell")
    body = _create(http, path=f"/v1/deployments/{fake.username}/prod/predictions").json()
    assert body["deployment"] == f"{fake.username}/prod"
    assert _wait(http, body["id"])["status"] == "succeeded"
    assert _create(http, path="/v1/deployments/x/missing/predictions").status_code == 404


def test_nsfw_flagged_prompt_fails_like_cog_flux(http):
    body = _create(http, {"prompt": "nsfw thing"}, Prefer="wait").json()
    assert body["status"] == "failed"
    assert body["error"].startswith("All generated images contained NSFW content")


def test_removed_data_hides_input_output_and_logs(fake, http):
    done = _create(http, Prefer="wait").json()
    fake.remove_data(done["id"])
    body = http.get(f"/v1/predictions/{done['id']}").json()
    assert body["data_removed"] is True
    assert (body["input"], body["output"], body["logs"]) == (None, None, None)


def test_non_loopback_webhook_is_refused(http, fake):
    response = http.post(SCHNELL, json={"input": {"prompt": "x"},
                                        "webhook": "https://example.com/hook"})
    assert response.status_code == 422
    assert "loopback" in response.json()["detail"]
    assert fake.create_count == 0


def test_requests_log_keeps_bodies_but_never_the_token(fake, http):
    _create(http, {"prompt": "logged"})
    [request] = fake.requests_to(SCHNELL, "POST")
    assert request.json == {"input": {"prompt": "logged"}}
    assert request.headers["authorization"] == "<redacted>"
    assert fake.api_token not in repr(fake.requests) + repr(fake)


def test_token_scheme_is_accepted_too(fake):
    response = httpx.get(f"{fake.base_url}/v1/account",
                         headers={"Authorization": f"Token {fake.api_token}"})
    assert response.json()["username"] == fake.username


def test_server_stops_when_the_context_exits():
    with FakeReplicate() as fake:
        port = int(fake.base_url.rsplit(":", 1)[1])
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_slow_fault_delays_the_answer_past_a_client_timeout(fake, http):
    fake.faults = Faults(rate_slow=1.0, slow_s=0.3, paths=("/v1/account",))
    with pytest.raises(httpx.ReadTimeout):
        http.get("/v1/account", timeout=0.1)
    assert http.get("/v1/hardware").status_code == 200  # other paths unaffected


def test_reset_before_handling_creates_nothing(fake, http):
    fake.fail_next("reset", on="create")
    with pytest.raises(httpx.TransportError):
        _create(http)
    assert fake.create_count == 0
    assert fake.requests[-1].fault == "reset"


def test_scripted_faults_are_used_up_in_order(fake, http):
    fake.fail_next("5xx", times=2, on="/v1/account")
    assert [http.get("/v1/account").status_code for _ in range(3)] == [503, 503, 200]


def test_trainings_list_and_cancel(fake, http):
    fake.training_time_s = 5
    http.post("/v1/models", json={"owner": fake.username, "name": "dest",
                                  "visibility": "private", "hardware": "cpu"})
    trainer = fake.models["ostris/flux-dev-lora-trainer"].latest_version.id
    created = http.post(f"/v1/models/ostris/flux-dev-lora-trainer/versions/{trainer}/trainings",
                        json={"destination": f"{fake.username}/dest",
                              "input": {"input_images": "https://example.com/data.zip"}})
    assert created.status_code == 201
    training_id = created.json()["id"]
    assert [t["id"] for t in http.get("/v1/trainings").json()["results"]] == [training_id]
    canceled = http.post(f"/v1/trainings/{training_id}/cancel").json()
    assert canceled["status"] == "canceled"
    assert fake.models[f"{fake.username}/dest"].latest_version is None


def test_training_with_a_non_zip_upload_fails_like_the_trainer(fake, http):
    http.post("/v1/models", json={"owner": fake.username, "name": "dest",
                                  "visibility": "private", "hardware": "cpu"})
    uploaded = http.post("/v1/files", files={"content": ("photos", b"not a zip",
                                                         "application/octet-stream")}).json()
    trainer = fake.models["ostris/flux-dev-lora-trainer"].latest_version.id
    created = http.post(f"/v1/models/ostris/flux-dev-lora-trainer/versions/{trainer}/trainings",
                        json={"destination": f"{fake.username}/dest",
                              "input": {"input_images": uploaded["urls"]["get"]}}).json()
    done = fake.wait_for(created["id"])
    assert (done.status, done.error) == ("failed", "input_images must be a zip file")


def test_webhook_to_a_dead_port_is_retried_and_recorded(fake, http):
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))
    port = dead.getsockname()[1]
    dead.close()
    body = {"input": {"prompt": "x"}, "webhook": f"http://127.0.0.1:{port}/hook",
            "webhook_events_filter": ["completed"]}
    http.post(SCHNELL, json=body)
    [delivery] = [d for d in _deliveries(fake, 1)]
    assert delivery.event == "completed"
    assert len(delivery.statuses) == 3 and not delivery.delivered
    assert delivery.json()["status"] == "succeeded"


def _deliveries(fake, count, timeout=5.0):
    deadline = time.monotonic() + timeout
    while len(fake.webhook_deliveries) < count:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    return fake.wait_for_webhooks(timeout)


def test_official_client_rides_out_503s_on_polling(fake):
    client = fake.client()
    fake.fail_next("5xx", times=2, on="/v1/predictions/", method="GET")
    prediction = client.models.predictions.create(model="black-forest-labs/flux-schnell",
                                                  input={"prompt": "x"})
    prediction.wait()
    assert prediction.status == "succeeded"
    faulted = [r for r in fake.requests if r.fault == "5xx"]
    assert len(faulted) == 2


def test_stream_url_serves_outputs_as_server_sent_events(fake):
    client = fake.client()
    prediction = client.models.predictions.create(model="black-forest-labs/flux-schnell",
                                                  input={"prompt": "x", "num_outputs": 2})
    events = [(e.event.value, e.data) for e in prediction.stream()]
    assert [name for name, _ in events] == ["output", "output", "done"]
    assert events[0][1].endswith("/out-0.webp")


def test_data_urls_always_makes_every_answer_inline(fake, http):
    fake.data_urls = "always"
    created = _create(http).json()
    assert _wait(http, created["id"])["output"][0].startswith("data:image/webp;base64,")


def test_webhook_default_events_are_output_and_completed(fake, http):
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{dead.getsockname()[1]}/hook"
    dead.close()
    http.post(SCHNELL, json={"input": {"prompt": "x"}, "webhook": url})
    deliveries = _deliveries(fake, 2)
    assert [d.event for d in deliveries] == ["output", "completed"]
    assert deliveries[0].json()["output"] and deliveries[1].json()["status"] == "succeeded"
    assert all(d.headers["webhook-signature"].startswith("v1,") for d in deliveries)


def test_a_kept_alive_connection_gets_no_answer_after_stop():
    with FakeReplicate() as fake:
        session = httpx.Client(base_url=fake.base_url,
                               headers={"Authorization": f"Bearer {fake.api_token}"})
        assert session.get("/v1/account").status_code == 200
    with pytest.raises(httpx.TransportError):
        session.get("/v1/account")
    session.close()


def test_concurrent_creates_are_each_counted_once(fake):
    from concurrent.futures import ThreadPoolExecutor

    def create(i: int) -> str:
        with httpx.Client(base_url=fake.base_url,
                          headers={"Authorization": f"Bearer {fake.api_token}"}) as c:
            return _create(c, {"prompt": f"p{i}", "seed": i}, Prefer="wait").json()["status"]

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(create, range(16)))
    assert statuses == ["succeeded"] * 16
    assert fake.create_count == 16 == len(fake.predictions)
