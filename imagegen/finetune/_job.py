"""A fine-tune from dataset to model: `start_finetune` records the job and hands it to its
trainer; `FineTuneJob` follows it in any process, through the durable store.

    job = gen.finetune(FineTuneRequest(images="./photos", destination="me/my-lora"))
    job.wait(); gen.generate("a photo of TOK", model=job.model)   # or later: gen.job(job.id)

Nothing is uploaded or paid for until the dataset passes every check and the trainer's
estimate fits the client's budget; the job is in the store before any remote call.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imagegen.errors import ConfigError, FineTuneError, FineTuneTimeout

from ._dataset import load_dataset, safe_stem
from ._request import FineTuneRequest, scrub
from ._store import BEFORE_START, NOT_STARTED, TERMINAL, JobDatabase, JobRecord
from ._trainer import JobContext, Trainer, pick_trainer, trainers_of

if TYPE_CHECKING:
    from imagegen.catalog import ModelCard
    from imagegen.client import ImageGen
    from imagegen.settings import Settings

log = logging.getLogger("imagegen")


def start_finetune(client: ImageGen, request: FineTuneRequest | dict[str, Any]) -> FineTuneJob:
    """Check the dataset and the trainer's estimate, record the job, then start it."""
    if not isinstance(request, FineTuneRequest):
        request = FineTuneRequest.model_validate(request)
    dataset = load_dataset(request.images, request.captions)
    store = JobStore.for_client(client)
    trainer, estimate = pick_trainer(store.trainers(), request, dataset)
    limit = estimate.max_dataset_bytes
    if limit is not None and dataset.estimated_zip_bytes > limit:
        raise FineTuneError(f"dataset {dataset.source} is about {_mib(dataset.estimated_zip_bytes)}; "
                            f"the {trainer.name} trainer takes at most {_mib(limit)}")
    warnings = dataset.warnings + _caption_warnings(dataset.manifest, request.trigger_word) + estimate.warnings
    for warning in warnings:
        log.warning("fine-tune: %s", warning)
    client.check_budget(estimate.cost_usd, "the training")

    job_id = "ft-" + uuid.uuid4().hex[:16]
    zip_path = dataset.write_zip(store.db.job_dir(job_id) / f"{_zip_stem(request)}.zip", max_bytes=limit)
    now = time.time()
    record = store.db.insert(JobRecord(
        id=job_id, created_at=now, updated_at=now, status="preparing",
        destination=request.destination or "", trainer=estimate.trainer_ref, provider=trainer.name,
        charge_id=estimate.card_id, request_json=request.stored_json(), dataset_digest=dataset.digest,
        zip_path=str(zip_path), estimate_usd=estimate.cost_usd, warnings_json=json.dumps(warnings)))
    job = FineTuneJob(store, record, secrets=request.secret_inputs())
    try:
        job._start()
    finally:
        job._charge(settle=False)
    return job


def _caption_warnings(manifest: dict[str, str | None], trigger_word: str) -> list[str]:
    """A caption without the trigger word teaches the LoRA nothing about that word."""
    lacking = [name for name, caption in manifest.items() if caption and trigger_word not in caption]
    if not lacking:
        return []
    return [f"{len(lacking)} caption(s) do not mention the trigger word {trigger_word!r} "
            f"(e.g. {lacking[0]})"]


def _zip_stem(request: FineTuneRequest) -> str:
    name = request.destination.split("/", 1)[1] if request.destination else "lora"
    return safe_stem(name) + "-dataset"


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MiB"


class JobStore:
    """Fine-tune jobs in the durable store under ``settings.home``, as `FineTuneJob` handles,
    and the trainers that carry them on (the client's providers')."""

    def __init__(self, settings: Settings, client: ImageGen | None = None):
        self.settings = settings
        self.client = client
        self.db = JobDatabase(settings.home)
        self._trainers: dict[str, Trainer] | None = None

    @classmethod
    def for_client(cls, client: ImageGen) -> JobStore:
        return cls(client.settings, client)

    def trainers(self) -> dict[str, Trainer]:
        """The trainers of the client's providers (without a client: every installed one)."""
        if self._trainers is None:
            if self.client is not None:
                providers = self.client.providers
            else:
                from imagegen.plugins import load_providers

                providers = load_providers(self.settings)
            self._trainers = trainers_of(providers)
        return self._trainers

    def trainer(self, name: str | None) -> Trainer:
        trainers = self.trainers()
        if name is None and len(trainers) == 1:  # a job stored before jobs named their trainer
            return next(iter(trainers.values()))
        if name in trainers:
            return trainers[name]
        raise ConfigError(f"this job needs the {name!r} trainer, which none of the client's providers "
                          f"offers (providers with a trainer: {', '.join(trainers) or 'none'})")

    def list(self) -> list[FineTuneJob]:
        """Every job, newest first."""
        return [FineTuneJob(self, record) for record in self.db.all()]

    def get(self, job_id: str) -> FineTuneJob:
        """A job by its id (``ft-…``) or by the trainer's training id."""
        record = self.db.get(job_id)
        if record is None:
            raise FineTuneError(f"no fine-tune job {job_id!r} in {self.db.path}")
        return FineTuneJob(self, record)


class FineTuneJob:
    """A handle on one stored fine-tune. Attributes read the store; `refresh` asks the trainer.

    ``status``: ``preparing`` (and the trainer's ``uploaded`` / ``creating``) before the
    training exists, then ``starting``, ``processing``, ``succeeded``, ``failed``,
    ``canceled``, ``aborted``.
    """

    def __init__(self, store: JobStore, record: JobRecord, secrets: dict[str, Any] | None = None):
        self._store = store
        self._record = record
        self._secrets = dict(secrets or {})  # secret trainer inputs: in memory only

    # -- what the store knows ------------------------------------------------------------

    id = property(lambda self: self._record.id)
    training_id = property(lambda self: self._record.training_id)
    status = property(lambda self: self._record.status)
    destination = property(lambda self: self._record.destination or None)
    trainer = property(lambda self: self._record.provider)  # the provider that trains it
    trainer_ref = property(lambda self: self._record.trainer)  # what it runs there
    logs = property(lambda self: self._record.logs or "")
    error = property(lambda self: self._record.error)
    warnings = property(lambda self: self._record.warnings)
    metrics = property(lambda self: self._record.metrics)
    progress = property(lambda self: self._record.progress)  # step, total, loss, eta_s, message
    created_at = property(lambda self: self._record.created_at)  # Unix time
    estimate_usd = property(lambda self: self._record.estimate_usd or 0.0)
    weights_url = property(lambda self: self._record.weights_url)

    @property
    def version(self) -> str | None:
        """The trained model version (``"owner/name:<version>"`` on a cloud trainer) once succeeded."""
        return self._record.version

    @property
    def model(self) -> str | None:
        """The trained model as ``model=`` takes it (``"<provider>:<model>"``), once known."""
        if self._record.model:
            return self._record.model
        card = self.card
        return card.id if card is not None else None

    @property
    def lora_path(self) -> Path | None:
        """The trained LoRA (``.safetensors``) kept in the store, once downloaded."""
        return Path(self._record.lora_path) if self._record.lora_path else None

    @property
    def cost_usd(self) -> float:
        """Actual once the trainer reports it, else the estimate."""
        actual = self._record.actual_usd
        return actual if actual is not None else self.estimate_usd

    @property
    def cost_is_actual(self) -> bool:
        return self._record.actual_usd is not None

    @property
    def card(self) -> ModelCard | None:
        from imagegen.catalog import ModelCard

        return ModelCard.model_validate_json(self._record.card_json) if self._record.card_json else None

    @property
    def done(self) -> bool:
        return self.status in TERMINAL

    def __repr__(self) -> str:
        extra = f" training={self.training_id}" if self.training_id else ""
        extra += f" version={self.version}" if self.version else ""
        target = f" -> {self.destination}" if self.destination else ""
        return f"<FineTuneJob {self.id} {self.status}{target}{extra}>"

    # -- actions -------------------------------------------------------------------------

    def refresh(self) -> FineTuneJob:
        """Ask the trainer for the training's state; finish up (weights, card) once succeeded.

        Before the training exists this only looks for it (a create sent by a process that
        died before writing the answer down); it never starts one: `resume` does."""
        record = self._reload()
        if record.status in NOT_STARTED:
            return self
        trainer = self._trainer()
        context = self._context(record)
        try:
            if record.status not in TERMINAL:
                trainer.advance(context)
            if context.record.status == "succeeded" and context.record.card_json is None:
                trainer.finish(context)
        finally:
            self._record = context.record
            self._charge(settle=True)
        return self

    def resume(self, secrets: dict[str, Any] | None = None) -> FineTuneJob:
        """Carry on a job that stopped before its training started (upload, create).

        A create that may have been sent is looked for first, so a crash between the create
        and writing its answer down never makes a second training. ``secrets``: secret
        trainer inputs (e.g. ``hf_token``), which the store never keeps."""
        self._secrets.update(secrets or {})
        self._start()
        return self

    def wait(self, timeout: float | None = None, poll_interval: float = 5.0,
             progress: Callable[[FineTuneJob], None] | None = None) -> FineTuneJob:
        """Poll (every ``poll_interval`` seconds, sooner at first) until the training ends;
        resumes a job interrupted before it started.

        ``progress`` is called with the job whenever its status or progress changes. Raises
        `FineTuneError` when the training failed, `FineTuneTimeout` (also a ``TimeoutError``)
        after ``timeout`` seconds; the job can be waited on again."""
        deadline = None if timeout is None else time.monotonic() + timeout
        seen: tuple[Any, ...] | None = None
        pause = min(0.5, poll_interval)  # soon at first (a create just sent), then every poll_interval
        while True:
            if self._reload().status in BEFORE_START:
                self.resume()
            self.refresh()
            now_seen = (self.status, self._record.progress_json)
            if progress is not None and now_seen != seen:
                progress(self)
            seen = now_seen
            if self.done:
                if self.status in ("failed", "aborted"):
                    tail = [line for line in self.logs.splitlines() if line.strip()][-5:]
                    what = f"training {self.training_id}" if self.training_id else f"job {self.id}"
                    raise FineTuneError(scrub(f"{what} {self.status}: {self.error or 'no error given'}",
                                              self._secrets), tail)
                return self
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise FineTuneTimeout(f"job {self.id} is still {self.status} after {timeout} s; "
                                      f"wait again with gen.job({self.id!r}).wait()")
            time.sleep(pause if left is None else max(0.0, min(pause, left)))
            pause = min(poll_interval, pause * 2)

    def cancel(self) -> FineTuneJob:
        """Cancel the training (a cloud trainer bills the time it ran), or the job before it starts."""
        record = self._reload()
        if record.status in TERMINAL:
            return self
        if record.status in NOT_STARTED:
            stopped = self._store.db.update(record.id, expect_status=NOT_STARTED,
                                            status="canceled", actual_usd=0.0)
            if stopped is not None:
                self._record = stopped
                return self
        self.refresh()  # a create in flight: find the training first
        if self.done:
            return self
        if self.status in BEFORE_START:
            raise FineTuneError(f"job {self.id}: a training create is in flight; cancel again in a moment")
        context = self._context(self._record)
        try:
            self._trainer().cancel(context)
        finally:
            self._record = context.record
            self._charge(settle=True)
        return self

    # -- plumbing ------------------------------------------------------------------------

    def _start(self) -> None:
        db = self._store.db
        record = db.claim(self.id, BEFORE_START)
        if record is None:  # already past these steps, or a live process is on them
            self._reload()
            return
        try:
            self._trainer().start(self._context(record))
        finally:
            db.release(self.id)
            self._reload()

    def _charge(self, *, settle: bool) -> None:
        """Count the job against the starting client's budget: the estimate once the training
        was (or may have been) created, the actual cost once known. A refused job costs nothing."""
        client = self._store.client
        record = self._record
        if client is None:
            return
        card_id = record.charge_id or f"{record.provider}:{record.trainer}"
        if record.actual_usd is not None:
            if settle or record.actual_usd > 0:
                client.charge_finetune(record.id, card_id, record.actual_usd, settle=settle)
        elif not settle and record.status not in NOT_STARTED:
            # The estimate, not the actual: that is known only when the training ends, maybe
            # in another process (`job.cost_usd` has it then).
            client.charge_finetune(record.id, card_id, self.estimate_usd)

    def _trainer(self) -> Trainer:
        return self._store.trainer(self._record.provider)

    def _context(self, record: JobRecord) -> JobContext:
        return JobContext(self._store.db, record, self._store.settings, self._secrets)

    def _reload(self) -> JobRecord:
        record = self._store.db.get(self.id)
        if record is None:
            raise FineTuneError(f"job {self.id} is no longer in the store {self._store.db.path}")
        self._record = record
        return record
