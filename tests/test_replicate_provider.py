"""ReplicateProvider against FakeReplicate: what each model receives, and calls that go wrong."""

from __future__ import annotations

import asyncio
import logging

import pytest
from imagegen.providers.replicate import CallPolicy, ReplicateProvider

from imagegen.client import ImageGen
from imagegen.errors import ConfigError, ProviderError, UnknownOutcomeError, UserCancelledError
from imagegen.request import GenerateRequest, LoraRef
from imagegen.settings import Settings
from imagegen.testing import FakeReplicate
from imagegen.testing._images import requested_size_of

FAST = dict(poll_initial_s=0.02, poll_max_s=0.05, get_backoff_s=0.01, reconcile_delay_s=0.01,
            commit_timeout_s=0.2)


_OPEN: list[ReplicateProvider] = []


@pytest.fixture
def fake():
    with FakeReplicate(processing_time_s=0.01) as emulator:
        yield emulator
        while _OPEN:
            _OPEN.pop().close()


def make_provider(fake: FakeReplicate, **policy) -> ReplicateProvider:
    settings = Settings(replicate_api_token=fake.api_token, replicate_base_url=fake.base_url)
    provider = ReplicateProvider(settings, policy=CallPolicy(**{**FAST, **policy}))
    _OPEN.append(provider)
    return provider


def card(provider: ReplicateProvider, short: str):
    return next(c for c in provider.models() if c.model == f"black-forest-labs/{short}")


def creates(fake: FakeReplicate):
    return [r for r in fake.requests if r.method == "POST" and r.path.endswith("/predictions")]


BASE = dict(prompt="a fox", seed=7, aspect_ratio="3:2", steps=20, cfg_scale=3.5,
            output_format="jpeg")
SENT = {"prompt": "a fox", "aspect_ratio": "3:2", "output_format": "jpg", "seed": 7}
MAPPINGS = [
    ("flux-schnell", {}, {**SENT, "num_inference_steps": 4}),
    ("flux-dev", {}, {**SENT, "num_inference_steps": 20, "guidance": 3.5}),
    ("flux-dev-lora", {"loras": [LoraRef(name="fofr/flux-mona-lisa", weight=0.9)]},
     {**SENT, "num_inference_steps": 20, "guidance": 3.5, "lora_weights": "fofr/flux-mona-lisa",
      "lora_scale": 0.9}),
    ("flux-pro", {}, {**SENT, "steps": 20, "guidance": 3.5}),
    ("flux-1.1-pro", {}, SENT),
    ("flux-1.1-pro-ultra", {}, SENT),
]


@pytest.mark.parametrize("short, extra, expected", MAPPINGS, ids=[m[0] for m in MAPPINGS])
def test_each_flux_model_receives_its_own_input_names(fake, short, extra, expected):
    provider = make_provider(fake)
    c = card(provider, short)
    result = provider.run(GenerateRequest(**BASE, **extra), c)
    (sent,) = creates(fake)
    assert sent.path == f"/v1/models/black-forest-labs/{short}/predictions"
    assert sent.headers["prefer"] == "wait=29"  # within the 30 s read timeout
    assert sent.json == {"input": expected}
    image = result.images[0]
    assert image.format == "jpeg" and image.pil().format == "JPEG" and image.seed == 7
    # The size the infotext claims is the one the emulator rendered for.
    width, height = requested_size_of(image.data)
    assert f"Size: {width}x{height}" in image.infotext
    assert result.cost_usd == pytest.approx(c.price.per_image)
    assert result.raw["prediction_ids"] == list(fake.predictions)


def test_batch_image_i_is_the_official_clients_image_with_seed_plus_i(fake):
    provider = make_provider(fake)
    result = provider.run(GenerateRequest(prompt="a fox", seed=40, batch_size=3,
                                               output_format="png"), card(provider, "flux-schnell"))
    client = fake.client()
    for i, image in enumerate(result.images):
        assert image.seed == 40 + i and f"Seed: {40 + i}" in image.infotext
        (reference,) = client.run("black-forest-labs/flux-schnell",
                                  input={"prompt": "a fox", "seed": 40 + i, "output_format": "png"})
        assert reference.read() == image.data


def test_trained_version_runs_by_version_and_is_priced_per_second(fake):
    version = fake.add_model("me/my-lora")
    provider = make_provider(fake)
    c = provider.card_for(f"me/my-lora:{version.id}")
    result = provider.run(GenerateRequest(prompt="TOK dog", seed=1, cfg_scale=4,
                                               loras=[LoraRef(name="o/extra", weight=0.5)]), c)
    (sent,) = creates(fake)
    assert sent.path == "/v1/predictions" and sent.json["version"] == version.id
    assert sent.json["input"]["guidance_scale"] == 4 and sent.json["input"]["extra_lora"] == "o/extra"
    assert result.gpu_seconds > 0
    assert result.cost_usd == pytest.approx(result.gpu_seconds * 0.001525, abs=1e-6)


@pytest.mark.parametrize("kind", ["5xx_after_create", "reset_after_create"])
def test_unknown_outcome_create_is_reconciled_not_resent(fake, kind):
    fake.fail_next(kind, on="create")
    provider = make_provider(fake)
    result = provider.run(GenerateRequest(prompt="a fox", seed=3), card(provider, "flux-dev"))
    assert fake.create_count == 1 and len(creates(fake)) == 1
    assert result.raw["prediction_ids"] == list(fake.predictions)
    assert any(r.method == "GET" and r.path == "/v1/predictions" for r in fake.requests)


def test_create_that_made_nothing_is_sent_again_after_the_search(fake):
    fake.fail_next("5xx", on="create")  # refused before anything was made
    provider = make_provider(fake)
    result = provider.run(GenerateRequest(prompt="a fox", seed=3), card(provider, "flux-dev"))
    assert len(creates(fake)) == 2 and fake.create_count == 1 and len(result.images) == 1


def test_unsearchable_unknown_outcome_raises_with_what_is_known(fake):
    fake.fail_next("5xx_after_create", on="create")
    fake.fail_next("5xx", times=100, on="/v1/predictions", method="GET")
    provider = make_provider(fake, get_attempts=2)
    with pytest.raises(UnknownOutcomeError) as caught:
        provider.run(GenerateRequest(prompt="a fox", seed=3), card(provider, "flux-dev"))
    assert caught.value.retryable is False and fake.create_count == 1
    assert caught.value.detail["input"]["seed"] == 3 and "sent_at" in caught.value.detail


def test_429_on_create_waits_retry_after_then_creates_once(fake):
    fake.faults.retry_after_s = 1
    fake.fail_next("429", on="create")
    provider = make_provider(fake)
    provider.run(GenerateRequest(prompt="a fox", seed=3), card(provider, "flux-schnell"))
    first, second = creates(fake)
    assert second.time - first.time >= 0.95 and fake.create_count == 1


def test_processing_reply_with_outputs_is_final_without_polling(fake):
    fake.fail_next("processing_with_output", on="create")
    provider = make_provider(fake)
    result = provider.run(GenerateRequest(prompt="a fox", seed=3), card(provider, "flux-dev"))
    assert len(result.images) == 1 and len(fake.requests) == 1


def test_aborted_prediction_ends_the_wait_with_an_error(fake):
    fake.queue_time_s = 5  # still "starting" when the sync wait ends
    provider = make_provider(fake, sync_wait_s=1)

    def abort(progress):
        if progress.stage == "running":
            for job in fake.predictions.values():
                job.status = "aborted"

    with pytest.raises(ProviderError, match="aborted"):
        provider.run(GenerateRequest(prompt="a fox", seed=3), card(provider, "flux-dev"),
                          progress=abort)


def test_cancel_from_progress_cancels_the_remote_predictions(fake):
    fake.processing_time_s = 5
    provider = make_provider(fake, sync_wait_s=False)

    def stop(progress):
        if progress.stage == "running":
            raise UserCancelledError("stop")

    with pytest.raises(UserCancelledError):
        provider.run(GenerateRequest(prompt="a fox", seed=3, batch_size=2),
                          card(provider, "flux-dev"), progress=stop)
    assert {job.status for job in fake.predictions.values()} == {"canceled"}


def test_model_failure_names_the_prediction(fake):
    fake.prediction_error = "CUDA out of memory"
    provider = make_provider(fake)
    with pytest.raises(ProviderError, match="CUDA out of memory") as caught:
        provider.run(GenerateRequest(prompt="a fox", seed=3), card(provider, "flux-dev"))
    assert caught.value.detail["prediction_id"] in fake.predictions


def test_outputs_from_other_hosts_over_http_are_refused(fake):
    fake.data_urls = "never"
    provider = make_provider(fake)
    provider.settings.replicate_base_url = fake.base_url.replace("127.0.0.1", "localhost")
    with pytest.raises(ProviderError, match="refusing to download"):
        provider.run(GenerateRequest(prompt="a fox", seed=3), card(provider, "flux-dev"))


def test_download_size_cap(fake):
    fake.data_urls = "never"
    provider = make_provider(fake, max_download_bytes=100)
    with pytest.raises(ProviderError, match="larger than 100 bytes"):
        provider.run(GenerateRequest(prompt="a fox", seed=3), card(provider, "flux-dev"))


def test_served_outputs_are_downloaded_when_replies_hold_urls(fake):
    fake.data_urls = "never"
    provider = make_provider(fake)
    result = provider.run(GenerateRequest(prompt="a fox", seed=3), card(provider, "flux-dev"))
    assert result.images[0].url.startswith(fake.base_url + "/delivery/")
    assert result.images[0].pil().format == "PNG"


def test_token_never_appears_in_reprs_errors_or_logs(fake, caplog):
    caplog.set_level(logging.DEBUG)
    provider = make_provider(fake)
    wrong = ReplicateProvider(Settings(replicate_api_token="r8_wrong_secret_value",
                                       replicate_base_url=fake.base_url), policy=CallPolicy(**FAST))
    _OPEN.append(wrong)
    with pytest.raises(ProviderError) as refused:
        wrong.run(GenerateRequest(prompt="a fox", seed=3), card(wrong, "flux-dev"))
    assert refused.value.status == 401
    fake.fail_next("5xx_after_create", on="create")
    fake.fail_next("5xx", times=100, on="/v1/predictions", method="GET")
    provider.policy.get_attempts = 1
    with pytest.raises(UnknownOutcomeError) as unknown:
        provider.run(GenerateRequest(prompt="a fox", seed=3), card(provider, "flux-dev"))
    seen = " ".join([repr(provider), repr(wrong), repr(provider.settings), str(refused.value),
                     repr(refused.value.detail), str(unknown.value), repr(unknown.value.detail),
                     caplog.text])
    assert fake.api_token not in seen and "r8_wrong_secret_value" not in seen


def test_concurrency_is_bounded(fake):
    fake.processing_time_s = 0.2
    provider = make_provider(fake, max_concurrency=2)
    import time
    started = time.perf_counter()
    provider.run(GenerateRequest(prompt="a fox", seed=3, batch_size=6), card(provider, "flux-schnell"))
    assert time.perf_counter() - started >= 0.6  # three rounds of two


def test_agenerate_fans_out_inside_a_running_loop(fake):
    fake.processing_time_s = 0.3
    provider = make_provider(fake)

    async def main():
        return await asyncio.gather(*(provider.arun(
            GenerateRequest(prompt=f"fox {i}", seed=i, batch_size=4), card(provider, "flux-schnell"))
            for i in range(3)))

    import time
    started = time.perf_counter()
    results = asyncio.run(main())
    assert [len(r.images) for r in results] == [4, 4, 4]
    assert time.perf_counter() - started < 2.5  # 12 images of 0.3 s, not one after another


def test_imagegen_excludes_replicate_without_token_but_lists_cards():
    provider = ReplicateProvider(Settings(replicate_api_token=None))
    gen = ImageGen(providers=[provider])
    assert len(gen.models()) == len(provider.models()) > 30  # every shipped Replicate card
    with pytest.raises(Exception, match="REPLICATE_API_TOKEN is not set"):
        gen.route(GenerateRequest(prompt="a fox", model="replicate:black-forest-labs/flux-dev"))
    with pytest.raises(ConfigError, match="REPLICATE_API_TOKEN"):
        provider.run(GenerateRequest(prompt="a fox"), provider.models()[0])


def test_imagegen_result_carries_check_warnings_once(fake):
    gen = ImageGen(providers=[make_provider(fake)])
    result = gen.generate(GenerateRequest(prompt="a fox", negative_prompt="blur", aspect_ratio="7:3",
                                          model="replicate:black-forest-labs/flux-dev"))
    assert sum("negative_prompt" in w for w in result.warnings) == 1
    assert sum("7:3" in w for w in result.warnings) == 1
    assert len(result.images) == 1 and result.images[0].seed is not None


def test_schema_refusal_is_a_422_error_naming_the_field_and_nothing_is_created(fake):
    from imagegen.testing._schemas import Field

    version = fake.add_model("me/strict", inputs={"prompt": Field("string", required=True),
                                                  "seed": Field("integer")})
    provider = make_provider(fake)
    c = provider.card_for(f"me/strict:{version.id}")
    with pytest.raises(ProviderError) as caught:
        provider.run(GenerateRequest(prompt="a fox", seed=1, output_format="png"), c)
    assert caught.value.status == 422 and caught.value.retryable
    assert "output_format" in str(caught.value.detail)
    assert fake.create_count == 0 and len(creates(fake)) == 1


def test_passthrough_reaches_the_model(fake):
    provider = make_provider(fake)
    provider.run(GenerateRequest(prompt="a fox", seed=1, provider_options={
        "replicate": {"go_fast": False, "disable_safety_checker": True}}), card(provider, "flux-dev"))
    (sent,) = creates(fake)
    assert sent.json["input"]["go_fast"] is False
    assert sent.json["input"]["disable_safety_checker"] is True


def test_grouped_outputs_cost_fewer_requests_but_only_first_seed_is_known(fake):
    provider = make_provider(fake)
    result = provider.run(GenerateRequest(prompt="a fox", seed=10, batch_size=6, provider_options={
        "replicate": {"num_outputs": 4}}), card(provider, "flux-schnell"))
    assert [i.seed for i in result.images] == [10, None, None, None, 14, None]
    assert len(creates(fake)) == 2 and len(result.images) == 6
    assert "Seed:" not in result.images[1].infotext


def test_sync_generate_works_when_called_from_inside_an_event_loop(fake):
    provider = make_provider(fake)

    async def main():
        return provider.run(GenerateRequest(prompt="a fox", seed=1), card(provider, "flux-dev"))

    assert len(asyncio.run(main()).images) == 1


def test_a_failed_prediction_keeps_the_paid_images_of_the_others(fake):
    provider = make_provider(fake, max_concurrency=1)

    def fail_the_rest(progress):
        if progress.stage == "download":
            fake.prediction_error = "CUDA out of memory"

    result = provider.run(GenerateRequest(prompt="a fox", seed=1, batch_size=2),
                               card(provider, "flux-schnell"), progress=fail_the_rest)
    assert [i.seed for i in result.images] == [1]
    assert any("1 of 2 predictions failed" in w and "CUDA" in w for w in result.warnings)
    assert result.cost_usd == pytest.approx(card(provider, "flux-schnell").price.per_image)


def test_nsfw_flag_fails_with_the_models_message(fake):
    provider = make_provider(fake)
    with pytest.raises(ProviderError, match="NSFW"):
        provider.run(GenerateRequest(prompt="an nsfw fox", seed=1), card(provider, "flux-schnell"))


def test_cancel_while_a_sync_create_is_held_finds_and_cancels_it(fake):
    fake.processing_time_s = 5
    provider = make_provider(fake, cancel_grace_s=0.3)

    def stop(progress):
        if progress.stage == "queued" and progress.image_index == 1:
            raise UserCancelledError("stop")

    with pytest.raises(UserCancelledError):
        provider.run(GenerateRequest(prompt="a fox", seed=3, batch_size=2),
                          card(provider, "flux-dev"), progress=stop)
    assert [job.status for job in fake.predictions.values()] == ["canceled"]


def test_sync_calls_reuse_one_connection_pool_until_close(fake):
    provider = make_provider(fake)
    c = card(provider, "flux-schnell")
    for seed in (1, 2, 3):
        result = provider.run(GenerateRequest(prompt="a fox", seed=seed), c)
        assert result.raw["requests"] == 1
    session = provider._shared
    assert session is not None and session.requests == 3
    provider.close()
    assert provider._shared is None
    assert len(provider.run(GenerateRequest(prompt="a fox", seed=4), c).images) == 1
