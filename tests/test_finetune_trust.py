"""Fine-tunes under hostile conditions: refused creates, unreachable APIs, weights from the wrong
host or too large, secrets in inputs, a corrupt or locked job store. Faults come from the
emulator (wrong token, another owner, a closed port, an unknown trainer version)."""

import sqlite3
import time

import pytest
from imagegen.providers.replicate import ReplicateProvider, _trainings
from PIL import Image
from pydantic import ValidationError

from imagegen import FineTuneError, ImageGen, ImageGenError, ProviderError, Settings
from imagegen.errors import JobStoreError
from imagegen.finetune import FineTuneRequest, JobDatabase, JobRecord, mask_secrets
from imagegen.testing import FakeReplicate

DESTINATION = "fake-user/trust-lora"
TOKEN = "hf_" + "q" * 12 + "THELAST21CHARSxyz0123"


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(10):
        Image.new("RGB", (512, 512), (i * 20, 40, 90)).save(folder / f"p{i}.png")
    return folder


def make_gen(home, *, base_url, token, budget_usd=10.0):
    settings = Settings(replicate_api_token=token, replicate_base_url=base_url, home=home)
    return ImageGen(providers=[ReplicateProvider(settings)], settings=settings, budget_usd=budget_usd)


def request(photos, **fields):
    return FineTuneRequest(**{"images": photos, "destination": DESTINATION, **fields})


# -- a refused create is a failed job, charged nothing ---------------------------------------

def closed_port_url():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.mark.parametrize("fault", ["wrong token", "another owner", "unreachable", "unknown trainer"])
def test_a_refused_create_fails_the_job_charges_nothing_and_is_never_resent(tmp_path, photos, fault):
    with FakeReplicate(username="someone-else" if fault == "another owner" else "fake-user") as fake:
        url = closed_port_url() if fault == "unreachable" else fake.base_url
        gen = make_gen(tmp_path / "home", base_url=url, token="wrong" if fault == "wrong token" else fake.api_token)
        extra = {"trainer_model": "someone/nothing", "trainer_version": "c" * 64} if fault == "unknown trainer" else {}
        with pytest.raises(ProviderError) as exc_info:
            gen.finetune(request(photos, **extra))
        message = str(exc_info.value)
        assert "\n" not in message
        if fault == "unreachable":
            assert "cannot reach the Replicate API" in message and url in message and "Connect" in message
        (job,) = gen.jobs()
        assert job.status == "failed" and job.cost_is_actual and job.cost_usd == 0.0
        assert job.error and job.id in message
        assert gen.spent_usd == 0.0 and gen.usage == {}
        assert fake.training_create_count == 0
        sent = len(fake.requests)
        with pytest.raises(FineTuneError, match="failed"):
            gen.job(job.id).wait(timeout=5, poll_interval=0.05)
        assert gen.job(job.id).cancel().status == "failed"
        assert len(fake.requests) == sent  # wait and cancel send nothing again


def test_a_rate_limited_create_is_resumed_not_failed(tmp_path, photos):
    with FakeReplicate(training_time_s=0.2) as fake:
        gen = make_gen(tmp_path / "home", base_url=fake.base_url, token=fake.api_token)
        fake.fail_next("429", on="create")
        with pytest.raises(ProviderError, match="429|rate|throttl"):
            gen.finetune(request(photos))
        (job,) = gen.jobs()
        assert job.status == "uploaded" and gen.spent_usd == 0.0
        job.wait(timeout=20, poll_interval=0.05)
        assert job.status == "succeeded" and fake.training_create_count == 1


# -- trained weights: host, scheme and size rules ----------------------------------------------

def test_weights_larger_than_the_cap_are_refused_and_nothing_is_written(tmp_path, photos, monkeypatch):
    monkeypatch.setattr(_trainings, "WEIGHTS_BYTES_MIN", 2000)
    monkeypatch.setattr(_trainings, "WEIGHTS_BYTES_PER_RANK", 0)
    with FakeReplicate(training_time_s=0.1) as fake:
        gen = make_gen(tmp_path / "home", base_url=fake.base_url, token=fake.api_token)
        job = gen.finetune(request(photos)).wait(timeout=20, poll_interval=0.05)
        tar = fake._store.blobs[f"/delivery/{job.training_id}/trained_model.tar"].content
        assert len(tar) > 2000
    assert job.status == "succeeded" and job.lora_path is None and job.model
    assert any("larger than 2000 bytes" in w for w in job.warnings)
    folder = JobDatabase(tmp_path / "home").job_dir(job.id)
    assert [p.suffix for p in folder.iterdir()] == [".zip"]  # no tar, no partial file


def test_weights_cap_follows_the_lora_rank():
    class Job:
        request = {"lora_rank": 128}

    trainer = _trainings.ReplicateTrainer(Settings())
    big, small = trainer.weights_cap(Job()), trainer.weights_cap(type("J", (), {"request": {"lora_rank": 1}})())
    assert 1.3e9 < big < 4e9 and small < 100e6  # a rank-128 Flux LoRA is ~1.4 GB; rank 1 is tiny
    assert _trainings.ReplicateTrainer(Settings(), max_weights_bytes=5).weights_cap(Job()) == 5


def test_weights_from_a_host_outside_the_rules_are_not_fetched(tmp_path, photos):
    with FakeReplicate(training_time_s=0.1) as fake:
        # The API is reached as "localhost"; the emulator names weights on 127.0.0.1 over
        # plain http: another host, not https, so the rules refuse it.
        gen = make_gen(tmp_path / "home", base_url=fake.base_url.replace("127.0.0.1", "localhost"),
                       token=fake.api_token)
        job = gen.finetune(request(photos)).wait(timeout=20, poll_interval=0.05)
        delivery = [r for r in fake.requests if r.path.startswith("/delivery/")]
    assert job.status == "succeeded" and job.lora_path is None and job.card is not None
    assert any("refusing to download" in w for w in job.warnings)
    assert delivery == []


# -- secrets never in an error --------------------------------------------------------------------

@pytest.mark.parametrize("fields", [
    {"steps": 1, "extra_inputs": {"hf_token": TOKEN}},
    {"extra_inputs": {"hf_token": TOKEN, "steps": 3}},  # a model-level error shows the whole input
    {"extra_inputs": {"hf_token": TOKEN}, "unknown": TOKEN},
    {"extra_inputs": {"repo": "me/x", "upload_to": TOKEN, "steps": 3}},  # by its look, not its key
    {"destination": TOKEN, "extra_inputs": {"wandb_api_key": "wb-" + "k" * 30}},
])
def test_validation_errors_never_show_a_secret_input(photos, fields):
    for build in (lambda: FineTuneRequest(images=photos, **fields),
                  lambda: FineTuneRequest.model_validate({"images": photos, **fields})):
        with pytest.raises(ValidationError) as exc_info:
            build()
        shown = str(exc_info.value) + repr(exc_info.value.errors())
        assert TOKEN[-21:] not in shown and TOKEN[:8] not in shown and "k" * 10 not in shown
        assert exc_info.value.errors()[0]["loc"]  # still names the field


def test_masking_keeps_the_field_names_and_other_values():
    masked = mask_secrets({"hf_token": TOKEN, "hf_repo_id": "me/lora", "nested": {"api_key": "x" * 20},
                           "note": f"uses {TOKEN}"})
    assert masked == {"hf_token": "**********", "hf_repo_id": "me/lora", "nested": {"api_key": "**********"},
                      "note": "**********"}  # a value holding a token is masked whole


# -- the job store: corrupt, truncated, locked ---------------------------------------------------

def stored_job(home, job_id="ft-1", **fields):
    now = time.time()
    return JobDatabase(home).insert(JobRecord(
        id=job_id, created_at=now, updated_at=now, status="processing", destination="o/n", trainer="t",
        provider="replicate", request_json="{}", training_id=f"tr-{job_id}", logs="x" * 3000, **fields))


def truncate(path):
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path.read_bytes()


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_damaged_store_raises_a_typed_error_naming_the_file_and_changes_nothing(tmp_path, damage):
    home = tmp_path / "home"
    for i in range(8):
        stored_job(home, f"ft-{i}")
    gen = ImageGen(providers=[], home=home)
    handle = gen.job("ft-3")
    path = JobDatabase(home).path
    if damage == "garbage":
        path.write_bytes(b"not a database " * 500)
        before = path.read_bytes()
    else:
        before = truncate(path)
    for call in (gen.jobs, lambda: gen.job("ft-3"), lambda: handle.wait(timeout=1, poll_interval=0.05),
                 handle.refresh, handle.cancel):
        with pytest.raises(JobStoreError) as exc_info:
            call()
        assert str(path) in str(exc_info.value) and "Move it aside" in str(exc_info.value)
        assert isinstance(exc_info.value, ImageGenError) and exc_info.value.path == path
    assert path.read_bytes() == before  # nothing rewritten, nothing deleted
    # Listing models still works without the fine-tunes.
    assert ReplicateProvider(Settings(home=home)).models()


def test_a_locked_store_fails_fast_with_a_typed_error_then_works_again(tmp_path, monkeypatch):
    home = tmp_path / "home"
    stored_job(home)
    monkeypatch.setattr("imagegen.finetune._store.BUSY_TIMEOUT_S", 0.3)
    holder = sqlite3.connect(JobDatabase(home).path, isolation_level=None)
    holder.execute("PRAGMA locking_mode=EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    holder.execute("UPDATE finetune_jobs SET error = 'held'")
    gen = ImageGen(providers=[], home=home)
    try:
        started = time.monotonic()
        with pytest.raises(JobStoreError, match="locked by another process") as exc_info:
            gen.jobs()
        assert time.monotonic() - started < 3 and str(JobDatabase(home).path) in str(exc_info.value)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    (job,) = gen.jobs()
    assert job.id == "ft-1" and job.error is None  # nothing lost, nothing half-written


def test_a_store_from_before_the_trainer_columns_is_upgraded_in_place(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    from imagegen.finetune._store import _SCHEMA

    conn = sqlite3.connect(home / "jobs.sqlite3")
    conn.execute(_SCHEMA)
    conn.execute("INSERT INTO finetune_jobs (id, created_at, updated_at, status, destination, trainer, "
                 "request_json) VALUES ('ft-old', 1, 1, 'succeeded', 'o/n', 't:v', '{}')")
    conn.commit()
    conn.close()
    (job,) = ImageGen(providers=[], home=home).jobs()
    assert job.id == "ft-old" and job.status == "succeeded" and job.trainer is None and job.progress == {}
