"""Prediction and training endpoints: create (three routes, sync mode, deadlines), get, cancel,
list, stream. Bodies and codes follow the research note on Replicate (§3, §7.2).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from imagegen.testing import _lifecycle, _schemas
from imagegen.testing._call import Call, body_dict
from imagegen.testing._delivery import EVENTS, loopback_problem
from imagegen.testing._http import (
    ApiError,
    Reply,
    bad_request,
    invalid_input,
    invalid_version,
    not_found,
    paginate,
)
from imagegen.testing._resources import model_of
from imagegen.testing._state import JobRecord, ModelRecord, iso, new_id

if TYPE_CHECKING:
    from imagegen.testing._fake import FakeReplicate

_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def _parse_prefer_wait(headers: dict[str, str]) -> tuple[float, str] | None:
    for pref in (p.strip() for p in headers.get("prefer", "").split(",")):
        if pref == "wait":
            return (60.0, "wait")
        if pref.startswith("wait="):
            try:
                seconds = int(pref[5:])
            except ValueError:
                continue
            # Behaviour above 60 or below 1 is UNCONFIRMED; clamp to the documented range.
            return (float(min(max(seconds, 1), 60)), f"wait={seconds}")
    return None


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")


def _parse_cancel_after(value: str) -> float:
    """Seconds in a Go-style duration ("30s", "1m", "1h30m", "500ms"); grammar UNCONFIRMED."""
    text = value.strip()
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise bad_request(f"Invalid Cancel-After duration: {value!r}")
    scale = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    return sum(float(n) * scale[u] for n, u in parts)


def _webhook_fields(body: dict) -> tuple[str | None, tuple[str, ...]]:
    webhook = body.get("webhook")
    events = body.get("webhook_events_filter") or ()
    if webhook is None and body.get("webhook_completed"):
        # Legacy field the v1 client still sends: a URL told only about completion.
        webhook, events = body["webhook_completed"], ("completed",)
    if webhook is not None:
        problem = loopback_problem(str(webhook))
        if problem:
            raise invalid_input([{"type": "format", "field": "webhook", "description": problem}])
    if not isinstance(events, (list, tuple)) or any(e not in EVENTS for e in events):
        allowed = ", ".join(f'"{e}"' for e in EVENTS)
        raise invalid_input([{"type": "enum", "field": "webhook_events_filter",
                              "description": f"webhook_events_filter items must be one of "
                                             f"the following: {allowed}"}])
    return webhook, tuple(events)


def _create_job(fake: FakeReplicate, call: Call, *, kind: str, model: ModelRecord,
                version: str, spec: _schemas.ModelSpec, body: dict,
                deployment: str | None = None, destination: str | None = None) -> Reply:
    given = body.get("input", {})
    problems = _schemas.validate_input(spec.inputs, given,
                                       reject_unknown=fake.reject_unknown_inputs)
    if problems:
        raise invalid_input(problems)
    webhook, events = _webhook_fields(body)
    deadline = None
    if "cancel-after" in call.headers:
        deadline = time.time() + _parse_cancel_after(call.headers["cancel-after"])
    effective = _schemas.with_defaults(spec.inputs, given)
    seed = effective.get("seed")
    job = JobRecord(
        id=new_id(), kind=kind, model=model.full_name, version=version, spec=spec,
        input=given, effective_input=effective, base_url=fake.base_url,
        seq=fake._store.next_seq(), deployment=deployment, deadline=deadline,
        webhook=webhook, webhook_events_filter=events, destination=destination,
        seed=int(seed) if seed is not None else _lifecycle.new_seed(),
    )
    if kind == "prediction":
        job.requested_size = _schemas.requested_size(
            spec, effective, lambda url: _lifecycle.input_image_size(fake, url))
    store = fake._store
    with store.lock:
        if kind == "prediction":
            store.predictions[job.id] = job
            store.prediction_creates += 1
        else:
            store.trainings[job.id] = job
            store.training_creates += 1
        model.run_count += 1
        created = fake._job_json(job)
    _lifecycle.start_job(fake, job)

    headers: dict[str, str] = {}
    prefer = _parse_prefer_wait(call.headers) if kind == "prediction" else None
    if prefer is None:
        return Reply(201, created, headers)
    hold_s, applied = prefer
    headers["Preference-Applied"] = applied
    headers["Location"] = created["urls"]["get"]  # docs mention it; cassettes don't show it
    with_output = call.fault.processing_with_output
    deadline_mono = time.monotonic() + hold_s
    changed = store.job_changed(job.id)
    with changed:
        while not (job.done or (with_output and job.output is not None) or store.closed):
            left = deadline_mono - time.monotonic()
            if left <= 0:
                break
            changed.wait(left)
        data_urls = fake.data_urls in ("sync", "always")
        snapshot = fake._job_json(job, data_urls=data_urls)
    if with_output and snapshot["output"] is not None and snapshot["status"] == "succeeded":
        # What Replicate's sync mode often answers: outputs ready, status still processing.
        snapshot.update(status="processing", completed_at=None, metrics=None)
    return Reply(201, snapshot, headers)


def _model_named(fake: FakeReplicate, owner: str, name: str) -> ModelRecord:
    model = fake._store.models.get(f"{owner}/{name}")
    if model is None:
        raise not_found()
    return model


def create_model_prediction(fake: FakeReplicate, call: Call) -> Reply:
    model = _model_named(fake, call.params["owner"], call.params["name"])
    if not model.is_official or model.latest_version is None:
        # A non-official model needs a version (replicate-python #340); body chosen here.
        raise ApiError(422, {"title": "Invalid version or not permitted",
                             "detail": f"{model.full_name} is not an official model; create "
                                       "the prediction with a version instead",
                             "status": 422})
    spec = model.latest_version.spec
    if spec.output == "training":
        raise invalid_version()
    pseudo = "dp-" + _schemas.synthetic_version_id(model.full_name)[:32]
    return _create_job(fake, call, kind="prediction", model=model, version=pseudo, spec=spec,
                       body=body_dict(call))


def create_deployment_prediction(fake: FakeReplicate, call: Call) -> Reply:
    name = f"{call.params['owner']}/{call.params['name']}"
    target = fake._store.deployments.get(name)
    if target is None:
        raise not_found()
    model = fake._store.models[target]
    version = model.latest_version
    if version is None or version.spec.output == "training":
        raise invalid_version()
    return _create_job(fake, call, kind="prediction", model=model, version=version.id,
                       spec=version.spec, body=body_dict(call), deployment=name)


def create_prediction(fake: FakeReplicate, call: Call) -> Reply:
    body = body_dict(call)
    ref = str(body.get("version") or "")
    if not ref:
        raise invalid_input([{"type": "required", "field": "(root)",
                              "description": "version is required"}])
    store = fake._store
    model: ModelRecord | None = None
    owner_name, _, version_id = ref.partition(":")
    if _HEX64.match(ref):
        version_rec = store.versions.get(ref)
    elif version_id:
        version_rec = store.versions.get(version_id)
        if version_rec is not None and version_rec.model != owner_name:
            version_rec = None
    else:  # "owner/name": allowed for official models (OpenAPI docstring)
        model = store.models.get(ref)
        version_rec = model.latest_version if model and model.is_official else None
    if version_rec is None or version_rec.spec.output == "training":
        raise invalid_version()
    model = store.models[version_rec.model]
    return _create_job(fake, call, kind="prediction", model=model, version=version_rec.id,
                       spec=version_rec.spec, body=body)


def _job(table: dict[str, JobRecord], job_id: str) -> JobRecord:
    job = table.get(job_id)
    if job is None:
        raise not_found()
    return job


def get_prediction(fake: FakeReplicate, call: Call) -> Reply:
    job = _job(fake._store.predictions, call.params["id"])
    with fake._store.lock:
        return Reply(200, fake._job_json(job, data_urls=fake.data_urls == "always"))


def cancel_prediction(fake: FakeReplicate, call: Call) -> Reply:
    job = _job(fake._store.predictions, call.params["id"])
    _lifecycle.cancel_job(fake, job)
    with fake._store.lock:
        return Reply(200, fake._job_json(job))


def _created_filter(call: Call) -> Callable[[JobRecord], bool]:
    def parse(text: str) -> datetime:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))

    bounds = {}
    for name in ("created_after", "created_before"):
        if call.query.get(name):
            try:
                bounds[name] = parse(call.query[name])
            except ValueError:
                raise bad_request(f"{name} must be an ISO 8601 date-time") from None

    def keep(job: JobRecord) -> bool:
        # Compare the created_at clients see (microsecond text), not the raw float.
        created = parse(iso(job.created_at) or "")
        return (("created_after" not in bounds or created > bounds["created_after"])
                and ("created_before" not in bounds or created < bounds["created_before"]))

    return keep


def list_jobs(fake: FakeReplicate, call: Call, table: dict[str, JobRecord],
              collection: str) -> Reply:
    keep = _created_filter(call)
    with fake._store.lock:
        items = [j for j in table.values() if keep(j)]
        page = paginate(items, lambda j: j.seq, fake._job_json, fake.page_size,
                        f"{fake.base_url}/v1/{collection}", call.query)
    return Reply(200, page)


def stream_prediction(fake: FakeReplicate, call: Call) -> Reply:
    """Server-sent events: each output, then ``done`` (Flux does not stream tokens)."""
    job = _job(fake._store.predictions, call.params["id"])

    def events():
        changed = fake._store.job_changed(job.id)
        with changed:
            changed.wait_for(lambda: job.done or fake._store.closed, timeout=60)
            outputs = job.output if isinstance(job.output, list) else (
                [job.output] if job.output is not None else [])
            status, error = job.status, job.error
        stamp = int(job.created_at)
        for i, url in enumerate(outputs):
            yield f"event: output\nid: {stamp}:{i}\ndata: {url}\n\n".encode()
        if status == "failed":
            yield (f"event: error\nid: {stamp}:e\ndata: "
                   f"{json.dumps({'detail': error})}\n\n").encode()
        reason = {"succeeded": {}, "failed": {"reason": "error"}}.get(status,
                                                                     {"reason": "canceled"})
        yield f"event: done\nid: {stamp}:d\ndata: {json.dumps(reason)}\n\n".encode()

    return Reply(200, None, {"Cache-Control": "no-store"}, "text/event-stream", stream=events)


def create_training(fake: FakeReplicate, call: Call) -> Reply:
    body = body_dict(call)
    model = model_of(fake, call)
    version = next((v for v in model.versions if v.id == call.params["version"]), None)
    if version is None:
        # Only registered versions train here (the trainer's known ids are preloaded), so a
        # typo in a hard-coded version fails loudly instead of silently using another one.
        raise not_found()
    if version.spec.output != "training":
        raise ApiError(422, {"title": "Model is not trainable", "status": 422,
                             "detail": f"{model.full_name} does not support training"})
    destination = str(body.get("destination") or "")
    with fake._store.lock:
        dest_model = fake._store.models.get(destination)
    if dest_model is None or dest_model.owner != fake.username:
        raise ApiError(404, {"detail": "The specified training destination does not exist",
                             "status": 404})
    return _create_job(fake, call, kind="training", model=model, version=version.id,
                       spec=version.spec, body=body, destination=destination)


def get_training(fake: FakeReplicate, call: Call) -> Reply:
    job = _job(fake._store.trainings, call.params["id"])
    with fake._store.lock:
        return Reply(200, fake._job_json(job))


def cancel_training(fake: FakeReplicate, call: Call) -> Reply:
    job = _job(fake._store.trainings, call.params["id"])
    _lifecycle.cancel_job(fake, job)
    with fake._store.lock:
        return Reply(200, fake._job_json(job))


