"""How an emulated job moves: starting -> processing -> succeeded | failed | canceled | aborted.

One daemon thread per job sleeps through the configured queue and processing times, renders
outputs (while "processing", so a finish is not delayed by encoding), and sends webhooks. Cancel
and ``Cancel-After`` deadlines end a job early. Each job wakes only its own waiters.
"""

from __future__ import annotations

import base64
import io
import os
import re
import threading
import time
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from imagegen.testing import _images, _schemas, _weights
from imagegen.testing._delivery import DEFAULT_EVENTS
from imagegen.testing._state import Blob, JobRecord, VersionRecord

if TYPE_CHECKING:
    from imagegen.testing._fake import FakeReplicate

# cog-flux's message when the safety checker flags every image; BFL's for the pro models.
NSFW_ALL_FLAGGED = ("All generated images contained NSFW content. "
                    "Try running it again with a different prompt.")
NSFW_PRO = "The input or output was flagged as sensitive. (E005)"
_PROGRESS_THROTTLE_S = 0.5  # output/logs webhooks: at most one per 500 ms


def start_job(fake: FakeReplicate, job: JobRecord) -> None:
    threading.Thread(target=_run, args=(fake, job), name=f"fake-replicate-{job.id}",
                     daemon=True).start()


def cancel_job(fake: FakeReplicate, job: JobRecord) -> None:
    changed = fake._store.job_changed(job.id)
    with changed:
        if job.done:
            return
        job.status = "canceled"
        job.completed_at = time.time()
        changed.notify_all()
    emit(fake, job, "completed")


def emit(fake: FakeReplicate, job: JobRecord, event: str, *, last: dict | None = None) -> None:
    """Send ``event`` for ``job`` if it asked for it (throttling output/logs like Replicate)."""
    if not job.webhook:
        return
    wanted = job.webhook_events_filter or DEFAULT_EVENTS
    if event not in wanted:
        return
    if last is not None and event in ("output", "logs"):
        now = time.monotonic()
        if now - last.get("progress", -1e9) < _PROGRESS_THROTTLE_S and "completed" in wanted:
            return  # throttled: the completed delivery carries the newest state
        last["progress"] = now
    with fake._store.lock:
        payload = fake._job_json(job)
    if fake._webhooks is not None:
        fake._webhooks.send(job.id, event, job.webhook, payload)


def _wait_until(fake: FakeReplicate, job: JobRecord, until: float,
                changed: threading.Condition) -> bool:
    """Sleep until ``until``; False if the job ended (or the emulator stopped) meanwhile.

    The caller holds ``changed``.
    """
    while not job.done and not fake._store.closed:
        left = until - time.time()
        if left <= 0:
            return True
        changed.wait(left)
    return False


def _end_by_deadline(job: JobRecord, started: bool, changed: threading.Condition) -> None:
    job.status = "canceled" if started else "aborted"
    job.completed_at = time.time()
    changed.notify_all()


def _run(fake: FakeReplicate, job: JobRecord) -> None:
    store = fake._store
    changed = store.job_changed(job.id)
    last: dict = {}
    is_training = job.kind == "training"
    with changed:
        start_at = job.created_at + fake.queue_time_s
        if job.deadline is not None and job.deadline < start_at:
            if _wait_until(fake, job, job.deadline, changed):
                _end_by_deadline(job, False, changed)
            ended = True
        else:
            ended = not _wait_until(fake, job, start_at, changed)
        if not ended:
            job.status = "processing"
            job.started_at = time.time()
            job.logs = _first_logs(job)
            changed.notify_all()
    if ended:
        if not fake._store.closed:
            emit(fake, job, "completed")
        return
    emit(fake, job, "start")
    emit(fake, job, "logs", last=last)
    duration = fake.training_time_s if is_training else fake.processing_time_s
    if not is_training:
        _render_halfway(fake, job, duration, changed)
    with changed:
        finish_at = (job.started_at or time.time()) + duration
        if job.deadline is not None and job.deadline < finish_at:
            if _wait_until(fake, job, job.deadline, changed):
                _end_by_deadline(job, True, changed)
            ended = True
        else:
            ended = not _wait_until(fake, job, finish_at, changed)
    if ended:
        if not fake._store.closed:
            emit(fake, job, "completed")
        return

    try:
        outcome = _train(fake, job) if is_training else _predict(fake, job)
    except Exception as exc:  # an emulator bug must still end the job visibly
        outcome = ("failed", None, f"{type(exc).__name__}: {exc}")
    status, output, error = outcome
    with changed:
        if job.done:  # canceled while rendering
            ended = True
        else:
            if output is not None:
                job.output = output
                job.logs += "Done.\n" if not is_training else "Training complete.\n"
                changed.notify_all()
    if ended:
        if not fake._store.closed:
            emit(fake, job, "completed")
        return
    if output is not None:
        emit(fake, job, "output", last=last)
    with changed:
        if not job.done:
            job.status = status
            job.error = error
            job.completed_at = time.time()
            changed.notify_all()
    emit(fake, job, "completed")


def _first_logs(job: JobRecord) -> str:
    if job.kind == "training":
        steps = int(job.effective_input.get("steps", 1000))
        return (f"flux_train_replicate:   0%|          | 0/{steps} [00:00<?, ?it/s]\n"
                f"flux_train_replicate:  50%|#####     | {steps // 2}/{steps} "
                f"[00:01<00:01, 500.00it/s]\n")
    return f"Using seed: {job.seed}\n"


def _predict(fake: FakeReplicate, job: JobRecord) -> tuple[str, object, str | None]:
    spec, effective = job.spec, job.effective_input
    if fake.prediction_error:
        return ("failed", None, fake.prediction_error)
    prompt = str(effective.get("prompt", ""))
    flagged = (fake.nsfw_marker and fake.nsfw_marker.lower() in prompt.lower()
               and not effective.get("disable_safety_checker", False))
    if flagged:
        return ("failed", None, NSFW_ALL_FLAGGED if spec.output == "list" else NSFW_PRO)
    images = _render_outputs(job)  # cached by _render_halfway: normally no encoding here
    ext = _schemas.output_extension(effective, spec)
    mime = _images.MIME_TYPES[ext]
    paths = [f"/delivery/{job.id}/out-{i}.{ext}" for i in range(len(images))]
    urls = [fake.base_url + path for path in paths]
    data_urls = [f"data:{mime};base64," + base64.b64encode(data).decode() for data in images]
    with fake._store.lock:
        for path, data in zip(paths, images):
            fake._store.blobs[path] = Blob(data, mime)
        job.images, job.image_urls, job.image_data_urls = images, urls, data_urls
        job.image_mime = mime
        job.billing = _schemas.billing_metrics(
            spec, len(images), job.requested_size or (1024, 1024),
            [input_image_size(fake, url) for url in _schemas.input_image_urls(spec, effective)])
    return ("succeeded", urls if spec.output == "list" else urls[0], None)


def _render_outputs(job: JobRecord) -> list[bytes]:
    effective = job.effective_input
    ext = _schemas.output_extension(effective, job.spec)
    count = _schemas.output_count(job.spec, effective)
    quality = int(effective.get("output_quality", 80))
    return [_images.render_image(str(effective.get("prompt", "")), int(job.seed or 0), i,
                                 job.requested_size or (1024, 1024), ext, quality)
            for i in range(count)]


def _render_halfway(fake: FakeReplicate, job: JobRecord, duration: float,
                    changed: threading.Condition) -> None:
    """Encode the outputs halfway through processing, as the real model computes meanwhile:
    away from the burst of creates and from the burst of completions, which would otherwise
    queue on it. ``render_image`` caches them for ``_predict``."""
    with changed:
        halfway = (job.started_at or time.time()) + duration / 2
        if job.deadline is not None and job.deadline <= halfway:
            return  # it ends by its deadline first, and if not, _predict renders
        if not _wait_until(fake, job, halfway, changed):
            return
    try:
        _render_outputs(job)
    except Exception:  # noqa: BLE001 - _predict meets it again and fails the job visibly
        pass


def _train(fake: FakeReplicate, job: JobRecord) -> tuple[str, object, str | None]:
    effective = job.effective_input
    problem = _input_images_problem(fake, effective)
    if problem:
        return ("failed", None, problem)
    destination = fake._store.models.get(job.destination or "")
    if destination is None:  # deleted while training
        return ("failed", None, "The specified training destination does not exist")
    version_id = _schemas.synthetic_version_id(f"training:{job.id}")
    trained_spec = _schemas.ModelSpec(destination.full_name, version_id,
                                      _schemas.TRAINED_VERSION_INPUTS, "list",
                                      is_official=False, source="flux-fine-tuner output")
    tar_path = f"/delivery/{job.id}/trained_model.tar"
    fake._store_blob(tar_path, _weights.trained_model_tar(job.id, effective),
                     "application/x-tar")
    fake._store.add_version(destination, VersionRecord(version_id, destination.full_name,
                                                       trained_spec, time.time()))
    job.version_created = f"{destination.full_name}:{version_id}"
    return ("succeeded", {"version": job.version_created,
                          "weights": fake.base_url + tar_path}, None)


def _input_images_problem(fake: FakeReplicate, effective: dict) -> str | None:
    url = effective.get("input_images")
    if not url:
        if effective.get("skip_training_and_use_pretrained_hf_lora_url"):
            return None
        # Message chosen here; train.py's exact text for a missing dataset was not recorded.
        return "input_images is required"
    content = _resolve_input_file(fake, str(url))
    if content is None:
        # A remote URL the emulator cannot fetch: judge by its name, as suffix checks do.
        ok = urlsplit(str(url)).path.lower().endswith((".zip", ".tar"))
    else:
        ok = content.startswith(b"PK\x03\x04") or _is_tar(content)
    return None if ok else "input_images must be a zip file"


def _resolve_input_file(fake: FakeReplicate, url: str) -> bytes | None:
    if url.startswith("data:"):
        try:
            return base64.b64decode(url.split(",", 1)[1])
        except (IndexError, ValueError):
            return b""
    match = re.search(r"/v1/files/([^/?#]+)", url)
    if match and url.startswith(fake.base_url):
        record = fake._store.files.get(match.group(1))
        return record.content if record else b""
    return None


def input_image_size(fake: FakeReplicate, url: str) -> tuple[int, int] | None:
    """An input image's width and height, when the emulator holds its bytes (a data: URL or
    one of its own files); None for a remote URL or bytes that are not an image."""
    content = _resolve_input_file(fake, url)
    if not content:
        return None
    try:
        from PIL import Image

        with Image.open(io.BytesIO(content)) as image:
            return image.size
    except Exception:  # noqa: BLE001 - not an image: the model would fail on it, not the size
        return None


def _is_tar(content: bytes) -> bool:
    return len(content) > 262 and content[257:262] == b"ustar"


def new_seed() -> int:
    # cog-flux draws a 16-bit seed from os.urandom when none is given.
    return int.from_bytes(os.urandom(2), "big")
