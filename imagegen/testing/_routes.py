"""The emulator's endpoints: predictions, models, versions, trainings, files, webhooks secret.

Each route takes a parsed ``Call`` and returns a ``Reply`` or raises ``ApiError``; status codes
and bodies follow the research note on Replicate (§3, §6, §7, §12).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from imagegen.testing import _lifecycle, _schemas
from imagegen.testing._delivery import EVENTS, loopback_problem
from imagegen.testing._faults import FaultPlan
from imagegen.testing._http import (
    ApiError,
    Reply,
    bad_request,
    invalid_input,
    invalid_version,
    not_found,
    paginate,
)
from imagegen.testing._multipart import parse_multipart
from imagegen.testing._state import TERMINAL, FileRecord, JobRecord, ModelRecord, new_id

if TYPE_CHECKING:
    from imagegen.testing._fake import FakeReplicate

HARDWARE = [  # replicate.com/pricing SKUs
    {"name": "CPU", "sku": "cpu"}, {"name": "Nvidia T4 GPU", "sku": "gpu-t4"},
    {"name": "Nvidia A40 GPU", "sku": "gpu-a40-small"},
    {"name": "Nvidia A40 (Large) GPU", "sku": "gpu-a40-large"},
    {"name": "Nvidia L40S GPU", "sku": "gpu-l40s"},
    {"name": "Nvidia A100 (80GB) GPU", "sku": "gpu-a100-large"},
    {"name": "Nvidia H100 GPU", "sku": "gpu-h100"},
]
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass
class Call:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes
    params: dict[str, str]
    fault: FaultPlan = field(default_factory=FaultPlan)

    def json(self) -> Any:
        if not self.body:
            return {}
        try:
            return json.loads(self.body)
        except ValueError:
            raise bad_request("Request body is not valid JSON") from None


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern
    handler: Callable[[FakeReplicate, Call], Reply]
    is_create: bool = False
    auth: bool = True


# ---------------------------------------------------------------- predictions

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
        job.requested_size = _schemas.requested_size(spec, effective)
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
    with store.changed:
        while not (job.done or (with_output and job.output is not None)):
            left = deadline_mono - time.monotonic()
            if left <= 0:
                break
            store.changed.wait(left)
        data_urls = fake.data_urls in ("sync", "always")
        snapshot = fake._job_json(job, data_urls=data_urls)
    if with_output and snapshot["output"] is not None and snapshot["status"] == "succeeded":
        # What Replicate's sync mode often answers: outputs ready, status still processing.
        snapshot.update(status="processing", completed_at=None, metrics=None)
    return Reply(201, snapshot, headers)


def _official_or_error(fake: FakeReplicate, owner: str, name: str) -> ModelRecord:
    model = fake._store.models.get(f"{owner}/{name}")
    if model is None:
        raise not_found()
    return model


def create_model_prediction(fake: FakeReplicate, call: Call) -> Reply:
    model = _official_or_error(fake, call.params["owner"], call.params["name"])
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
                       body=_body_dict(call))


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
                       spec=version.spec, body=_body_dict(call), deployment=name)


def create_prediction(fake: FakeReplicate, call: Call) -> Reply:
    body = _body_dict(call)
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


def _body_dict(call: Call) -> dict:
    body = call.json()
    if not isinstance(body, dict):
        raise bad_request("Request body must be a JSON object")
    return body


def _job(fake: FakeReplicate, table: dict[str, JobRecord], job_id: str) -> JobRecord:
    job = table.get(job_id)
    if job is None:
        raise not_found()
    return job


def get_prediction(fake: FakeReplicate, call: Call) -> Reply:
    job = _job(fake, fake._store.predictions, call.params["id"])
    with fake._store.lock:
        return Reply(200, fake._job_json(job, data_urls=fake.data_urls == "always"))


def cancel_prediction(fake: FakeReplicate, call: Call) -> Reply:
    job = _job(fake, fake._store.predictions, call.params["id"])
    _lifecycle.cancel_job(fake, job)
    with fake._store.lock:
        return Reply(200, fake._job_json(job))


def _created_filter(call: Call) -> Callable[[JobRecord], bool]:
    def parse(name: str) -> float | None:
        text = call.query.get(name)
        if not text:
            return None
        try:
            return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
        except ValueError:
            raise bad_request(f"{name} must be an ISO 8601 date-time") from None

    # Compare in whole microseconds: the precision of the created_at strings clients see.
    after, before = parse("created_after"), parse("created_before")
    low = round(after * 1_000_000) if after is not None else None
    high = round(before * 1_000_000) if before is not None else None

    def keep(job: JobRecord) -> bool:
        created = round(job.created_at * 1_000_000)
        return (low is None or created > low) and (high is None or created < high)

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
    job = _job(fake, fake._store.predictions, call.params["id"])

    def events():
        with fake._store.changed:
            fake._store.changed.wait_for(lambda: job.done, timeout=60)
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


# ---------------------------------------------------------------- models and versions

def create_model(fake: FakeReplicate, call: Call) -> Reply:
    body = _body_dict(call)
    problems = [{"type": "required", "field": "(root)", "description": f"{k} is required"}
                for k in ("owner", "name", "visibility", "hardware") if not body.get(k)]
    if body.get("visibility") and body["visibility"] not in ("public", "private"):
        problems.append({"type": "enum", "field": "visibility", "description":
                         'visibility must be one of the following: "public", "private"'})
    if body.get("hardware") and body["hardware"] not in {h["sku"] for h in HARDWARE}:
        problems.append({"type": "enum", "field": "hardware",
                         "description": "hardware must be a SKU listed by GET /v1/hardware"})
    if problems:
        raise invalid_input(problems)
    if body["owner"] != fake.username:
        # Body chosen here: the owner must be the token's account (OpenAPI docstring).
        raise ApiError(403, {"title": "Forbidden", "status": 403,
                             "detail": f"You can only create models owned by {fake.username}"})
    key = f"{body['owner']}/{body['name']}"
    with fake._store.lock:
        if key in fake._store.models:
            raise ApiError(409, {"title": "Conflict", "status": 409,
                                 "detail": f"A model named {key} already exists"})
        model = ModelRecord(
            body["owner"], body["name"], body["visibility"], body["hardware"],
            description=body.get("description"), github_url=body.get("github_url"),
            paper_url=body.get("paper_url"), license_url=body.get("license_url"),
            cover_image_url=body.get("cover_image_url"))
        fake._store.add_model(model)
        return Reply(201, model.to_json())


def _model(fake: FakeReplicate, call: Call) -> ModelRecord:
    model = fake._store.models.get(f"{call.params['owner']}/{call.params['name']}")
    if model is None:
        raise not_found()
    return model


def get_model(fake: FakeReplicate, call: Call) -> Reply:
    with fake._store.lock:
        return Reply(200, _model(fake, call).to_json())


def delete_model(fake: FakeReplicate, call: Call) -> Reply:
    with fake._store.lock:
        model = _model(fake, call)
        if model.owner != fake.username:
            raise ApiError(403, {"title": "Forbidden", "status": 403,
                                 "detail": "You can only delete your own models"})
        del fake._store.models[model.full_name]
    return Reply(204)


def list_models(fake: FakeReplicate, call: Call) -> Reply:
    with fake._store.lock:
        models = list(fake._store.models.values())
        order = {m.full_name: i for i, m in enumerate(models)}
        return Reply(200, paginate(models, lambda m: order[m.full_name], ModelRecord.to_json,
                                   fake.page_size, f"{fake.base_url}/v1/models", call.query))


def list_versions(fake: FakeReplicate, call: Call) -> Reply:
    with fake._store.lock:
        model = _model(fake, call)
        order = {v.id: i for i, v in enumerate(model.versions)}
        url = f"{fake.base_url}/v1/models/{model.full_name}/versions"
        return Reply(200, paginate(model.versions, lambda v: order[v.id],
                                   lambda v: v.to_json(), fake.page_size, url, call.query))


def get_version(fake: FakeReplicate, call: Call) -> Reply:
    with fake._store.lock:
        model = _model(fake, call)
        version = next((v for v in model.versions if v.id == call.params["version"]), None)
        if version is None:
            raise not_found()
        return Reply(200, version.to_json())


# ---------------------------------------------------------------- trainings

def create_training(fake: FakeReplicate, call: Call) -> Reply:
    body = _body_dict(call)
    model = _model(fake, call)
    version = next((v for v in model.versions if v.id == call.params["version"]), None)
    if version is None:
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
    job = _job(fake, fake._store.trainings, call.params["id"])
    with fake._store.lock:
        return Reply(200, fake._job_json(job))


def cancel_training(fake: FakeReplicate, call: Call) -> Reply:
    job = _job(fake, fake._store.trainings, call.params["id"])
    _lifecycle.cancel_job(fake, job)
    with fake._store.lock:
        return Reply(200, fake._job_json(job))


# ---------------------------------------------------------------- files

def create_file(fake: FakeReplicate, call: Call) -> Reply:
    content_type = call.headers.get("content-type", "")
    parts = parse_multipart(content_type, call.body)
    content = parts.get("content")
    if content is None:
        raise invalid_input([{"type": "required", "field": "(root)",
                              "description": "content is required"}])
    filename = _part_text(parts.get("filename")) or content.filename or "file"
    file_type = (_part_text(parts.get("type")) or content.content_type
                 or "application/octet-stream")
    metadata: Any = {}
    if parts.get("metadata") is not None:
        try:
            metadata = json.loads(parts["metadata"].data or b"{}")
        except ValueError:
            raise bad_request("metadata must be a JSON object") from None
    if len(filename.encode()) > 255:
        raise invalid_input([{"type": "string_lte", "field": "filename",
                              "description": "filename must be at most 255 bytes"}])
    record = FileRecord(FileRecord.make_id(), filename, file_type, content.data,
                        metadata if isinstance(metadata, dict) else {}, time.time(),
                        fake.base_url, fake._store.next_seq())
    with fake._store.lock:
        fake._store.files[record.id] = record
    return Reply(201, record.to_json())


def _part_text(part: Any) -> str | None:
    return part.data.decode("utf-8", "replace").strip() if part is not None else None


def _file(fake: FakeReplicate, call: Call) -> FileRecord:
    record = fake._store.files.get(call.params["id"])
    if record is None:
        raise not_found()
    return record


def get_file(fake: FakeReplicate, call: Call) -> Reply:
    return Reply(200, _file(fake, call).to_json())


def download_file(fake: FakeReplicate, call: Call) -> Reply:
    record = _file(fake, call)
    return Reply(200, record.content, content_type=record.content_type)


def delete_file(fake: FakeReplicate, call: Call) -> Reply:
    with fake._store.lock:
        _file(fake, call)
        del fake._store.files[call.params["id"]]
    return Reply(204)


def list_files(fake: FakeReplicate, call: Call) -> Reply:
    with fake._store.lock:
        files = list(fake._store.files.values())
        return Reply(200, paginate(files, lambda f: f.seq, FileRecord.to_json, fake.page_size,
                                   f"{fake.base_url}/v1/files", call.query))


# ---------------------------------------------------------------- account and misc

def webhook_secret(fake: FakeReplicate, call: Call) -> Reply:
    return Reply(200, {"key": fake.webhook_secret})


def get_account(fake: FakeReplicate, call: Call) -> Reply:
    return Reply(200, {"type": "user", "username": fake.username, "name": fake.username,
                       "github_url": None})


def list_hardware(fake: FakeReplicate, call: Call) -> Reply:
    return Reply(200, HARDWARE)


def delivery(fake: FakeReplicate, call: Call) -> Reply:
    blob = fake._store.blobs.get(call.path)
    if blob is None:
        raise not_found()
    return Reply(200, blob.content, content_type=blob.content_type)


def _r(method: str, pattern: str, handler: Callable, **kw: Any) -> Route:
    regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern)
    return Route(method, re.compile(f"^{regex}$"), handler, **kw)


ROUTES: tuple[Route, ...] = (
    _r("POST", "/v1/predictions", create_prediction, is_create=True),
    _r("GET", "/v1/predictions",
       lambda f, c: list_jobs(f, c, f._store.predictions, "predictions")),
    _r("GET", "/v1/predictions/{id}", get_prediction),
    _r("POST", "/v1/predictions/{id}/cancel", cancel_prediction),
    _r("GET", "/v1/predictions/{id}/stream", stream_prediction),
    _r("POST", "/v1/models/{owner}/{name}/predictions", create_model_prediction, is_create=True),
    _r("POST", "/v1/deployments/{owner}/{name}/predictions", create_deployment_prediction,
       is_create=True),
    _r("POST", "/v1/models", create_model),
    _r("GET", "/v1/models", list_models),
    _r("GET", "/v1/models/{owner}/{name}", get_model),
    _r("DELETE", "/v1/models/{owner}/{name}", delete_model),
    _r("GET", "/v1/models/{owner}/{name}/versions", list_versions),
    _r("GET", "/v1/models/{owner}/{name}/versions/{version}", get_version),
    _r("POST", "/v1/models/{owner}/{name}/versions/{version}/trainings", create_training,
       is_create=True),
    _r("GET", "/v1/trainings", lambda f, c: list_jobs(f, c, f._store.trainings, "trainings")),
    _r("GET", "/v1/trainings/{id}", get_training),
    _r("POST", "/v1/trainings/{id}/cancel", cancel_training),
    _r("POST", "/v1/files", create_file),
    _r("GET", "/v1/files", list_files),
    _r("GET", "/v1/files/{id}", get_file),
    _r("DELETE", "/v1/files/{id}", delete_file),
    _r("GET", "/v1/files/{id}/download", download_file),
    _r("GET", "/v1/webhooks/default/secret", webhook_secret),
    _r("GET", "/v1/account", get_account),
    _r("GET", "/v1/hardware", list_hardware),
    # Output files, like replicate.delivery: no token needed.
    _r("GET", "/delivery/{id}/{file}", delivery, auth=False),
)

__all__ = ["ROUTES", "Route", "Call", "TERMINAL"]
