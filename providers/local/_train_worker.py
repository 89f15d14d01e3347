"""The background process of a local fine-tune: ``python -m imagegen.providers.local._train_worker <job id>``.

It takes the job's claim in the store (one worker per job, whatever the number of processes
that spawn one), loads the base, trains from the last checkpoint, and writes progress, logs and
the end of the job into the store. ``IMAGEGEN_HOME`` names the store.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

CLAIM_WAIT_S = 60.0  # the spawning process holds the claim for a moment after spawning
REPORT_EVERY_S = 0.5  # progress writes to the store, at most this often
LOG_KEEP = 64_000


def main(job_id: str) -> int:
    from imagegen.finetune import JobContext, JobDatabase
    from imagegen.settings import Settings

    settings = Settings()
    db = JobDatabase(settings.home)
    record = _claim(db, job_id)
    if record is None:
        return 0
    job = JobContext(db, record, settings)
    lines: list[str] = [record.logs] if record.logs else []

    def log(text: str) -> None:
        lines.append(f"{time.strftime('%H:%M:%S')} {text}")
        job.update(logs="\n".join(lines)[-LOG_KEEP:])

    try:
        job.set_state(worker_pid=os.getpid())
        if job.update(expect_status=("starting", "processing"), status="processing") is None:
            return 0
        return _train(job, log)
    except BaseException as exc:  # the job must never stay "processing" with no worker
        log("".join(traceback.format_exception_only(type(exc), exc)).strip())
        job.update(expect_status=("starting", "processing"), status="failed",
                   error=f"{type(exc).__name__}: {exc}", actual_usd=0.0)
        return 1
    finally:
        db.release(job_id)


def _claim(db: Any, job_id: str) -> Any:
    from ._train import alive

    deadline = time.monotonic() + CLAIM_WAIT_S
    while time.monotonic() < deadline:
        record = db.claim(job_id, ("starting", "processing"))
        if record is not None:
            return record
        record = db.get(job_id)
        if record is None or record.status not in ("starting", "processing"):
            return None
        other = record.state.get("worker_pid")
        if other and other != os.getpid() and record.claim_pid == other and alive(other):
            return None  # another worker trains this job
        time.sleep(0.1)
    return None


def _train(job: Any, log: Any) -> int:
    from ._gpu_price import gpu_hour_price
    from ._kohya import (
        BASE_MODEL_VERSION,
        BASE_PATH_KEY,
        metadata_json,
        model_hash,
        save_kohya,
        tag_frequency,
    )
    from ._train import CANCEL_FILE, REPEATS_FILE
    from ._train_data import load_items
    from ._train_loop import TrainConfig, Trainer, load_pipeline

    folder = job.folder
    config = TrainConfig.from_json((folder / "config.json").read_text())
    started_at = time.time()
    images = job.request.get("images")
    source = images if isinstance(images, str) else None
    recorded = folder / REPEATS_FILE
    repeats = ({k: tuple(v) for k, v in json.loads(recorded.read_text()).items()} if recorded.is_file() else None)
    items, _ = load_items(Path(job.record.zip_path), source, config.trigger_word, repeats)
    log(f"{len(items)} images ({sum(i.repeats for i in items)} with repeats); loading {config.base} on {config.device}")
    pipe = load_pipeline(config)
    if config.device == "cpu" and config.threads is None and sum(p.numel() for p in pipe.unet.parameters()) < 20e6:
        config.threads = 1  # tiny models: intra-op threads only add barriers
    trainer = Trainer(config, items, pipe, folder)
    cancel = folder / CANCEL_FILE
    last = [0.0]

    def report(step: int, total: int, loss: float, eta: float) -> None:
        now = time.monotonic()
        if now - last[0] >= REPORT_EVERY_S or step == total:
            last[0] = now
            job.report(step=step, total=total, loss=round(loss, 6), eta_s=round(eta, 1),
                       message=f"step {step}/{total}")

    log(f"training {trainer.total} steps ({trainer.steps_per_epoch} per epoch), rank {config.network_dim}, "
        f"{config.optimizer}, lr {config.unet_lr:g}")
    outcome = trainer.run(report=report, should_stop=cancel.exists, log=log)
    hours = outcome.seconds / 3600
    price = gpu_hour_price((job.request.get("local") or {}).get("gpu_hour_usd")) if config.device != "cpu" else 0.0
    cost = round(hours * price, 6)
    if outcome.canceled:
        log(f"canceled at step {outcome.step}; the last checkpoint is kept")
        job.update(actual_usd=cost)
        return 0
    by_folder: dict[str, list[str]] = {}
    for item in items:
        by_folder.setdefault(f"{item.repeats}_{item.folder}" if item.repeats > 1 and not item.folder[:1].isdigit()
                             else item.folder, []).append(item.caption)
    base = Path(config.base)
    metadata = {
        "ss_network_module": "networks.lora", "ss_network_dim": config.network_dim,
        "ss_network_alpha": config.network_alpha, "ss_base_model_version": BASE_MODEL_VERSION[config.family],
        "ss_sd_model_name": base.name, "ss_new_sd_model_hash": model_hash(base),
        "ss_resolution": f"({outcome.resolution[0]}, {outcome.resolution[1]})",
        "ss_max_train_steps": outcome.total, "ss_steps": outcome.step, "ss_epoch": -(-outcome.step // trainer.steps_per_epoch),
        "ss_num_train_images": sum(i.repeats for i in items), "ss_batch_size_per_device": config.batch_size,
        "ss_learning_rate": config.unet_lr, "ss_unet_lr": config.unet_lr, "ss_text_encoder_lr": config.text_encoder_lr,
        "ss_optimizer": config.optimizer, "ss_lr_scheduler": config.lr_scheduler, "ss_lr_warmup_steps": config.lr_warmup_steps,
        "ss_seed": config.seed, "ss_mixed_precision": config.mixed_precision,
        "ss_gradient_checkpointing": config.gradient_checkpointing, "ss_cache_latents": config.cache_latents,
        "ss_enable_bucket": config.enable_bucket, "ss_bucket_info": metadata_json({"buckets": outcome.buckets}),
        "ss_flip_aug": config.flip_aug, "ss_shuffle_caption": config.shuffle_caption,
        "ss_keep_tokens": config.keep_tokens, "ss_caption_dropout_rate": config.caption_dropout_rate,
        "ss_tag_frequency": metadata_json(tag_frequency(by_folder)), "ss_output_name": config.output_name,
        "ss_training_started_at": started_at, "ss_training_finished_at": time.time(),
        "ss_training_comment": f"trigger word: {config.trigger_word}", "ss_v2": False,
        "modelspec.architecture": "stable-diffusion-v1/lora" if config.family == "sd15" else "stable-diffusion-xl-v1-base/lora",
        BASE_PATH_KEY: str(base.resolve()),
    }
    lora = save_kohya(folder / "lora.safetensors", outcome.lora or {}, {k: _text(v) for k, v in metadata.items()})
    log(f"finished {outcome.step} steps in {outcome.seconds:.1f} s; LoRA {lora}")
    first, final = outcome.losses[: max(1, len(outcome.losses) // 10)], outcome.losses[-max(1, len(outcome.losses) // 10):]
    metrics = {"steps": outcome.step, "seconds": round(outcome.seconds, 3),
               "steps_per_s": round((outcome.step - outcome.started_from) / max(outcome.seconds, 1e-9), 3),
        "loss_first": sum(first) / len(first), "loss_last": sum(final) / len(final), "losses": outcome.losses}
    job.report(step=outcome.step, total=outcome.total, loss=round(outcome.losses[-1], 6) if outcome.losses else None,
               eta_s=0.0, message="done")
    job.update(expect_status=("processing",), status="succeeded", lora_path=str(lora), actual_usd=cost,
               metrics_json=json.dumps(metrics))
    return 0


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "True" if value else "False"
    return str(value)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
