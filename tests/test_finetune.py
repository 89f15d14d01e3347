"""Cloud LoRA fine-tunes against FakeReplicate: dataset to usable model, cancel, never twice."""

import io
import json
import tarfile
import zipfile

import pytest
from imagegen.providers.replicate import ReplicateProvider
from imagegen.providers.replicate._trainings import (
    DEFAULT_TRAINER,
    DEFAULT_TRAINER_VERSION,
    HARDWARE_USD_PER_SECOND,
    ReplicateTrainer,
)
from PIL import Image
from pydantic import ValidationError

from imagegen import BudgetExceededError, ConfigError, FineTuneError, ImageGen, Settings
from imagegen.finetune import FineTuneRequest, FineTuneTimeout, finetune_cards
from imagegen.testing import FakeReplicate

DESTINATION = "fake-user/my-lora"


@pytest.fixture
def fake():
    with FakeReplicate(training_time_s=0.3) as server:
        yield server


@pytest.fixture
def home(tmp_path):
    return tmp_path / "home"


def make_gen(fake, home, **kwargs):
    settings = Settings(replicate_api_token=kwargs.pop("token", fake.api_token),
                        replicate_base_url=kwargs.pop("base_url", fake.base_url), home=home)
    return ImageGen(providers=[ReplicateProvider(settings)], settings=settings, **kwargs)


@pytest.fixture
def gen(fake, home):
    return make_gen(fake, home)


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(10):
        Image.new("RGB", (512, 640), (i * 25, 80, 200 - i * 15)).save(folder / f"me {i}.png")
    (folder / "me 0.txt").write_text("a photo of TOK smiling")
    (folder / "me 7.txt").write_text("TOK in profile")
    return folder


def request(photos, **overrides):
    return FineTuneRequest(**{"images": photos, "destination": DESTINATION, **overrides})


def zip_in(fake):
    (record,) = fake.files.values()
    return record, zipfile.ZipFile(io.BytesIO(record.content))


# -- the happy path ----------------------------------------------------------------------------

def test_folder_to_trained_version_uploads_zip_creates_destination_and_training(fake, gen, photos):
    job = gen.finetune(request(photos, steps=500, lora_rank=8))
    assert job.id.startswith("ft-") and job.training_id in fake.trainings
    assert job.status in ("starting", "processing")

    record, archive = zip_in(fake)
    assert record.name == "my-lora-dataset.zip" and record.content_type == "application/zip"
    assert sorted(archive.namelist()) == sorted([f"me_{i}.png" for i in range(10)] + ["me_0.txt", "me_7.txt"])
    assert archive.read("me_0.txt").decode() == "a photo of TOK smiling"
    assert archive.read("me_7.txt").decode() == "TOK in profile"
    assert archive.read("me_3.png") == (photos / "me 3.png").read_bytes()

    model = fake.models[DESTINATION]
    assert (model.visibility, model.hardware) == ("private", "gpu-t4")

    training = fake.trainings[job.training_id]
    assert training.model == DEFAULT_TRAINER and training.version == DEFAULT_TRAINER_VERSION
    assert training.destination == DESTINATION
    assert training.input == {
        "input_images": record.to_json()["urls"]["get"], "trigger_word": "TOK", "steps": 500,
        "lora_rank": 8, "learning_rate": 4e-4, "batch_size": 1, "resolution": "512,768,1024",
        "autocaption": True, "caption_dropout_rate": 0.05, "optimizer": "adamw8bit"}

    job.wait(timeout=20, poll_interval=0.05)
    assert job.status == "succeeded"
    assert job.version == f"{DESTINATION}:{fake.models[DESTINATION].latest_version.id}"
    assert job.model == "replicate:" + job.version


def test_succeeded_job_keeps_the_lora_and_reports_actual_cost(fake, gen, photos):
    job = gen.finetune(request(photos)).wait(timeout=20, poll_interval=0.05)
    training = fake.trainings[job.training_id]
    tar_bytes = fake._store.blobs[f"/delivery/{job.training_id}/trained_model.tar"].content
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
        expected = tar.extractfile("output/flux_train_replicate/lora.safetensors").read()
    assert job.lora_path.read_bytes() == expected
    from safetensors.numpy import load_file

    assert any(name.endswith("lora_A.weight") for name in load_file(str(job.lora_path)))
    predict_time = training.metrics()["predict_time"]
    assert job.cost_is_actual
    assert job.cost_usd == pytest.approx(predict_time * HARDWARE_USD_PER_SECOND["gpu-h100"])
    assert job.estimate_usd == pytest.approx((60 + 1.14 * 1000) * 0.001525, rel=1e-3)


def test_succeeded_version_is_a_finetune_card_with_the_trigger_word(fake, gen, photos):
    job = gen.finetune(request(photos, trigger_word="ZXQ")).wait(timeout=20, poll_interval=0.05)
    card = job.card
    assert card.id == "replicate:" + job.version and card.kind == "finetune"
    assert card.capabilities.lora and "ZXQ" in card.notes
    assert "2 caption(s) do not mention the trigger word 'ZXQ' (e.g. me_0.png)" in job.warnings
    assert [c.id for c in finetune_cards(gen.settings.home)] == [card.id]
    assert finetune_cards(gen.settings.home, provider="local") == []


def test_jobs_are_listed_and_found_from_a_new_client(fake, gen, home, photos):
    first = gen.finetune(request(photos))
    other = make_gen(fake, home)
    assert [j.id for j in other.jobs()] == [first.id]
    again = other.job(first.training_id).wait(timeout=20, poll_interval=0.05)
    assert again.id == first.id and again.status == "succeeded"
    assert first.refresh().version == again.version


def test_existing_destination_is_used_not_recreated(fake, gen, photos):
    fake.add_model(DESTINATION)
    gen.finetune(request(photos, create_destination=False)).wait(timeout=20, poll_interval=0.05)
    assert [r.path for r in fake.requests if r.method == "POST" and r.path == "/v1/models"] == []
    assert fake.training_create_count == 1


def test_missing_destination_without_create_is_an_error_and_nothing_trains(fake, gen, photos):
    with pytest.raises(FineTuneError, match="does not exist"):
        gen.finetune(request(photos, create_destination=False))
    assert fake.training_create_count == 0 and not fake.files


# -- checks before anything is paid ------------------------------------------------------------

def test_bad_dataset_stops_before_any_request(fake, gen, photos):
    (photos / "orphan.txt").write_text("nobody")
    Image.new("RGB", (100, 100)).save(photos / "tiny.png")
    with pytest.raises(FineTuneError) as exc_info:
        gen.finetune(request(photos))
    assert len(exc_info.value.problems) == 2
    assert fake.requests == [] and gen.jobs() == []


def test_estimate_over_budget_stops_before_any_request(fake, home, photos):
    gen = make_gen(fake, home, budget_usd=0.50)
    with pytest.raises(BudgetExceededError, match="training would cost"):
        gen.finetune(request(photos, steps=1000))
    assert fake.requests == []


def test_started_trainings_count_against_the_budget(fake, home, photos):
    gen = make_gen(fake, home, budget_usd=3.0)
    first = gen.finetune(request(photos, steps=1000))
    assert gen.spent_usd == pytest.approx(first.estimate_usd) and first.estimate_usd > 1.5
    assert gen.usage_by_provider["replicate"]["cost_usd"] == pytest.approx(first.estimate_usd)
    sent = len(fake.requests)
    with pytest.raises(BudgetExceededError, match="training would cost"):
        gen.finetune(request(photos, steps=1000, destination="fake-user/second"))
    assert len(fake.requests) == sent  # refused before any upload


def test_the_estimate_is_replaced_by_the_actual_cost_once_known(fake, home, photos):
    gen = make_gen(fake, home, budget_usd=10.0)
    job = gen.finetune(request(photos, steps=1000))
    job.wait(timeout=30, poll_interval=0.05)
    assert job.cost_is_actual and job.cost_usd != pytest.approx(job.estimate_usd)
    assert gen.spent_usd == pytest.approx(job.cost_usd)
    usage = gen.usage_by_provider["replicate"]
    assert usage["calls"] == 1 and usage["cost_usd"] == pytest.approx(job.cost_usd)
    job.refresh()  # settling twice changes nothing
    assert gen.spent_usd == pytest.approx(job.cost_usd)
    second = gen.finetune(request(photos, steps=1000, destination="fake-user/second"))
    other = make_gen(fake, home, budget_usd=10.0)  # another client finishing a job pays nothing
    other.job(second.id).wait(timeout=30, poll_interval=0.05)
    assert other.job(second.id).cost_is_actual and other.spent_usd == 0.0


def test_a_refused_create_is_not_charged_and_a_lost_answer_is(fake, home, photos):
    gen = make_gen(fake, home, budget_usd=10.0)
    fake.fail_next("429", on="create")
    with pytest.raises(Exception, match="429|rate"):
        gen.finetune(request(photos))
    assert gen.spent_usd == 0.0
    fake.fail_next("reset_after_create", on="create")
    job = gen.finetune(request(photos, destination="fake-user/second"))
    assert job.training_id and gen.spent_usd == pytest.approx(job.estimate_usd)


@pytest.mark.parametrize("field, value", [
    ("steps", 2), ("steps", 6001), ("lora_rank", 0), ("lora_rank", 129), ("learning_rate", 0),
    ("batch_size", 0), ("caption_dropout_rate", 1.5), ("optimizer", "sgd"), ("resolution", "128"),
    ("resolution", "512,abc"), ("trigger_word", "two words"), ("trainer", "Not A Provider"),
    ("destination", "no-owner"), ("destination", "a/b/c"), ("visibility", "secret"),
    ("trainer_version", "abc"), ("trainer_model", "x"), ("extra_inputs", {"steps": 5}), ("unknown_field", 1),
])
def test_out_of_range_trainer_inputs_name_the_field(photos, field, value):
    fields = {"images": photos, "destination": DESTINATION, field: value}
    with pytest.raises(ValidationError) as exc_info:
        FineTuneRequest(**fields)
    assert field in str(exc_info.value)


def test_missing_images_path_names_the_field(tmp_path):
    with pytest.raises(ValidationError, match="images"):
        FineTuneRequest(images=tmp_path / "nowhere", destination=DESTINATION)


def test_other_training_model_needs_a_version_and_takes_owner_name_colon_version(fake, gen, photos):
    with pytest.raises(FineTuneError, match="trainer_version"):
        gen.finetune(FineTuneRequest(images=photos, destination=DESTINATION, trainer_model="someone/trainer"))
    req = FineTuneRequest(images=photos, destination=DESTINATION, trainer="someone/trainer:" + "a" * 64)
    assert (req.trainer, req.trainer_model, req.trainer_version) == ("auto", "someone/trainer", "a" * 64)
    assert FineTuneRequest(images=photos, destination=DESTINATION, resolution=[512, 1024]).resolution == "512,1024"
    assert fake.requests == []


def test_settings_only_the_trainer_knows_are_checked_before_any_request(fake, gen, photos):
    with pytest.raises(FineTuneError) as exc_info:
        gen.finetune(FineTuneRequest(images=photos, hardware="gpu-x"))
    problems = " ".join(exc_info.value.problems)
    assert "hardware: 'gpu-x'" in problems and "destination:" in problems
    with pytest.raises(ConfigError, match="no trainer 'local'"):
        gen.finetune(request(photos, trainer="local"))
    with pytest.raises(FineTuneError, match="base"):
        gen.finetune(request(photos, base="local:sd15", trainer="replicate"))
    assert fake.requests == [] and gen.jobs() == []


# -- cancel, failures, timeouts ----------------------------------------------------------------

def test_cancel_stops_the_training_on_replicate(fake, gen, photos):
    fake.training_time_s = 30
    job = gen.finetune(request(photos))
    job.cancel()
    assert job.status == "canceled"
    assert fake.wait_for(job.training_id).status == "canceled"
    assert job.wait(timeout=5, poll_interval=0.05).status == "canceled"
    assert job.version is None and job.card is None


def test_wait_timeout_leaves_the_job_resumable(fake, gen, photos):
    fake.training_time_s = 30
    job = gen.finetune(request(photos))
    with pytest.raises(FineTuneTimeout):
        job.wait(timeout=0.2, poll_interval=0.05)
    with pytest.raises(TimeoutError):
        job.wait(timeout=0.1, poll_interval=0.05)
    job.cancel()


def test_failed_training_raises_with_its_error(fake, gen, photos, monkeypatch):
    # A zip the trainer cannot read: the emulator fails the training as the trainer does.
    from imagegen.finetune import _dataset as dataset_module

    real = dataset_module.Dataset.write_zip

    def write_not_a_zip(self, path, **kwargs):
        path = real(self, path, **kwargs)
        path.write_bytes(b"not a zip")
        return path

    monkeypatch.setattr(dataset_module.Dataset, "write_zip", write_not_a_zip)
    job = gen.finetune(request(photos))
    with pytest.raises(FineTuneError, match="failed: input_images must be a zip file"):
        job.wait(timeout=20, poll_interval=0.05)
    assert gen.job(job.id).status == "failed"


def test_expired_weights_still_register_the_version_with_a_warning(fake, gen, photos):
    job = gen.finetune(request(photos))
    fake.wait_for(job.training_id, timeout=10)
    fake._store.blobs.clear()  # the tar's URL has expired
    job.wait(timeout=5, poll_interval=0.05)
    assert job.status == "succeeded" and job.lora_path is None
    assert job.card is not None
    assert any("trained weights not kept" in w for w in job.warnings)


# -- never started twice -----------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["5xx_after_create", "reset_after_create"])
def test_create_answered_with_an_error_after_it_happened_is_adopted_not_repeated(fake, gen, photos, kind):
    fake.fail_next(kind, on="create")
    job = gen.finetune(request(photos))
    assert job.training_id in fake.trainings
    job.wait(timeout=20, poll_interval=0.05)
    assert fake.training_create_count == 1 and job.status == "succeeded"


def test_create_that_did_not_happen_is_made_once_on_resume(fake, gen, photos, monkeypatch):
    from imagegen.providers.replicate import _trainings

    from imagegen import UnknownOutcomeError

    fake.fail_next("5xx", on="create")
    with pytest.raises(UnknownOutcomeError) as exc_info:
        gen.finetune(request(photos))
    (job,) = gen.jobs()
    assert job.id in str(exc_info.value) and job.status == "creating"
    assert fake.training_create_count == 0
    monkeypatch.setattr(_trainings, "CREATE_SETTLE_S", 0.0)
    job.wait(timeout=20, poll_interval=0.05)
    assert fake.training_create_count == 1 and job.status == "succeeded"


def test_crash_between_create_and_record_is_reconciled_from_the_training_list(fake, gen, home, photos,
                                                                              monkeypatch):
    import subprocess
    import sys

    def die(self, job, training_id):
        raise KeyboardInterrupt  # the process dies with the create done but not written down

    monkeypatch.setattr(ReplicateTrainer, "_adopt", die)
    with pytest.raises(KeyboardInterrupt):
        gen.finetune(request(photos))
    monkeypatch.undo()
    (job,) = gen.jobs()
    assert job.status == "creating" and job.training_id is None and fake.training_create_count == 1
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    gen.job(job.id)._store.db.update(job.id, claim_pid=int(dead))  # the claim of a dead process

    resumed = make_gen(fake, home).job(job.id).wait(timeout=20, poll_interval=0.05)
    assert resumed.status == "succeeded" and fake.training_create_count == 1
    assert resumed.training_id in fake.trainings


def test_job_record_holds_no_secret(fake, gen, photos):
    job = gen.finetune(request(photos)).wait(timeout=20, poll_interval=0.05)
    import sqlite3

    dump = "\n".join(sqlite3.connect(job._store.db.path).iterdump())
    assert fake.api_token not in dump and fake.api_token not in repr(job)
    assert json.loads(job._record.request_json)["destination"] == DESTINATION


# -- the trained version in use ----------------------------------------------------------------

def test_trained_version_generates_images_and_is_a_routable_model(fake, home, photos):
    from imagegen import RoutePolicy

    settings = Settings(replicate_api_token=fake.api_token, replicate_base_url=fake.base_url, home=home)
    gen = ImageGen(providers=[ReplicateProvider(settings)], settings=settings)
    job = gen.finetune(request(photos, trigger_word="ZXQ")).wait(timeout=20, poll_interval=0.05)

    result = gen.generate("a photo of ZXQ on the moon", model=job.model, seed=7)
    assert len(result.images) == 1 and result.images[0].pil().size[0] > 0
    assert result.model == job.model
    (prediction,) = fake.predictions.values()
    assert prediction.model == DESTINATION and prediction.version == job.version.split(":")[1]
    assert prediction.input["prompt"] == "a photo of ZXQ on the moon"

    fresh = ImageGen(providers=[ReplicateProvider(settings)], settings=settings)  # as a new process would
    cards = {c.id: c for c in fresh.models()}
    assert cards[job.model].kind == "finetune" and "ZXQ" in cards[job.model].notes
    others = [card_id for card_id in cards if card_id != job.model]
    decision = fresh.route("a photo of ZXQ", policy=RoutePolicy(exclude=others))
    assert decision.chosen.id == job.model


def test_secret_trainer_inputs_reach_replicate_but_never_the_store(fake, gen, home, photos, monkeypatch):
    secret = "hf_do_not_store_me"
    job = gen.finetune(request(photos, extra_inputs={"hf_token": secret, "hf_repo_id": "me/lora"}))
    assert fake.trainings[job.training_id].input["hf_token"] == secret
    assert fake.trainings[job.training_id].input["hf_repo_id"] == "me/lora"
    import sqlite3

    dump = "\n".join(sqlite3.connect(job._store.db.path).iterdump())
    assert "me/lora" in dump and secret not in dump
    assert secret not in repr(request(photos, extra_inputs={"hf_token": secret}))
    job.cancel()


def test_job_resumed_in_a_new_process_asks_for_its_secret_inputs_again(fake, gen, home, photos, monkeypatch):
    def die(self, api, job):
        raise KeyboardInterrupt  # killed after the upload, before the create

    monkeypatch.setattr(ReplicateTrainer, "_create", die)
    with pytest.raises(KeyboardInterrupt):
        gen.finetune(request(photos, extra_inputs={"wandb_api_key": "wb-secret"}))
    monkeypatch.undo()
    (job,) = make_gen(fake, home).jobs()
    assert job.status == "uploaded" and fake.training_create_count == 0
    with pytest.raises(FineTuneError, match="wandb_api_key"):
        job.resume()
    job.resume(secrets={"wandb_api_key": "wb-secret"})
    assert fake.trainings[job.training_id].input["wandb_api_key"] == "wb-secret"
    assert fake.training_create_count == 1 and len(fake.files) == 1
    job.cancel()


def test_output_removed_after_an_hour_still_gives_the_version_from_the_destination(fake, gen, photos):
    job = gen.finetune(request(photos))
    fake.wait_for(job.training_id, timeout=10)
    fake.remove_data(job.training_id)  # Replicate removes API outputs after an hour
    job.wait(timeout=5, poll_interval=0.05)
    assert job.version == f"{DESTINATION}:{fake.models[DESTINATION].latest_version.id}"
    assert job.card is not None and job.lora_path is None
    assert any("output was removed" in w for w in job.warnings)
