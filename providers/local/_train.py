"""`LocalTrainer`: LoRA fine-tunes on this machine (`Trainer` protocol), kohya_ss vocabulary.

``estimate`` resolves and checks every setting against this machine before any compute (a
setting it cannot honour is refused or warned, naming the field). ``start`` spawns a
background worker process (`_train_worker`), which claims the job in the store, trains, writes
step / loss / ETA and logs into the store, checkpoints every ``save_every_n_steps`` and ends the
job. ``advance`` reads what the worker wrote and, when the worker died (``kill -9``, a reboot),
spawns a new one, which carries on from the last checkpoint. ``cancel`` asks the worker to stop
(it checks before every step) and waits for it; the last checkpoint is kept.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imagegen.errors import FineTuneError

from ._gpu_price import gpu_hour_price
from ._train_loop import TrainConfig

if TYPE_CHECKING:
    from imagegen.catalog import ModelCard
    from imagegen.finetune import Dataset, FineTuneRequest, JobContext, TrainingEstimate
    from imagegen.settings import Settings

CARD_ID = "local:lora-trainer"  # what `usage` and the budget record trainings under
TRAINER_REF = "imagegen-local-lora:1"
CANCEL_FILE = "cancel"
REPEATS_FILE = "repeats.json"  # image sha256 -> [repeats, folder], from the "<n>_<name>" folders
MAX_RESTARTS = 5  # a worker that keeps dying fails the job
# Rough seconds per step at batch 1 on a current GPU (SD 1.5 @512 ≈ 4 it/s, SDXL @1024 ≈ 1.2 it/s
# with LoRA on a 24 GB card, 2025 community figures), scaled by pixels and batch; the CPU is
# taken as 60x slower. Only for choosing and for the ETA before the first steps.
GPU_SECONDS_PER_STEP = {"sd15": (0.25, 512), "sdxl": (0.8, 1024)}
CPU_SLOWDOWN = 60.0
# GPU memory a LoRA run needs at batch 1 with fp16 weights (kohya_ss guides: SD 1.5 trains on
# 6-8 GB cards, SDXL wants 12 GB with gradient checkpointing, 24 GB without).
GPU_MEMORY_GB = {"sd15": 6, "sdxl": 12}
SETUP_SECONDS = 30.0
# What a Flux LoRA would need (not trained here): the 12B transformer in bf16 is ~24 GB.
FLUX_MEMORY_NOTE = ("local LoRA training of FLUX is not implemented: it needs a GPU with about 24 GB "
                    "(bf16 transformer + gradient checkpointing, 8-bit optimizer) and ~40 GB without "
                    "those savings; train it with the cloud trainer (trainer='replicate')")

_WORKERS: dict[int, subprocess.Popen] = {}  # workers this process spawned, reaped on every look


class LocalTrainer:
    """Trains SD 1.x / SDXL LoRAs with diffusers + PEFT in a background worker process."""

    name = "local"

    def __init__(self, settings: Settings, card_for: Callable[[str], ModelCard | None] | None = None):
        self.settings = settings
        self._card_for = card_for

    def __repr__(self) -> str:
        return f"<LocalTrainer device={self.settings.device}>"

    # -- Trainer protocol ----------------------------------------------------------------

    def estimate(self, request: FineTuneRequest, dataset: Dataset) -> TrainingEstimate:
        from imagegen.finetune import TrainingEstimate

        config, warnings, seconds = resolve(request, self.settings, images=len(dataset.images))
        hours = seconds / 3600
        auto = request.trainer == "auto" and request.base_provider is None
        if auto and config.device == "cpu":
            raise FineTuneError(f"no suitable GPU here (CPU only): about {hours:.1f} h on the CPU")
        short = _memory_shortfall(config)
        if short and auto:
            raise FineTuneError(f"no suitable GPU here: {short}")
        if short:
            warnings = [*warnings, f"{short}; it may run out of memory (local.gradient_checkpointing, "
                                   f"local.mixed_precision='fp16' and AdamW8bit save memory)"]
        if request.max_hours is not None and hours > request.max_hours:
            raise FineTuneError(f"max_hours: the estimate is {hours:.2f} h on {config.device}, over "
                                f"max_hours={request.max_hours:g}")
        price = gpu_hour_price(request.local.gpu_hour_usd if request.local else None)
        return TrainingEstimate(cost_usd=round(hours * price, 4) if config.device != "cpu" else 0.0,
                                seconds=seconds, card_id=CARD_ID, trainer_ref=TRAINER_REF, warnings=warnings)

    def start(self, job: JobContext) -> None:
        if job.record.status not in ("preparing", "uploaded", "creating"):
            return
        from imagegen.finetune import FineTuneRequest

        stored = {**job.request, "images": _existing(job)}
        if not (stored.get("local") or {}).get("optimizer"):
            stored.pop("optimizer", None)  # not chosen for the local run (estimate checked it)
        request = FineTuneRequest.model_validate(stored)
        config, _, seconds = resolve(request, self.settings)
        job.folder.mkdir(parents=True, exist_ok=True)
        (job.folder / "config.json").write_text(config.to_json())
        from ._train_data import repeats_by_digest  # read now: the folder may be gone when a worker restarts

        source = job.request.get("images")
        repeats = repeats_by_digest(Path(source)) if isinstance(source, str) else {}
        (job.folder / REPEATS_FILE).write_text(json.dumps(repeats))
        if job.update(expect_status=("preparing", "uploaded", "creating"), status="starting",
                      training_id=f"local-{job.id}", state_json=json.dumps({"restarts": 0})) is None:
            return  # canceled meanwhile
        job.report(step=0, total=config.max_train_steps or 0, eta_s=seconds, message="starting the worker")
        self._spawn(job)

    def advance(self, job: JobContext) -> None:
        record = job.reload()
        _reap()
        if record.status not in ("starting", "processing"):
            return
        pid = record.state.get("worker_pid")
        if pid and alive(pid):
            return
        restarts = int(record.state.get("restarts", 0))
        if restarts >= MAX_RESTARTS:
            job.update(expect_status=("starting", "processing"), status="failed",
                       error=f"the training worker died {restarts + 1} times; see the logs", actual_usd=0.0)
            return
        job.set_state(restarts=restarts + 1)
        self._spawn(job)  # the new worker resumes from the last checkpoint

    def cancel(self, job: JobContext, wait_s: float = 60.0) -> None:
        job.folder.mkdir(parents=True, exist_ok=True)
        (job.folder / CANCEL_FILE).write_text(str(time.time()))
        job.update(expect_status=("starting", "processing"), status="canceled",
                   actual_usd=job.record.actual_usd or 0.0)
        pid = job.state.get("worker_pid")
        deadline = time.monotonic() + wait_s
        while pid and alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)  # the worker checks before every step
            _reap()
        if pid and alive(pid):
            os.kill(pid, signal.SIGTERM)
        if pid in _WORKERS:  # our own child: reap it now, not at the next look
            try:
                _WORKERS.pop(pid).wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        job.reload()

    def finish(self, job: JobContext) -> None:
        """The card of ``local:<lora path>`` (the base with the LoRA on); with a models dir,
        a copy in ``<models dir>/Lora`` so ``<lora:name:1>`` finds it by name."""
        record = job.record
        if not record.lora_path:
            job.update(error="succeeded, but the worker recorded no LoRA file")
            return
        lora = Path(record.lora_path)
        models_dir = self.settings.models_dir
        if models_dir is not None:
            config = TrainConfig.from_json((job.folder / "config.json").read_text())
            copy = Path(models_dir) / "Lora" / f"{config.output_name}.safetensors"
            if not copy.exists():
                import shutil

                copy.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(lora, copy)
            job.set_state(lora_copy=str(copy))
        card = self._card_for(str(lora)) if self._card_for is not None else None
        if card is None:
            job.update(model=f"local:{lora}")
            return
        trigger = job.request.get("trigger_word", "TOK")
        card = card.model_copy(update={"notes": f"LoRA trained locally (job {job.id}); put the trigger word "
                                                f"{trigger!r} in the prompt. {card.notes or ''}".strip()})
        job.update(card_json=card.model_dump_json(), model=card.id)

    # -- the worker ---------------------------------------------------------------------

    def _spawn(self, job: JobContext) -> None:
        env = {**os.environ, "IMAGEGEN_HOME": str(self.settings.home), "IMAGEGEN_DEVICE": self.settings.device}
        if self.settings.models_dir is not None:
            env["IMAGEGEN_MODELS_DIR"] = str(self.settings.models_dir)
        log = (job.folder / "train.log").open("ab")
        # A session of its own: the training outlives the caller (and its Ctrl-C).
        proc = subprocess.Popen([sys.executable, "-m", "imagegen.providers.local._train_worker", job.id],
                                env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, cwd=str(job.folder))
        log.close()
        _WORKERS[proc.pid] = proc
        job.set_state(worker_pid=proc.pid, spawned_at=time.time())


def _memory_shortfall(config: TrainConfig) -> str | None:
    """What the GPU lacks for a LoRA of this family (None: enough, or not a CUDA run)."""
    if config.device != "cuda":
        return None
    import torch

    total_gb = torch.cuda.get_device_properties(0).total_memory / 2**30
    need = GPU_MEMORY_GB[config.family]
    if total_gb >= need:
        return None
    return f"the GPU has {total_gb:.0f} GB; a {config.family} LoRA needs about {need} GB"


def _existing(job: JobContext) -> Any:
    """The request's images if still there, else the job's dataset zip (the worker reads that)."""
    images = job.request.get("images")
    paths = images if isinstance(images, list) else [images]
    if images and all(p and Path(p).exists() for p in paths):
        return images
    return job.record.zip_path


def _reap() -> None:
    for pid, proc in list(_WORKERS.items()):
        if proc.poll() is not None:
            del _WORKERS[pid]


def alive(pid: int) -> bool:
    """A running process (a zombie, killed but not yet reaped, counts as dead)."""
    _reap()
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


# -- settings: resolved and checked before any compute ---------------------------------------

_CLOUD_ONLY = ("destination", "hardware", "trainer_model", "trainer_version", "autocaption_prefix",
               "autocaption_suffix")


def resolve(request: FineTuneRequest, settings: Settings, *, images: int | None = None
            ) -> tuple[TrainConfig, list[str], float]:
    """The run's `TrainConfig`, warnings for what is changed, and the estimated seconds.
    Raises `FineTuneError` naming every field this machine cannot honour."""
    from imagegen.finetune import LocalTrainOptions

    from ._device import pick_device
    from ._families import checkpoint_family, is_flow

    opts = request.local or LocalTrainOptions.model_validate({})
    problems: list[str] = []
    warnings: list[str] = []
    base = _base_path(request, settings, problems)
    family = None
    if base is not None:
        family = checkpoint_family(base)
        if is_flow(family) or family.startswith("flux"):
            problems.append(f"base: {FLUX_MEMORY_NOTE}")
        elif family not in ("sd15", "sdxl"):
            problems.append(f"base: {base.name} is {family}; the local trainer trains SD 1.x and SDXL LoRAs")
    device, _ = pick_device(settings.device)
    optimizer = opts.optimizer or "AdamW"
    if "optimizer" in request.model_fields_set and request.local is not None and request.local.optimizer is None:
        problems.append(f"optimizer: {request.optimizer!r} is not a local optimizer (local.optimizer: "
                        f"AdamW, AdamW8bit, Prodigy)")
    if optimizer == "AdamW8bit":
        if device != "cuda":
            problems.append(f"local.optimizer: AdamW8bit needs CUDA (this run is on {device}); use AdamW")
        elif importlib.util.find_spec("bitsandbytes") is None:
            problems.append("local.optimizer: AdamW8bit needs bitsandbytes (pip install bitsandbytes)")
    if optimizer == "Prodigy" and importlib.util.find_spec("prodigyopt") is None:
        problems.append("local.optimizer: Prodigy needs prodigyopt (pip install prodigyopt)")
    precision = opts.mixed_precision
    weight_dtype = "float32"
    if precision == "fp16" and device != "cuda":
        problems.append(f"local.mixed_precision: fp16 training needs CUDA (this run is on {device}); "
                        f"use 'no' or 'bf16'")
    elif precision == "bf16" and device == "cpu":
        warnings.append("local.mixed_precision: bf16 on the CPU is emulated and slower than fp32")
    elif precision != "no" and device == "cuda":
        weight_dtype = {"fp16": "float16", "bf16": "bfloat16"}[precision]
    if opts.lr_warmup_steps and opts.lr_scheduler == "constant":
        problems.append("local.lr_warmup_steps: the 'constant' scheduler has no warmup; use "
                        "'constant_with_warmup' (or another scheduler)")
    if opts.keep_tokens and not opts.shuffle_caption:
        warnings.append("local.keep_tokens has an effect only with shuffle_caption")
    if opts.cache_latents and not opts.flip_aug:
        pass  # cached once per image: the VAE runs once
    if opts.enable_bucket is False and (opts.min_bucket_reso, opts.max_bucket_reso) != (256, 1024):
        warnings.append("local.min/max_bucket_reso have an effect only with enable_bucket")
    if "resolution" in request.model_fields_set and opts.resolution is None:
        warnings.append(f"resolution {request.resolution!r} is the cloud trainers' list; the local trainer "
                        f"trains at local.resolution (default: the base's native size), with "
                        f"local.enable_bucket for aspect-ratio buckets")
    if "autocaption" in request.model_fields_set and request.autocaption:
        warnings.append("autocaption: the local trainer does not caption; uncaptioned images train on "
                        "the trigger word alone")
    for name in _CLOUD_ONLY:
        if getattr(request, name) is not None and name in request.model_fields_set:
            warnings.append(f"{name} is a cloud trainer setting; the local trainer ignores it")
    if request.extra_inputs:
        problems.append(f"extra_inputs: the local trainer takes its settings in local=..., not "
                        f"{sorted(request.extra_inputs)}")
    if opts.sample_every_n_steps and base is not None and family == "sdxl" and device == "cpu":
        warnings.append("local.sample_every_n_steps: SDXL samples on the CPU take minutes each")
    if problems or base is None or family is None:
        raise FineTuneError("this fine-tune cannot run on the local trainer", problems)

    steps = opts.max_train_steps or request.steps
    rank = opts.network_dim or request.lora_rank
    output = opts.output_name or f"{request.trigger_word}_lora"
    from imagegen.finetune import safe_stem

    config = TrainConfig(
        base=str(base), family=family, device=device, weight_dtype=weight_dtype, mixed_precision=precision,
        network_dim=rank, network_alpha=opts.network_alpha or float(rank),
        unet_lr=opts.unet_lr or request.learning_rate, text_encoder_lr=opts.text_encoder_lr,
        optimizer=optimizer, lr_scheduler=opts.lr_scheduler, lr_warmup_steps=opts.lr_warmup_steps,
        max_train_steps=steps, max_train_epochs=opts.max_train_epochs,
        batch_size=opts.train_batch_size or request.batch_size, resolution=opts.resolution,
        enable_bucket=opts.enable_bucket, min_bucket_reso=opts.min_bucket_reso,
        max_bucket_reso=opts.max_bucket_reso, bucket_reso_steps=opts.bucket_reso_steps,
        shuffle_caption=opts.shuffle_caption, keep_tokens=opts.keep_tokens,
        caption_dropout_rate=(request.caption_dropout_rate if opts.caption_dropout_rate is None
                              else opts.caption_dropout_rate),
        flip_aug=opts.flip_aug, gradient_checkpointing=opts.gradient_checkpointing,
        cache_latents=opts.cache_latents, seed=opts.seed, save_every_n_steps=opts.save_every_n_steps,
        sample_every_n_steps=opts.sample_every_n_steps, sample_prompts=list(opts.sample_prompts),
        sample_steps=opts.sample_steps, trigger_word=request.trigger_word, output_name=safe_stem(output),
    )
    if opts.max_train_epochs and images:
        steps = opts.max_train_epochs * max(1, images // config.batch_size)
    return config, warnings, _seconds(base, family, device, config, steps)


def _base_path(request: FineTuneRequest, settings: Settings, problems: list[str]) -> Path | None:
    from ._files import find_checkpoints, resolve_checkpoint

    if request.base is None:
        found = [name for name, family in find_checkpoints(settings.models_dir) if family in ("sd15", "sdxl")]
        if not found:
            problems.append("base: give the model to train on, e.g. base='local:<checkpoint or folder>'")
            return None
        ref = found[0]
    elif request.base_provider != "local":
        problems.append(f"base: {request.base!r} is not a local model ('local:<checkpoint>')")
        return None
    else:
        ref = request.base.split(":", 1)[1]
    try:
        path = resolve_checkpoint(ref, settings.models_dir)
    except Exception as exc:
        problems.append(f"base: {exc}")
        return None
    if path is None:
        problems.append(f"base: no checkpoint {ref!r} (a path, or a name in IMAGEGEN_MODELS_DIR)")
    return path


def _seconds(base: Path, family: str, device: str, config: TrainConfig, steps: int) -> float:
    per_step, native = GPU_SECONDS_PER_STEP[family]
    weights = [base] if base.is_file() else list((base / "unet").glob("*.safetensors")) or [base]
    size = sum(p.stat().st_size for p in weights if p.is_file())
    reference = 3.4e9 if family == "sd15" else 10.3e9  # fp32 UNet bytes of SD 1.5 / SDXL
    scale = min(1.0, size / reference) if size else 1.0
    pixels = ((config.resolution or native) / native) ** 2
    seconds = per_step * scale * pixels * config.batch_size * steps
    if device == "cpu":
        seconds *= CPU_SLOWDOWN
    return round(SETUP_SECONDS * scale + seconds + 0.01 * steps, 2)
