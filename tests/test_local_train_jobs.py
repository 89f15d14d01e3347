"""Local fine-tunes as jobs: a background worker process in the durable store. Killed with
SIGKILL, it is resumed by a later ``wait()`` from its last checkpoint to the same weights as an
uninterrupted run; a second worker never trains the same job; cancel stops it within a step;
the LoRA is a kohya file that diffusers loads, usable at once as ``job.model`` and by name."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from imagegen import GenerateRequest, ImageGen, LoraRef, Settings
from imagegen.finetune import FineTuneRequest, JobDatabase
from tests.test_local_train import make_photos

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def models_dir(tiny, tmp_path):
    """A models dir of our own (the trained LoRA is copied into its Lora/ folder)."""
    folder = tmp_path / "models"
    shutil.copytree(tiny.pipeline_dir, folder / "Stable-diffusion" / "tiny")
    return folder


def wait_for(predicate, timeout=120.0, what="the worker"):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_killed_worker_resumes_to_the_same_weights_and_the_lora_works_everywhere(models_dir, tmp_path):
    from imagegen.providers.local import LocalProvider
    from imagegen.providers.local._kohya import model_hash, read_metadata
    from imagegen.providers.local._train_data import load_items
    from imagegen.providers.local._train_loop import TrainConfig, Trainer, load_pipeline
    from safetensors.torch import load_file

    photos = make_photos(tmp_path / "photos")
    settings = Settings(home=tmp_path / "home", models_dir=models_dir, device="cpu")
    gen = ImageGen(providers=[LocalProvider(settings)], settings=settings)
    job = gen.finetune(FineTuneRequest(images=photos, base="local:tiny", trigger_word="TOK", local=dict(
        max_train_steps=60, save_every_n_steps=10, network_dim=4, unet_lr=1e-2, seed=7, output_name="tok_test")))
    assert job.trainer == "local" and job.status == "starting" and job.estimate_usd == 0.0
    db = JobDatabase(settings.home)
    checkpoints = db.job_dir(job.id) / "checkpoints"
    wait_for(lambda: checkpoints.is_dir() and any(checkpoints.glob("step-*.pt")), what="the first checkpoint")
    record = db.get(job.id)
    pid = record.state["worker_pid"]
    assert record.status == "processing" and record.claim_pid == pid

    # a second worker for the same job leaves at once: the first holds the claim
    second = subprocess.run([sys.executable, "-m", "imagegen.providers.local._train_worker", job.id],
                            env={**os.environ, "IMAGEGEN_HOME": str(settings.home)}, timeout=60,
                            capture_output=True, text=True)
    assert second.returncode == 0, second.stderr
    os.kill(pid, signal.SIGKILL)
    assert db.get(job.id).status == "processing"

    again = ImageGen(providers=[LocalProvider(settings)], settings=settings).job(job.id)
    seen = []
    again.wait(timeout=240, poll_interval=0.2, progress=lambda j: seen.append(dict(j.progress)))
    assert again.status == "succeeded", again.error
    assert "resumed from the checkpoint at step" in again.logs and again.logs.count("training 60 steps") == 2
    assert seen[-1]["step"] == 60 and "loss" in seen[-1] and seen[-1]["eta_s"] == 0.0
    assert db.get(job.id).state["restarts"] == 1 and db.get(job.id).claim_pid is None

    # the same weights as a run that was never interrupted
    folder = db.job_dir(job.id)
    config = TrainConfig.from_json((folder / "config.json").read_text())
    items, _ = load_items(folder / db.get(job.id).zip_path.split("/")[-1], str(photos), "TOK")
    (tmp_path / "reference").mkdir()
    reference = Trainer(config, items, load_pipeline(config), tmp_path / "reference")
    expected = reference.run().lora
    trained = load_file(str(again.lora_path))
    assert set(trained) == set(expected)
    for key, value in expected.items():
        assert torch.allclose(trained[key], value, atol=1e-5, rtol=1e-4), key

    # kohya metadata
    meta = read_metadata(again.lora_path)
    assert meta["ss_network_module"] == "networks.lora" and meta["ss_network_dim"] == "4"
    assert meta["ss_network_alpha"] == "4.0" and meta["ss_base_model_version"] == "sd_v1"
    assert meta["ss_new_sd_model_hash"] == model_hash(models_dir / "Stable-diffusion" / "tiny")
    assert meta["ss_resolution"] == "(64, 64)" and meta["ss_steps"] == "60" and meta["ss_max_train_steps"] == "60"
    assert json.loads(meta["ss_tag_frequency"]) == {"photos": {"a photo of TOK": 4, "red": 4, "big": 2, "small": 2}}
    assert meta["ss_optimizer"] == "AdamW" and meta["ss_seed"] == "7" and len(meta["sshs_model_hash"]) == 64

    # diffusers' load_lora_weights gives the UNet the trained LoRA's effect
    from diffusers import StableDiffusionPipeline

    raw = StableDiffusionPipeline.from_pretrained(models_dir / "Stable-diffusion" / "tiny", safety_checker=None,
                                                  requires_safety_checker=False)
    raw.load_lora_weights(str(again.lora_path))
    sample = torch.randn((1, 4, 8, 8), generator=torch.Generator().manual_seed(0))
    states = torch.randn((1, 77, 16), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours = reference.unet(sample, torch.tensor([500]), states).sample
        theirs = raw.unet(sample, torch.tensor([500]), states).sample
    assert torch.allclose(ours, theirs, atol=1e-5)

    # usable at once: job.model (the base with the LoRA on), loras=[path], and <lora:name:1> from Lora/
    assert again.model == f"local:{again.lora_path}" and (models_dir / "Lora" / "tok_test.safetensors").is_file()
    asked = dict(prompt="a photo of TOK", steps=3, seed=5, width=64, height=64)
    as_model = gen.generate(GenerateRequest(**asked, model=again.model))
    as_lora = gen.generate(GenerateRequest(**asked, model="local:tiny", loras=[LoraRef(name=str(again.lora_path))]))
    by_name = gen.generate(GenerateRequest(**{**asked, "prompt": "a photo of TOK <lora:tok_test:1>"}, model="local:tiny"))
    base = gen.generate(GenerateRequest(**asked, model="local:tiny"))
    assert as_model.images[0].pil().tobytes() == as_lora.images[0].pil().tobytes()
    assert as_model.images[0].pil().tobytes() == by_name.images[0].pil().tobytes()
    assert base.images[0].pil().tobytes() != as_model.images[0].pil().tobytes()
    assert set(gen.usage) >= {"local:lora-trainer"} and gen.spent_usd == 0.0 and again.cost_usd == 0.0


def test_cli_local_create_then_cancel_stops_within_a_step_and_keeps_the_checkpoint(models_dir, tmp_path, monkeypatch):
    from imagegen.providers.local._train import alive

    import imagegen.cli as cli

    photos = make_photos(tmp_path / "photos")
    monkeypatch.setenv("IMAGEGEN_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("IMAGEGEN_MODELS_DIR", str(models_dir))
    monkeypatch.setenv("IMAGEGEN_DEVICE", "cpu")
    monkeypatch.setattr(cli.console, "width", 300)
    runner = CliRunner()
    result = runner.invoke(cli.app, ["finetune", "create", str(photos), "--local", "--base", "local:tiny",
                                     "-o", "max_train_steps=5000", "-o", "save_every_n_steps=5", "-o", "network_dim=2"])
    assert result.exit_code == 0, result.output
    job_id = result.stdout.split()[0]
    db = JobDatabase(tmp_path / "home")
    wait_for(lambda: (db.get(job_id).progress.get("step") or 0) >= 6, what="step 6")
    pid = db.get(job_id).state["worker_pid"]
    canceled = runner.invoke(cli.app, ["finetune", "cancel", job_id])
    assert canceled.exit_code == 0, canceled.output
    record = db.get(job_id)
    assert record.status == "canceled" and "canceled" in canceled.output
    assert not alive(pid)  # the cancel waited for it: it stopped before its next step
    checkpoints = list((db.job_dir(job_id) / "checkpoints").glob("step-*.pt"))
    assert len(checkpoints) == 1 and record.progress["step"] < 5000
    assert "canceled at step" in record.logs
    waited = ImageGen().job(job_id).wait(timeout=10, poll_interval=0.05)
    assert waited.status == "canceled" and db.get(job_id).state["restarts"] == 0
    listing = runner.invoke(cli.app, ["finetune", "list"])
    assert job_id in listing.output and "local" in listing.output


START_AND_EXIT = """
import sys
from imagegen import FineTuneRequest, ImageGen
job = ImageGen().finetune(FineTuneRequest(images=sys.argv[1], base="local:tiny",
                                          local={"max_train_steps": 12, "network_dim": 2}))
print(job.id, flush=True)
"""


def test_the_worker_outlives_the_process_that_started_it_and_another_process_follows_it(models_dir, tmp_path):
    photos = make_photos(tmp_path / "photos")
    env = {**os.environ, "IMAGEGEN_HOME": str(tmp_path / "home"), "IMAGEGEN_MODELS_DIR": str(models_dir),
           "IMAGEGEN_DEVICE": "cpu"}
    started = subprocess.run([sys.executable, "-c", START_AND_EXIT, str(photos)], env=env, timeout=120,
                             capture_output=True, text=True)
    assert started.returncode == 0, started.stderr
    job_id = started.stdout.split()[0]
    gen = ImageGen(home=tmp_path / "home", models_dir=models_dir, device="cpu")
    job = gen.job(job_id)
    assert job.status in ("starting", "processing") and job.trainer == "local"
    job.wait(timeout=240, poll_interval=0.2)
    record = JobDatabase(tmp_path / "home").get(job_id)
    assert job.status == "succeeded" and record.state["restarts"] == 0  # the first worker finished it
    assert job.lora_path.is_file() and job.progress["step"] == 12 and job.metrics["steps"] == 12
    assert [j.id for j in gen.jobs()] == [job_id]
