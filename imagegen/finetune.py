"""Cloud LoRA fine-tunes on Replicate: a typed request, and a durable job from dataset to model.

``start_finetune`` checks the dataset, records the job, zips and uploads the images, makes sure
the destination model exists, and creates the training; `FineTuneJob` follows it to a new
model version (registered as a card) and a local copy of the trained ``lora.safetensors``::

    job = gen.finetune(FineTuneRequest(images="./photos", destination="me/my-lora"))
    job.wait(); gen.generate("a photo of TOK", model=job.model)   # or later: gen.job(job.id)
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ConfigError, FineTuneError
from .finetune_request import (  # noqa: F401  (re-exported: the public names live here too)
    DEFAULT_TRAINER,
    DEFAULT_TRAINER_VERSION,
    HARDWARE_USD_PER_SECOND,
    REDACTED,
    TRAINER_HARDWARE,
    FineTuneRequest,
)
from .jobstore import JobDatabase, JobRecord

log = logging.getLogger("imagegen")

if TYPE_CHECKING:
    from .catalog import ModelCard
    from .client import ImageGen
    from .settings import Settings

TERMINAL = ("succeeded", "failed", "canceled", "aborted")
# Local steps before the training exists; after it, the status is Replicate's.
_BEFORE_CREATE = ("preparing", "uploaded", "creating")
# A training create that was sent but not seen in the list after this long never happened
# (the official client's request timeouts are 30 s at most).
CREATE_SETTLE_S = 120.0
_LOG_KEEP = 64_000


class FineTuneTimeout(FineTuneError, TimeoutError):
    """`FineTuneJob.wait` ran out of time; the training goes on and can be waited on again."""


def start_finetune(client: ImageGen, request: FineTuneRequest | dict[str, Any]) -> FineTuneJob:
    """Check the dataset, record the job, then upload and create the training.

    Nothing is uploaded or paid for until the dataset passes every check and the estimate
    fits the client's budget. The returned job is in the store before any remote call.
    """
    from .dataset import load_dataset

    if not isinstance(request, FineTuneRequest):
        request = FineTuneRequest.model_validate(request)
    if not client.settings.token():
        raise ConfigError("fine-tuning on Replicate needs REPLICATE_API_TOKEN (or replicate_api_token=...)")
    dataset = load_dataset(request.images, request.captions)
    warnings = dataset.warnings + _caption_warnings(dataset.manifest, request.trigger_word)
    for warning in warnings:
        log.warning("fine-tune dataset: %s", warning)
    estimate = request.estimate_cost_usd()
    client.check_budget(estimate, "the training")

    store = JobStore.for_client(client)
    job_id = "ft-" + uuid.uuid4().hex[:16]
    zip_path = dataset.write_zip(store.db.job_dir(job_id) / f"{_zip_stem(request)}.zip")
    now = time.time()
    record = store.db.insert(JobRecord(
        id=job_id, created_at=now, updated_at=now, status="preparing",
        destination=request.destination, trainer=request.trainer_ref,
        request_json=request.model_dump_json(exclude={"extra_inputs"}), dataset_digest=dataset.digest,
        training_input_json=json.dumps(request.training_input("", redact=True)), zip_path=str(zip_path),
        estimate_usd=estimate, warnings_json=json.dumps(warnings)))
    job = FineTuneJob(store, record, secrets=request.secret_inputs())
    try:
        job._advance()
    finally:
        if job.training_id or job.status == "creating":  # created, or may have been: it is paid for
            # The estimate, not the actual: that is known only when the training ends, maybe
            # in another process (`job.cost_usd` has it then).
            client.charge_finetune(job.id, request.trainer_ref, estimate)
    return job


def _caption_warnings(manifest: dict[str, str | None], trigger_word: str) -> list[str]:
    """A caption without the trigger word teaches the LoRA nothing about that word."""
    lacking = [name for name, caption in manifest.items() if caption and trigger_word not in caption]
    if not lacking:
        return []
    return [f"{len(lacking)} caption(s) do not mention the trigger word {trigger_word!r} "
            f"(e.g. {lacking[0]})"]


def _zip_stem(request: FineTuneRequest) -> str:
    from .dataset import safe_stem

    return safe_stem(request.destination.split("/", 1)[1]) + "-dataset"


class JobStore:
    """Fine-tune jobs in the durable store under ``settings.home``, as `FineTuneJob` handles."""

    def __init__(self, settings: Settings, client: ImageGen | None = None):
        self.settings = settings
        self.client = client
        self.db = JobDatabase(settings.home)
        self._api: Any = None

    def api(self) -> Any:
        """The official ``replicate`` client for these settings (one per store)."""
        if self._api is None:
            import replicate

            token = self.settings.token()
            if not token:
                raise ConfigError("REPLICATE_API_TOKEN is not set")
            self._api = replicate.Client(api_token=token, base_url=self.settings.replicate_base_url)
        return self._api

    @classmethod
    def for_client(cls, client: ImageGen) -> JobStore:
        return cls(client.settings, client)

    def list(self) -> list[FineTuneJob]:
        """Every job, newest first."""
        return [FineTuneJob(self, record) for record in self.db.all()]

    def get(self, job_id: str) -> FineTuneJob:
        """A job by its id (``ft-…``) or by the Replicate training id."""
        record = self.db.get(job_id)
        if record is None:
            raise FineTuneError(f"no fine-tune job {job_id!r} in {self.db.path}")
        return FineTuneJob(self, record)


class FineTuneJob:
    """A handle on one stored fine-tune. Attributes read the store; `refresh` asks Replicate.

    ``status``: ``preparing`` / ``uploaded`` / ``creating`` before the training exists, then
    Replicate's ``starting``, ``processing``, ``succeeded``, ``failed``, ``canceled``, ``aborted``.
    """

    def __init__(self, store: JobStore, record: JobRecord, secrets: dict[str, Any] | None = None):
        self._store = store
        self._record = record
        self._secrets = dict(secrets or {})  # secret trainer inputs: in memory only

    # -- what the store knows ------------------------------------------------------------

    id = property(lambda self: self._record.id)
    training_id = property(lambda self: self._record.training_id)
    status = property(lambda self: self._record.status)
    destination = property(lambda self: self._record.destination)
    trainer = property(lambda self: self._record.trainer)
    logs = property(lambda self: self._record.logs or "")
    error = property(lambda self: self._record.error)
    warnings = property(lambda self: self._record.warnings)
    metrics = property(lambda self: self._record.metrics)
    created_at = property(lambda self: self._record.created_at)  # Unix time
    estimate_usd = property(lambda self: self._record.estimate_usd or 0.0)
    weights_url = property(lambda self: self._record.weights_url)

    @property
    def version(self) -> str | None:
        """``"owner/name:<version>"`` once succeeded; ``model=`` takes ``"replicate:" + version``."""
        return self._record.version

    @property
    def model(self) -> str | None:
        return f"replicate:{self._record.version}" if self._record.version else None

    @property
    def lora_path(self) -> Path | None:
        """The trained ``lora.safetensors`` kept in the store, once downloaded."""
        return Path(self._record.lora_path) if self._record.lora_path else None

    @property
    def cost_usd(self) -> float:
        """Actual (run time × hardware price) once Replicate reports it, else the estimate."""
        actual = self._record.actual_usd
        return actual if actual is not None else self.estimate_usd

    @property
    def cost_is_actual(self) -> bool:
        return self._record.actual_usd is not None

    @property
    def card(self) -> ModelCard | None:
        from .catalog import ModelCard

        return ModelCard.model_validate_json(self._record.card_json) if self._record.card_json else None

    @property
    def done(self) -> bool:
        return self.status in TERMINAL

    def __repr__(self) -> str:
        extra = f" training={self.training_id}" if self.training_id else ""
        extra += f" version={self.version}" if self.version else ""
        return f"<FineTuneJob {self.id} {self.status} -> {self.destination}{extra}>"

    # -- actions -------------------------------------------------------------------------

    def refresh(self) -> FineTuneJob:
        """Ask Replicate for the training's state; finish up (card, weights) once succeeded.

        Before the training is known, this only looks for it (a create sent by a process that
        died before writing the answer down); it never creates one: `resume` does."""
        record = self._reload()
        if record.training_id is None:
            if record.status == "creating":
                self._adopt_if_created(self._api(), record)
            return self
        if record.status not in TERMINAL:
            self._apply(self._api_json("GET", f"/v1/trainings/{record.training_id}"))
        elif record.status == "succeeded" and record.card_json is None:
            self._finish()
        return self

    def resume(self, secrets: dict[str, Any] | None = None) -> FineTuneJob:
        """Carry on a job that stopped before its training was created (upload, create).

        A create that may have been sent is first looked for in the training list, so a
        crash between the create and writing its answer down never makes a second training.
        ``secrets``: secret trainer inputs (e.g. ``hf_token``), which the store never keeps."""
        self._secrets.update(secrets or {})
        self._advance()
        return self

    def wait(self, timeout: float | None = None, poll_interval: float = 5.0) -> FineTuneJob:
        """Poll until the training ends; resumes a job interrupted before its create.

        Raises `FineTuneError` when the training failed, `FineTuneTimeout` (also a
        ``TimeoutError``) after ``timeout`` seconds; the job can be waited on again."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if self._reload().status in _BEFORE_CREATE:
                self.resume()
            self.refresh()
            if self.done:
                if self.status in ("failed", "aborted"):
                    tail = [line for line in self.logs.splitlines() if line.strip()][-5:]
                    raise FineTuneError(f"training {self.training_id} {self.status}: "
                                        f"{self.error or 'no error given'}", tail)
                return self
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise FineTuneTimeout(f"job {self.id} is still {self.status} after {timeout} s; "
                                      f"wait again with gen.job({self.id!r}).wait()")
            time.sleep(poll_interval if left is None else max(0.0, min(poll_interval, left)))

    def cancel(self) -> FineTuneJob:
        """Cancel the training (Replicate bills the time it ran), or the job before it starts."""
        record = self._reload()
        if record.status in TERMINAL:
            return self
        if record.training_id is None:
            stopped = self._store.db.update(record.id, expect_status=("preparing", "uploaded"),
                                            status="canceled", actual_usd=0.0)
            if stopped is not None:
                self._record = stopped
                return self
            self.refresh()  # a create is in flight: find the training, then cancel it
            if self.training_id is None:
                raise FineTuneError(f"job {self.id}: a training create is in flight; cancel again in a moment")
        self._apply(self._api_json("POST", f"/v1/trainings/{self.training_id}/cancel"))
        return self

    # -- the steps before the training exists ----------------------------------------------

    def _advance(self) -> None:
        db = self._store.db
        record = db.claim(self.id, _BEFORE_CREATE)
        if record is None:  # already past these steps, or a live process is on them
            self._reload()
            return
        try:
            api = self._api()
            if record.status == "creating":
                if self._adopt_if_created(api, record):
                    return
                if time.time() - (record.create_sent_at or 0) < CREATE_SETTLE_S:
                    return  # the create may still land; look again later
                record = db.update(self.id, status="uploaded", create_sent_at=None) or record
            if record.status == "preparing":
                self._ensure_destination(api, record)
                uploaded = api.files.create(Path(record.zip_path or ""),
                                            metadata={"imagegen_job": record.id})
                record = db.update(self.id, expect_status=("preparing",), status="uploaded",
                                   file_id=uploaded.id, file_url=uploaded.urls["get"])
                if record is None:
                    return  # canceled meanwhile
            self._create(api, record)
        except _replicate_error() as exc:
            error = _provider_error(exc, f"job {self.id}")
            db.update(self.id, error=str(error))
            raise error from None
        finally:
            db.release(self.id)
            self._reload()

    def _create(self, api: Any, record: JobRecord) -> None:
        import httpx

        training_input = {**json.loads(record.training_input_json or "{}"), "input_images": record.file_url}
        for name, value in training_input.items():
            if value == REDACTED:  # secrets are never stored; this process must have them
                if name not in self._secrets:
                    raise FineTuneError(f"job {self.id} needs the secret input {name!r} again: "
                                        f"gen.job({self.id!r}).resume(secrets={{{name!r}: ...}})")
                training_input[name] = self._secrets[name]
        # The idempotency marker: written before the call, so a crash after it means "look first".
        marked = self._store.db.update(self.id, expect_status=("uploaded",), status="creating",
                                       create_sent_at=time.time())
        if marked is None:
            return  # canceled meanwhile
        try:
            training = api.trainings.create(version=record.trainer, input=training_input,
                                            destination=record.destination)
        except _replicate_error() as exc:
            status = getattr(exc, "status", None) or 0
            if 400 <= status < 500:  # refused: nothing was created
                failed = status != 429
                self._store.db.update(self.id, status="failed" if failed else "uploaded",
                                      create_sent_at=None, error=str(getattr(exc, "detail", "") or exc))
                raise
        except (httpx.TransportError, ValueError):  # sent, but no clear answer (or an unparsable one)
            pass
        else:
            self._adopt(training.id)
            return
        if not self._adopt_if_created(api, marked):
            from .errors import UnknownOutcomeError

            raise UnknownOutcomeError(
                f"job {self.id}: the training create got no clear answer and the training is not "
                f"listed yet; gen.job({self.id!r}).wait() looks again before creating anything",
                provider="replicate")

    def _ensure_destination(self, api: Any, record: JobRecord) -> None:
        request = json.loads(record.request_json)
        owner, name = record.destination.split("/", 1)
        try:
            api.models.get(record.destination)
            return
        except _replicate_error() as exc:
            if getattr(exc, "status", None) != 404:
                raise
        if not request.get("create_destination", True):
            self._store.db.update(self.id, status="failed", error="destination does not exist")
            raise FineTuneError(f"destination model {record.destination} does not exist; create it or "
                                f"pass create_destination=True")
        api.models.create(owner, name, visibility=request.get("visibility", "private"),
                          hardware=request.get("hardware", "gpu-t4"),
                          description=request.get("description")
                          or f"LoRA fine-tune (trigger word {request.get('trigger_word', 'TOK')})")
        self._store.db.update(self.id, destination_created=1)

    def _adopt_if_created(self, api: Any, record: JobRecord) -> bool:
        """Find a training this job created (its input names this job's upload) and record it."""
        if not record.file_url:
            return False
        # Raw pages: the official client's Training model rejects newer statuses ("aborted").
        url: str | None = "/v1/trainings"
        for _ in range(20):  # newest first; a job's create is recent
            page = api._request("GET", url).json()
            for training in page.get("results") or []:
                if (training.get("input") or {}).get("input_images") == record.file_url:
                    self._adopt(training["id"])
                    return True
            url = page.get("next")
            if not url:
                break
        return False

    def _adopt(self, training_id: str) -> None:
        self._store.db.update(self.id, training_id=training_id, status="starting")
        self._reload()
        self._apply(self._api_json("GET", f"/v1/trainings/{training_id}"))

    # -- after the training exists -------------------------------------------------------

    def _apply(self, data: dict[str, Any]) -> None:
        status = data.get("status") or self.status
        changes: dict[str, Any] = {"status": status, "error": data.get("error")}
        if data.get("logs") is not None:
            changes["logs"] = data["logs"][-_LOG_KEEP:]
        metrics = data.get("metrics") or {}
        if metrics:
            changes["metrics_json"] = json.dumps(metrics)
            if status in TERMINAL and metrics.get("predict_time") is not None:
                hardware = TRAINER_HARDWARE.get(self.trainer.split(":")[0], "gpu-h100")
                changes["actual_usd"] = float(metrics["predict_time"]) * HARDWARE_USD_PER_SECOND[hardware]
        output = data.get("output") or {}
        if status == "succeeded" and isinstance(output, dict):
            changes["version"] = output.get("version") or self._record.version
            changes["weights_url"] = output.get("weights") or self._record.weights_url
        self._record = self._store.db.update(self.id, **changes) or self._reload()
        if self._store.client is not None and self._record.actual_usd is not None:
            self._store.client.charge_finetune(self.id, self.trainer, self._record.actual_usd, settle=True)
        if status == "succeeded" and self._record.card_json is None:
            self._finish()

    def _finish(self) -> None:
        """Keep the trained LoRA (the tar expires an hour after the run) and register the card."""
        from .jobstore import download, extract_lora

        record = self._record
        warnings = record.warnings
        if not record.version:
            # Replicate drops an API run's output after an hour; the destination's newest
            # version is then the best evidence of what this training pushed.
            model = self._api_json("GET", f"/v1/models/{record.destination}")
            latest = (model.get("latest_version") or {}).get("id")
            if not latest:
                self._store.db.update(self.id, error="succeeded, but neither the training nor the "
                                                     "destination names a new version")
                return
            record = self._store.db.update(self.id, version=f"{record.destination}:{latest}") or record
            warnings.append("the training's output was removed (Replicate keeps API outputs for an "
                            "hour); the version is the destination's latest")
        changes: dict[str, Any] = {}
        if record.lora_path is None and not record.weights_url:
            warnings.append("trained weights not kept: the training's output no longer names them")
        if record.lora_path is None and record.weights_url:
            folder = self._store.db.job_dir(self.id)
            try:
                tar = download(record.weights_url, folder / "trained_model.tar", self._auth_for(record.weights_url))
                changes["weights_tar"] = str(tar)
                changes["lora_path"] = str(extract_lora(tar, folder / "lora.safetensors"))
            except Exception as exc:  # network, expiry, a bad archive: the version still works
                warnings.append(f"trained weights not kept ({type(exc).__name__}: {exc}); the model "
                                f"version {record.version} still runs on Replicate")
        changes["warnings_json"] = json.dumps(list(dict.fromkeys(warnings)))
        changes["card_json"] = self._make_card(record).model_dump_json()
        self._record = self._store.db.update(self.id, **changes) or self._reload()

    def _make_card(self, record: JobRecord) -> ModelCard:
        from .jobstore import finetune_card

        request = json.loads(record.request_json)
        base = None
        provider = (self._store.client.providers.get("replicate") if self._store.client else None)
        if provider is not None:
            try:
                base = provider.card_for(record.version or "")
            except Exception:  # noqa: BLE001 - a provider that cannot describe it falls back below
                base = None
        return finetune_card(record.version or "", trigger_word=request.get("trigger_word", "TOK"),
                             trainer=record.trainer, job_id=record.id, base=base)

    # -- plumbing ------------------------------------------------------------------------

    def _reload(self) -> JobRecord:
        record = self._store.db.get(self.id)
        if record is None:
            raise FineTuneError(f"job {self.id} is no longer in the store {self._store.db.path}")
        self._record = record
        return record

    def _api(self) -> Any:
        return self._store.api()

    def _api_json(self, method: str, path: str) -> dict[str, Any]:
        try:
            return self._api()._request(method, path).json()
        except _replicate_error() as exc:
            raise _provider_error(exc, f"job {self.id}") from None

    def _auth_for(self, url: str) -> dict[str, str]:
        """The token goes only to the API's own host, never to a CDN or another site."""
        from urllib.parse import urlsplit

        api, target = urlsplit(self._store.settings.replicate_base_url), urlsplit(url)
        if (api.scheme, api.netloc) == (target.scheme, target.netloc):
            return {"Authorization": f"Bearer {self._store.settings.token()}"}
        return {}


def _replicate_error() -> type[Exception]:
    from replicate.exceptions import ReplicateError

    return ReplicateError


def _provider_error(exc: Exception, what: str) -> Exception:
    from .errors import ProviderError

    status = getattr(exc, "status", None)
    detail = getattr(exc, "detail", None) or getattr(exc, "title", None) or str(exc)
    return ProviderError(f"{what}: {detail}", provider="replicate", status=status, detail=detail,
                         retryable=status in (429, 500, 502, 503, 504))
