"""The trainer protocol with a second trainer beside Replicate's: a worker-style trainer that
reports step/loss/ETA, picked by ``trainer=`` / ``base=``, charged under its own card id, its
jobs carried on by any client that has its provider."""

import json
import time

import pytest
from imagegen.providers.replicate import ReplicateProvider
from PIL import Image

from imagegen import ConfigError, FineTuneError, ImageGen, ModelCard, Settings
from imagegen.finetune import (
    FineTuneRequest,
    JobContext,
    Trainer,
    TrainingEstimate,
    finetune_cards,
)
from imagegen.testing import FakeReplicate


class StepTrainer:
    """Trains in the background (here: by the clock), as a local worker process would, and
    writes its progress where `advance` reads it."""

    name = "steps"

    def __init__(self, seconds=0.4):
        self.seconds = seconds
        self.cancels = 0

    def estimate(self, request, dataset):
        if request.base_provider != self.name:
            raise FineTuneError("the steps trainer needs base='steps:<model>'")
        return TrainingEstimate(cost_usd=0.0, seconds=self.seconds, card_id="steps:lora-trainer",
                                trainer_ref="steps-trainer:1", warnings=[f"{len(dataset.images)} images"])

    def start(self, job: JobContext):
        if job.state.get("started_at") is None:  # idempotent: a second start changes nothing
            job.set_state(started_at=time.time())
            job.update(status="processing")

    def advance(self, job: JobContext):
        total = job.request["steps"]
        done = min(1.0, (time.time() - job.state["started_at"]) / self.seconds)
        step = int(done * total)
        job.report(step=step, total=total, loss=round(1.0 - 0.9 * done, 3),
                   eta_s=round((1 - done) * self.seconds, 3))
        if done >= 1.0:
            job.update(status="succeeded", actual_usd=0.0, metrics_json=json.dumps({"steps": total}))

    def cancel(self, job: JobContext):
        self.cancels += 1
        job.update(status="canceled", actual_usd=0.0)

    def finish(self, job: JobContext):
        job.folder.mkdir(parents=True, exist_ok=True)
        lora = job.folder / "lora.safetensors"
        lora.write_bytes(b"weights")
        card = ModelCard(id=f"steps:lora/{job.id}", provider="steps", kind="finetune",
                         notes=f"trigger word {job.request['trigger_word']!r}")
        job.update(lora_path=str(lora), model=card.id, card_json=card.model_dump_json())


class StepProvider:
    name = "steps"

    def __init__(self, trainer=None):
        self._trainer = trainer or StepTrainer()

    def models(self):
        return []

    def card_for(self, model):
        return None

    def trainer(self):
        return self._trainer

    def close(self):
        pass


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(10):
        Image.new("RGB", (512, 512), (i * 20, 60, 60)).save(folder / f"p{i}.png")
    return folder


def test_the_step_trainer_satisfies_the_protocol():
    assert isinstance(StepTrainer(), Trainer)


def test_base_picks_its_providers_trainer_and_progress_is_reported(tmp_path, photos):
    provider = StepProvider()
    gen = ImageGen(providers=[provider], home=tmp_path / "home", budget_usd=1.0)
    job = gen.finetune(FineTuneRequest(images=photos, base="steps:tiny", steps=100, trigger_word="ZQ"))
    assert job.trainer == "steps" and job.trainer_ref == "steps-trainer:1" and job.status == "processing"
    assert "10 images" in job.warnings and job.destination is None
    seen = []
    job.wait(timeout=10, poll_interval=0.05, progress=lambda j: seen.append((j.status, dict(j.progress))))
    steps = [p["step"] for _, p in seen]
    assert steps == sorted(steps) and seen[-1] == ("succeeded", {"step": 100, "total": 100, "loss": 0.1, "eta_s": 0.0})
    assert len(seen) >= 2 and all(p["total"] == 100 for _, p in seen)
    assert job.model == f"steps:lora/{job.id}" and job.lora_path.read_bytes() == b"weights"
    assert job.cost_is_actual and job.cost_usd == 0.0
    assert set(gen.usage) == {"steps:lora-trainer"} and gen.spent_usd == 0.0
    assert [c.id for c in finetune_cards(gen.settings.home, provider="steps")] == [job.model]
    assert finetune_cards(gen.settings.home, provider="replicate") == []


def test_auto_takes_the_first_trainer_that_accepts_and_says_why_others_refused(tmp_path, photos):
    with FakeReplicate(training_time_s=0.1) as fake:
        settings = Settings(replicate_api_token=fake.api_token, replicate_base_url=fake.base_url,
                            home=tmp_path / "home")
        gen = ImageGen(providers=[StepProvider(), ReplicateProvider(settings)], settings=settings)
        job = gen.finetune(FineTuneRequest(images=photos, destination="fake-user/auto"))
        assert job.trainer == "replicate" and fake.training_create_count == 1
        assert job.wait(timeout=20, poll_interval=0.05).model.startswith("replicate:fake-user/auto:")
        assert "replicate:ostris/flux-dev-lora-trainer:" in next(iter(gen.usage))
        with pytest.raises(FineTuneError) as exc_info:
            gen.finetune(FineTuneRequest(images=photos))  # neither a steps base nor a destination
        assert [p.split(":")[0] for p in exc_info.value.problems] == ["steps", "replicate"]
        with pytest.raises(ConfigError, match="no trainer 'nope'"):
            gen.finetune(FineTuneRequest(images=photos, trainer="nope"))


def test_a_job_is_carried_on_by_any_client_with_its_trainer_and_refused_by_others(tmp_path, photos):
    home = tmp_path / "home"
    trainer = StepTrainer(seconds=30)
    job = ImageGen(providers=[StepProvider(trainer)], home=home).finetune(
        FineTuneRequest(images=photos, base="steps:tiny"))
    other = ImageGen(providers=[StepProvider(trainer)], home=home).job(job.id)
    assert other.refresh().progress["total"] == 1000 and other.status == "processing"
    assert other.cancel().status == "canceled" and trainer.cancels == 1
    assert job.refresh().status == "canceled"
    without = ImageGen(providers=[], home=home).job(job.id)
    assert without.status == "canceled"  # reading needs no trainer
    started = ImageGen(providers=[StepProvider()], home=home).finetune(
        FineTuneRequest(images=photos, base="steps:tiny"))
    with pytest.raises(ConfigError, match="needs the 'steps' trainer"):
        ImageGen(providers=[], home=home).job(started.id).refresh()
