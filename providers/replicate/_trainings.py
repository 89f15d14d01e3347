"""LoRA trainings on Replicate: the trainer the Replicate provider offers (`Trainer` protocol).

A job goes ``preparing`` (dataset zip written) → destination model made sure of → zip uploaded
to the Files API (``uploaded``) → training create sent (``creating``: the idempotency marker,
written before the call) → Replicate's own statuses. A create that got no clear answer is
looked for in the training list (its input names this job's upload) before anything is sent
again, so a crash or a lost reply never starts a second paid training. A refusal (bad token,
no access, an unreachable API) fails the job with nothing charged.

Trained weights (``trained_model.tar``) are fetched under the same scheme and host rules as
image outputs (`_downloads`), capped by what a LoRA of the job's rank can weigh.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import json
import re
import tarfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from imagegen.errors import ConfigError, FineTuneError, ProviderError, UnknownOutcomeError
from imagegen.finetune import (
    NAMED_INPUTS,
    REDACTED,
    TERMINAL,
    JobContext,
    TrainingEstimate,
    check_safetensors,
    scrub,
)

from ._downloads import fetch_output
from ._schemas import finetune_card
from ._session import CallPolicy

if TYPE_CHECKING:
    from imagegen.catalog import ModelCard
    from imagegen.finetune import Dataset, FineTuneRequest
    from imagegen.settings import Settings

# Trainer and version: the version most public code passes (2025-04, replicate-python #419;
# research note on Replicate §7.3). The API may run the newest trainer whichever is named.
DEFAULT_TRAINER = "ostris/flux-dev-lora-trainer"
DEFAULT_TRAINER_VERSION = "b6af14222e6bd9be257cbc1ea4afda3cd0503e1133083b9d1de0364d8568e6ef"
DEFAULT_HARDWARE = "gpu-t4"  # the destination's listed hardware; trained Flux versions run on H100

# USD per second by hardware SKU: replicate.com/pricing (research note §10, snapshot date unknown).
HARDWARE_USD_PER_SECOND: dict[str, float] = {
    "cpu": 0.000100, "gpu-t4": 0.000225, "gpu-a40-small": 0.000575, "gpu-a40-large": 0.000725,
    "gpu-l40s": 0.000975, "gpu-a100-large": 0.001400, "gpu-h100": 0.001525,
    "gpu-h100-2x": 0.003050, "gpu-h100-4x": 0.006100, "gpu-h100-8x": 0.012200,
}
# "Flux fine-tunes run on H100s" (replicate.com/pricing). Run time per step is UNCONFIRMED:
# third-party claims span 2-20 min for 1000 steps; the estimate takes the top of that range
# (60 s setup + 1.14 s/step: 1000 steps ≈ 20 min ≈ $1.83) so a budget check errs high.
TRAINER_HARDWARE = {DEFAULT_TRAINER: "gpu-h100"}
ESTIMATE_SETUP_S = 60.0
ESTIMATE_SECONDS_PER_STEP = 1.14
# Replicate Files API: "an undocumented upload limit of 100MiB" (replicate-javascript#286,
# 2024-07); the docs input-files page says "up to 100MB". The lower of the two.
FILES_API_LIMIT_BYTES = 100 * 1000 * 1000
# A training create that was sent but not seen in the list after this long never happened
# (the official client's request timeouts are 30 s at most).
CREATE_SETTLE_S = 120.0
# A Flux LoRA holds about 10.8 MiB of bf16 weights per unit of rank (rank 16 ≈ 172 MB, the
# size ostris' trainer writes); the tar may hold it plus small files. Twice that, plus room.
WEIGHTS_BYTES_PER_RANK = 22 * 1024 * 1024
WEIGHTS_BYTES_MIN = 64 * 1024 * 1024
_LOG_KEEP = 64_000
_LORA_FILE = "lora.safetensors"
_TQDM = re.compile(r"(\d+)/(\d+) \[[\d:]+<([\d:]+|\?)")
_LOSS = re.compile(r"loss[:=]\s*([0-9.]+(?:e[+-]?\d+)?)", re.IGNORECASE)


class ReplicateTrainer:
    """Trains LoRAs with a Replicate training model (default: ostris/flux-dev-lora-trainer) and
    pushes them as new versions of the destination model."""

    name = "replicate"

    def __init__(self, settings: Settings, policy: CallPolicy | None = None, *,
                 max_weights_bytes: int | None = None):
        self.settings = settings
        self.policy = policy or CallPolicy()
        self.max_weights_bytes = max_weights_bytes  # None: by the LoRA's rank
        self._api: Any = None

    def __repr__(self) -> str:
        return f"<ReplicateTrainer {self.settings.replicate_base_url}>"

    # -- Trainer protocol ----------------------------------------------------------------

    def estimate(self, request: FineTuneRequest, dataset: Dataset) -> TrainingEstimate:
        problems = []
        if request.base is not None and request.base_provider not in (None, self.name):
            problems.append(f"base: {request.base!r} is not a Replicate model")
        if request.destination is None:
            problems.append("destination: Replicate pushes the trained LoRA to a model: give 'owner/name'")
        hardware = request.hardware or DEFAULT_HARDWARE
        if hardware not in HARDWARE_USD_PER_SECOND:
            problems.append(f"hardware: {hardware!r} is not a Replicate hardware SKU "
                            f"({', '.join(HARDWARE_USD_PER_SECOND)})")
        model = request.trainer_model or DEFAULT_TRAINER
        version = request.trainer_version or (DEFAULT_TRAINER_VERSION if model == DEFAULT_TRAINER else None)
        if version is None:
            problems.append(f"trainer_version: required for the training model {model!r}")
        if problems:
            raise FineTuneError("this fine-tune cannot run on Replicate", problems)
        if not self.settings.token():
            raise ConfigError("fine-tuning on Replicate needs REPLICATE_API_TOKEN (or replicate_api_token=...)")
        price = HARDWARE_USD_PER_SECOND[TRAINER_HARDWARE.get(model, "gpu-h100")]
        seconds = ESTIMATE_SETUP_S + ESTIMATE_SECONDS_PER_STEP * request.steps
        return TrainingEstimate(cost_usd=round(seconds * price, 4), seconds=seconds,
                                card_id=f"{self.name}:{model}:{version}", trainer_ref=f"{model}:{version}",
                                max_dataset_bytes=FILES_API_LIMIT_BYTES)

    def start(self, job: JobContext) -> None:
        api = self.api()
        try:
            if job.record.status == "creating":
                if self._adopt_if_created(api, job):
                    return
                if time.time() - (job.record.create_sent_at or 0) < CREATE_SETTLE_S:
                    return  # the create may still land; look again later
                job.update(status="uploaded", create_sent_at=None)
            if job.record.status == "preparing":
                self._ensure_destination(api, job)
                uploaded = api.files.create(Path(job.record.zip_path or ""), metadata={"imagegen_job": job.id})
                if job.update(expect_status=("preparing",), status="uploaded", file_id=uploaded.id,
                              file_url=uploaded.urls["get"]) is None:
                    return  # canceled meanwhile
            self._create(api, job)
        except (_replicate_error(), httpx.HTTPError) as exc:
            error = provider_error(exc, f"job {job.id}", job.secrets)
            if refused(exc) and job.record.status in ("preparing", "uploaded"):
                # Nothing was created (a refusal, or a connection never made): nothing to pay.
                job.update(expect_status=("preparing", "uploaded"), status="failed", actual_usd=0.0,
                           error=str(error), create_sent_at=None)
            else:
                job.update(error=str(error))
            raise error from None

    def advance(self, job: JobContext) -> None:
        if job.record.training_id is None:
            if job.record.status == "creating":
                self._adopt_if_created(self.api(), job)
            return
        self._apply(job, self._api_json(job, "GET", f"/v1/trainings/{job.record.training_id}"))

    def cancel(self, job: JobContext) -> None:
        if job.record.training_id is None:
            raise FineTuneError(f"job {job.id}: the training is not known yet; cancel again in a moment")
        self._apply(job, self._api_json(job, "POST", f"/v1/trainings/{job.record.training_id}/cancel"))

    def finish(self, job: JobContext) -> None:
        """Keep the trained LoRA (the tar expires an hour after the run) and register the card."""
        record = job.record
        if not record.version:
            # Replicate drops an API run's output after an hour; the destination's newest
            # version is then the best evidence of what this training pushed.
            model = self._api_json(job, "GET", f"/v1/models/{record.destination}")
            latest = (model.get("latest_version") or {}).get("id")
            if not latest:
                job.update(error="succeeded, but neither the training nor the destination names a new version")
                return
            job.update(version=f"{record.destination}:{latest}")
            job.warn("the training's output was removed (Replicate keeps API outputs for an hour); "
                     "the version is the destination's latest")
        record = job.record
        if record.lora_path is None and not record.weights_url:
            job.warn("trained weights not kept: the training's output no longer names them")
        if record.lora_path is None and record.weights_url:
            try:
                tar = self._download_weights(job, record.weights_url, job.folder / "trained_model.tar")
                lora = extract_lora(tar, job.folder / _LORA_FILE)
                job.update(weights_tar=str(tar), lora_path=str(lora))
            except (ProviderError, OSError, ValueError, tarfile.TarError) as exc:
                # network, expiry, a refused host, a bad archive: the version still works
                job.warn(f"trained weights not kept ({type(exc).__name__}: {exc}); the model "
                         f"version {record.version} still runs on Replicate")
        card = self.card(job)
        job.update(card_json=card.model_dump_json(), model=card.id)

    # -- the steps before the training exists ----------------------------------------------

    def api(self) -> Any:
        """The official ``replicate`` client for these settings (one per trainer)."""
        if self._api is None:
            import replicate

            token = self.settings.token()
            if not token:
                raise ConfigError("REPLICATE_API_TOKEN is not set")
            self._api = replicate.Client(api_token=token, base_url=self.settings.replicate_base_url)
        return self._api

    def training_input(self, job: JobContext) -> dict[str, Any]:
        """The trainer's ``input``: every named setting, explicit, and the extra inputs, with
        secrets filled in from this process (the store never has them)."""
        request = job.request
        values = {name: request.get(name) for name in NAMED_INPUTS if request.get(name) is not None}
        extra = dict(request.get("extra_inputs") or {})
        for name, value in extra.items():
            if value == REDACTED:
                if name not in job.secrets:
                    raise FineTuneError(f"job {job.id} needs the secret input {name!r} again: "
                                        f"gen.job({job.id!r}).resume(secrets={{{name!r}: ...}})")
                extra[name] = job.secrets[name]
        return {"input_images": job.record.file_url, **values, **extra}

    def _create(self, api: Any, job: JobContext) -> None:
        training_input = self.training_input(job)
        stored = {k: REDACTED if k in job.secrets else v for k, v in training_input.items()}
        # The idempotency marker: written before the call, so a crash after it means "look first".
        marked = job.update(expect_status=("uploaded",), status="creating", create_sent_at=time.time(),
                            training_input_json=json.dumps(stored))
        if marked is None:
            return  # canceled meanwhile
        try:
            training = api.trainings.create(version=job.record.trainer, input=training_input,
                                            destination=job.record.destination)
        except _replicate_error() as exc:
            status = getattr(exc, "status", None) or 0
            if 400 <= status < 500:  # refused: nothing was created
                error = provider_error(exc, f"job {job.id}", job.secrets)
                if status == 429:
                    job.update(status="uploaded", create_sent_at=None, error=str(error))
                else:
                    job.update(status="failed", actual_usd=0.0, create_sent_at=None, error=str(error))
                raise error from None
        except httpx.ConnectError as exc:  # the connection was never made: nothing was sent
            error = provider_error(exc, f"job {job.id}", job.secrets)
            job.update(status="failed", actual_usd=0.0, create_sent_at=None, error=str(error))
            raise error from None
        except (httpx.TransportError, ValueError):  # sent, but no clear answer (or an unparsable one)
            pass
        else:
            self._adopt(job, training.id)
            return
        if not self._adopt_if_created(api, job):
            raise UnknownOutcomeError(
                f"job {job.id}: the training create got no clear answer and the training is not "
                f"listed yet; gen.job({job.id!r}).wait() looks again before creating anything",
                provider=self.name)

    def _ensure_destination(self, api: Any, job: JobContext) -> None:
        request, destination = job.request, job.record.destination
        owner, name = destination.split("/", 1)
        try:
            api.models.get(destination)
            return
        except _replicate_error() as exc:
            if getattr(exc, "status", None) != 404:
                raise
        if not request.get("create_destination", True):
            job.update(status="failed", actual_usd=0.0, error="destination does not exist")
            raise FineTuneError(f"destination model {destination} does not exist; create it or "
                                f"pass create_destination=True")
        api.models.create(owner, name, visibility=request.get("visibility", "private"),
                          hardware=request.get("hardware") or DEFAULT_HARDWARE,
                          description=request.get("description")
                          or f"LoRA fine-tune (trigger word {request.get('trigger_word', 'TOK')})")
        job.update(destination_created=1)

    def _adopt_if_created(self, api: Any, job: JobContext) -> bool:
        """Find a training this job created (its input names this job's upload) and record it."""
        if not job.record.file_url:
            return False
        # Raw pages: the official client's Training model rejects newer statuses ("aborted").
        url: str | None = "/v1/trainings"
        for _ in range(20):  # newest first; a job's create is recent
            page = self._api_json(job, "GET", url or "")
            for training in page.get("results") or []:
                if (training.get("input") or {}).get("input_images") == job.record.file_url:
                    self._adopt(job, training["id"])
                    return True
            url = page.get("next")
            if not url:
                break
        return False

    def _adopt(self, job: JobContext, training_id: str) -> None:
        job.update(training_id=training_id, status="starting", create_sent_at=None, error=None)
        self._apply(job, self._api_json(job, "GET", f"/v1/trainings/{training_id}"))

    # -- after the training exists -------------------------------------------------------

    def _apply(self, job: JobContext, data: dict[str, Any]) -> None:
        status = data.get("status") or job.record.status
        error = data.get("error")
        changes: dict[str, Any] = {"status": status,
                                   "error": scrub(str(error), job.secrets) if error else None}
        logs = data.get("logs")
        if logs is not None:
            changes["logs"] = scrub(logs[-_LOG_KEEP:], job.secrets)
            progress = progress_from_logs(logs)
            if progress and status == "succeeded":  # the bar's last line may be older than the end
                progress = {"step": progress["total"], "total": progress["total"], "eta_s": 0.0,
                            **({"loss": progress["loss"]} if "loss" in progress else {})}
            if progress:
                changes["progress_json"] = json.dumps(progress)
        metrics = data.get("metrics") or {}
        if metrics:
            changes["metrics_json"] = json.dumps(metrics)
            if status in TERMINAL and metrics.get("predict_time") is not None:
                hardware = TRAINER_HARDWARE.get(job.record.trainer.split(":")[0], "gpu-h100")
                changes["actual_usd"] = float(metrics["predict_time"]) * HARDWARE_USD_PER_SECOND[hardware]
        output = data.get("output") or {}
        if status == "succeeded" and isinstance(output, dict):
            changes["version"] = output.get("version") or job.record.version
            changes["weights_url"] = output.get("weights") or job.record.weights_url
        job.update(**changes)

    def card(self, job: JobContext) -> ModelCard:
        """The card of the trained version: a Replicate fine-tune card with its trigger word."""
        record = job.record
        base = finetune_card(record.version or "")
        if base is None:
            raise FineTuneError(f"job {job.id}: {record.version!r} is not 'owner/name:<64-hex version>'")
        trigger = job.request.get("trigger_word", "TOK")
        notes = (f"LoRA fine-tune by {record.trainer} (job {record.id}); put the trigger word "
                 f"{trigger!r} in the prompt")
        caps = base.capabilities.model_copy(update={"lora": True})
        return base.model_copy(update={"kind": "finetune", "capabilities": caps,
                                       "notes": "; ".join(n for n in (notes, base.notes) if n)})

    def weights_cap(self, job: JobContext) -> int:
        if self.max_weights_bytes is not None:
            return self.max_weights_bytes
        rank = int(job.request.get("lora_rank") or 16)
        return WEIGHTS_BYTES_MIN + WEIGHTS_BYTES_PER_RANK * rank

    def _download_weights(self, job: JobContext, url: str, dest: Path) -> Path:
        """Fetch through `fetch_output` (its scheme, host and size rules; no token sent)."""
        policy = dataclasses.replace(self.policy, max_download_bytes=self.weights_cap(job))
        base_url = self.settings.replicate_base_url

        async def fetch() -> bytes:
            async with httpx.AsyncClient(timeout=httpx.Timeout(policy.timeout_s, read=300.0)) as http:
                return await fetch_output(http, url, base_url=base_url, policy=policy)

        # A thread of its own: this may be called from inside a running event loop.
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            data = pool.submit(asyncio.run, fetch()).result()
        dest.parent.mkdir(parents=True, exist_ok=True)
        partial = dest.with_name(dest.name + ".partial")
        partial.write_bytes(data)
        partial.replace(dest)
        return dest

    # -- plumbing ------------------------------------------------------------------------

    def _api_json(self, job: JobContext, method: str, path: str) -> dict[str, Any]:
        try:
            return self.api()._request(method, path).json()
        except (_replicate_error(), httpx.HTTPError) as exc:
            raise provider_error(exc, f"job {job.id}", job.secrets) from None


def progress_from_logs(logs: str) -> dict[str, Any]:
    """Step, total, ETA and loss from the trainer's last progress-bar line (tqdm style)."""
    for line in reversed(logs.splitlines()[-50:]):
        found = _TQDM.search(line)
        if found:
            step, total, eta = int(found[1]), int(found[2]), found[3]
            progress: dict[str, Any] = {"step": step, "total": total}
            if eta != "?":
                parts = [int(p) for p in eta.split(":")]
                progress["eta_s"] = float(sum(p * 60 ** i for i, p in enumerate(reversed(parts))))
            loss = _LOSS.search(line)
            if loss:
                progress["loss"] = float(loss[1])
            return progress
    return {}


def extract_lora(tar_path: Path, dest: Path) -> Path:
    """Copy ``lora.safetensors`` out of a trainer's ``trained_model.tar`` (only that member,
    so a hostile archive cannot write elsewhere) and check its safetensors header."""
    with tarfile.open(tar_path) as archive:
        members = [m for m in archive.getmembers() if m.isfile() and Path(m.name).name == _LORA_FILE]
        if not members:
            raise ValueError(f"{tar_path.name} holds no {_LORA_FILE}")
        member = min(members, key=lambda m: len(m.name))  # output/flux_train_replicate/lora.safetensors
        source = archive.extractfile(member)
        assert source is not None
        partial = dest.with_name(dest.name + ".partial")
        with partial.open("wb") as out:
            while chunk := source.read(1 << 20):
                out.write(chunk)
    try:
        check_safetensors(partial)
    except ValueError:
        partial.unlink()
        raise
    partial.replace(dest)
    return dest


def refused(exc: BaseException) -> bool:
    """The API said no (4xx other than 429) or was never reached: nothing was created."""
    status = getattr(exc, "status", None) or 0
    return isinstance(exc, httpx.ConnectError) or (400 <= status < 500 and status != 429)


def provider_error(exc: BaseException, what: str, secrets: dict[str, Any] | None = None) -> ProviderError:
    """One line: the API's status and detail, or the connection failure and the URL tried."""
    status = getattr(exc, "status", None)
    if isinstance(exc, httpx.HTTPError):
        request = getattr(exc, "_request", None)
        where = f" ({request.method} {request.url})" if request is not None else ""
        detail = f"cannot reach the Replicate API{where}: {type(exc).__name__}: {exc or 'no detail'}"
    else:
        detail = getattr(exc, "detail", None) or getattr(exc, "title", None) or str(exc)
    detail = scrub(str(detail), secrets)
    return ProviderError(f"{what}: {detail}", provider="replicate", status=status, detail=detail,
                         retryable=status in (429, 500, 502, 503, 504) or isinstance(exc, httpx.TransportError))


def _replicate_error() -> type[Exception]:
    from replicate.exceptions import ReplicateError

    return ReplicateError
