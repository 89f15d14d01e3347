"""Model, version, file and account endpoints, plus the served output files.

Bodies and codes follow the research note on Replicate (§6, §7.1).
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from imagegen.testing._call import Call, body_dict
from imagegen.testing._http import ApiError, Reply, bad_request, invalid_input, not_found, paginate
from imagegen.testing._multipart import parse_multipart
from imagegen.testing._state import FileRecord, ModelRecord

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


def create_model(fake: FakeReplicate, call: Call) -> Reply:
    body = body_dict(call)
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


def model_of(fake: FakeReplicate, call: Call) -> ModelRecord:
    model = fake._store.models.get(f"{call.params['owner']}/{call.params['name']}")
    if model is None:
        raise not_found()
    return model


def get_model(fake: FakeReplicate, call: Call) -> Reply:
    with fake._store.lock:
        return Reply(200, model_of(fake, call).to_json())


def delete_model(fake: FakeReplicate, call: Call) -> Reply:
    with fake._store.lock:
        model = model_of(fake, call)
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
        model = model_of(fake, call)
        order = {v.id: i for i, v in enumerate(model.versions)}
        url = f"{fake.base_url}/v1/models/{model.full_name}/versions"
        return Reply(200, paginate(model.versions, lambda v: order[v.id],
                                   lambda v: v.to_json(), fake.page_size, url, call.query))


def get_version(fake: FakeReplicate, call: Call) -> Reply:
    with fake._store.lock:
        model = model_of(fake, call)
        version = next((v for v in model.versions if v.id == call.params["version"]), None)
        if version is None:
            raise not_found()
        return Reply(200, version.to_json())


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

