"""The trainer protocol: what a provider implements to train LoRAs, and what it sees of a job.

The core owns the job: the request, the dataset checks, the durable record, the claim that
lets one process at a time start it, the budget. A trainer owns the work: a cloud trainer
uploads and creates a remote training and polls it; a local trainer starts a background
worker and reads the progress that worker writes. Every method works from the stored job
alone (`JobContext`), so any process can carry on a job another process started.

A provider offers a trainer through an optional ``trainer()`` method (``None``: it does not
train); ``FineTuneRequest.trainer`` picks one by provider name, or ``"auto"``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from imagegen.errors import ConfigError, FineTuneError

from ._store import JobDatabase, JobRecord

if TYPE_CHECKING:
    from imagegen.settings import Settings

    from ._dataset import Dataset
    from ._request import FineTuneRequest


@dataclass
class TrainingEstimate:
    """A trainer's answer to a request, before anything is sent or spent.

    ``cost_usd``: what the training should cost (an upper estimate where the price is per
    second). ``card_id``: the id spending is recorded under (``usage``, the budget).
    ``trainer_ref``: what will train, as the job stores it (a training model and version, a
    script). ``max_dataset_bytes``: the trainer's limit on the dataset zip.
    """

    cost_usd: float
    seconds: float
    card_id: str
    trainer_ref: str
    warnings: list[str] = field(default_factory=list)
    max_dataset_bytes: int | None = None


@runtime_checkable
class Trainer(Protocol):
    """A provider's LoRA trainer. Statuses it writes: ``uploaded`` / ``creating`` (its own
    steps before the training exists), ``starting``, ``processing``, then ``succeeded``,
    ``failed``, ``canceled`` or ``aborted``."""

    name: str  # the provider's name: a job records it, `gen.job(id)` finds the trainer by it

    def estimate(self, request: FineTuneRequest, dataset: Dataset) -> TrainingEstimate:
        """Check the request against what this trainer can do (raise `FineTuneError` or
        `ConfigError` naming the field) and estimate cost and time. No side effects."""
        ...

    def start(self, job: JobContext) -> None:
        """Take a job from ``preparing`` (its dataset zip written) to a started training.

        Called by one process at a time (the core holds the job's claim). Idempotent: a job
        that may already have been created is looked for first, never created twice. A
        refusal (bad credentials, an unreachable service) makes the job ``failed`` with
        ``actual_usd=0``; a passing fault leaves it where it was, to be resumed."""
        ...

    def advance(self, job: JobContext) -> None:
        """Look once at a started job and record its status, logs, metrics, progress and,
        once it ended, its actual cost (``actual_usd``). Never creates anything."""
        ...

    def cancel(self, job: JobContext) -> None:
        """Stop a started training and record the status it ends in."""
        ...

    def finish(self, job: JobContext) -> None:
        """For a succeeded job: keep the trained weights in the job's folder (``lora_path``)
        and record the model (``model``, ``version``) and its card (``card_json``)."""
        ...


class JobContext:
    """One job as its trainer sees it: the stored record, the job's folder, its secrets, and
    the only ways to change it (compare-and-set updates, trainer state, progress, warnings)."""

    def __init__(self, db: JobDatabase, record: JobRecord, settings: Settings,
                 secrets: Mapping[str, Any] | None = None):
        self._db = db
        self.record = record
        self.settings = settings
        self.secrets: dict[str, Any] = dict(secrets or {})  # in memory only, never stored

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def request(self) -> dict[str, Any]:
        """The stored `FineTuneRequest` fields (secret inputs masked)."""
        return self.record.request

    @property
    def folder(self) -> Path:
        """The job's own folder: the dataset zip, the trained weights."""
        return self._db.job_dir(self.id)

    @property
    def state(self) -> dict[str, Any]:
        """What only this trainer reads (ids, URLs, a worker's pid)."""
        return self.record.state

    def reload(self) -> JobRecord:
        record = self._db.get(self.id)
        if record is None:
            raise FineTuneError(f"job {self.id} is no longer in the store {self._db.path}")
        self.record = record
        return record

    def update(self, *, expect_status: tuple[str, ...] | None = None, **changes: Any) -> JobRecord | None:
        """Write ``changes`` (JobRecord fields); with ``expect_status``, only while the status
        is one of those. Returns the new record, or None when the job had moved on."""
        record = self._db.update(self.id, expect_status=expect_status, **changes)
        if record is not None:
            self.record = record
        return record

    def set_state(self, **values: Any) -> None:
        self.update(state_json=json.dumps({**self.state, **values}))

    def report(self, *, step: int | None = None, total: int | None = None, loss: float | None = None,
               eta_s: float | None = None, message: str | None = None) -> None:
        """Record progress (what `FineTuneJob.progress` and the CLI show)."""
        values = {"step": step, "total": total, "loss": loss, "eta_s": eta_s, "message": message}
        self.update(progress_json=json.dumps({k: v for k, v in values.items() if v is not None}))

    def warn(self, text: str) -> None:
        self.update(warnings_json=json.dumps(list(dict.fromkeys([*self.record.warnings, text]))))


# -- finding a trainer ----------------------------------------------------------------------

def trainers_of(providers: Mapping[str, Any]) -> dict[str, Trainer]:
    """Every trainer the given providers offer, by provider name."""
    found: dict[str, Trainer] = {}
    for name, provider in providers.items():
        offer = getattr(provider, "trainer", None)
        trainer = offer() if callable(offer) else None
        if trainer is not None:
            found[name] = trainer
    return found


def pick_trainer(trainers: Mapping[str, Trainer], request: FineTuneRequest,
                 dataset: Dataset) -> tuple[Trainer, TrainingEstimate]:
    """The trainer ``request.trainer`` names, or for ``"auto"`` the one ``base`` names, else
    the first that accepts the request within ``max_hours`` (the estimate's warnings say why
    the ones before it were not used); with its estimate."""
    name = request.trainer if request.trainer != "auto" else request.base_provider
    if name is not None:
        if name not in trainers:
            have = ", ".join(trainers) or "none"
            raise ConfigError(f"no trainer {name!r}: the installed providers that train are: {have}")
        return trainers[name], trainers[name].estimate(request, dataset)
    if not trainers:
        raise ConfigError("no installed provider can train a LoRA")
    if len(trainers) == 1:
        (only,) = trainers.values()
        return only, only.estimate(request, dataset)
    refusals: list[str] = []
    for trainer_name, trainer in trainers.items():
        try:
            estimate = trainer.estimate(request, dataset)
        except (FineTuneError, ConfigError) as exc:
            refusals.append(f"{trainer_name}: {exc}")
            continue
        if request.max_hours is not None and estimate.seconds > request.max_hours * 3600:
            refusals.append(f"{trainer_name}: max_hours: the estimate is {estimate.seconds / 3600:.2f} h")
            continue
        # "auto" says why it chose this trainer: what the ones before it refused
        estimate.warnings = [f"trainer {name_and_reason} (not used)" for name_and_reason in refusals] + estimate.warnings
        return trainer, estimate
    raise FineTuneError("no trainer accepts this request (set trainer= to choose one)", refusals)
