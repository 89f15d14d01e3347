"""What the emulator holds: predictions, trainings, files, models and versions, as records.

Each record renders itself as the JSON Replicate returns (research note §3.3, §6.1, §7).
All mutation happens under ``Store.lock``; each job's condition (``Store.job_changed``) wakes
only the waiters on that job, so a hundred waiting clients are not woken by every completion.
"""

from __future__ import annotations

import base64
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from imagegen.testing._schemas import ModelSpec

TERMINAL = ("succeeded", "failed", "canceled", "aborted")
_ID_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"


def new_id() -> str:
    """A 26-character lowercase id, like ``0fqzzq8p2srgm0cjb2zaj681jr``."""
    # One read of the system's randomness (130 of 136 bits used): each read releases the GIL,
    # and 26 of them per create made a burst of creates queue behind the other threads.
    bits = int.from_bytes(secrets.token_bytes(17), "big")
    return "".join(_ID_ALPHABET[(bits >> (5 * i)) & 31] for i in range(26))


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class VersionRecord:
    id: str
    model: str  # owner/name
    spec: ModelSpec  # inputs and output shape of this version
    created_at: float
    cog_version: str = "0.9.9"

    def to_json(self) -> dict:
        from imagegen.testing._schemas import openapi_schema

        return {"id": self.id, "created_at": iso(self.created_at),
                "cog_version": self.cog_version,
                "openapi_schema": openapi_schema(self.spec.inputs, self.spec.output)}


@dataclass
class ModelRecord:
    owner: str
    name: str
    visibility: str = "public"
    hardware: str = "cpu"
    description: str | None = None
    github_url: str | None = None
    paper_url: str | None = None
    license_url: str | None = None
    cover_image_url: str | None = None
    is_official: bool = False
    run_count: int = 0
    versions: list[VersionRecord] = field(default_factory=list)  # newest last
    created_at: float = field(default_factory=time.time)

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"

    @property
    def latest_version(self) -> VersionRecord | None:
        return self.versions[-1] if self.versions else None

    def to_json(self) -> dict:
        latest = self.latest_version
        return {
            "url": f"https://replicate.com/{self.owner}/{self.name}",
            "owner": self.owner, "name": self.name, "description": self.description,
            "visibility": self.visibility, "github_url": self.github_url,
            "paper_url": self.paper_url, "license_url": self.license_url,
            "run_count": self.run_count, "cover_image_url": self.cover_image_url,
            "default_example": None, "is_official": self.is_official,
            "latest_version": latest.to_json() if latest else None,
        }


@dataclass
class FileRecord:
    id: str
    name: str
    content_type: str
    content: bytes
    metadata: dict
    created_at: float
    base_url: str
    seq: int = 0

    @staticmethod
    def make_id() -> str:
        # The recorded id is base64 of a UUID's text (cassette file-operations).
        return base64.b64encode(str(uuid.uuid4()).encode()).decode().rstrip("=")

    def to_json(self) -> dict:
        import hashlib

        md5 = hashlib.md5(self.content).hexdigest()  # noqa: S324 - an etag, as Replicate's
        return {
            "id": self.id, "name": self.name, "content_type": self.content_type,
            "size": len(self.content), "etag": md5,
            "checksums": {"sha256": hashlib.sha256(self.content).hexdigest(), "md5": md5},
            "metadata": self.metadata, "created_at": iso(self.created_at),
            # 24 h after creation, as in the one recorded sample (policy UNCONFIRMED).
            "expires_at": iso(self.created_at + 24 * 3600),
            "urls": {"get": f"{self.base_url}/v1/files/{self.id}"},
        }


@dataclass
class JobRecord:
    """A prediction or a training: the same lifecycle, the same JSON shape."""

    id: str
    kind: str  # "prediction" or "training"
    model: str
    version: str
    spec: ModelSpec
    input: dict  # exactly what the client sent
    effective_input: dict  # with the model's defaults
    base_url: str
    seq: int
    created_at: float = field(default_factory=time.time)
    status: str = "starting"
    started_at: float | None = None
    completed_at: float | None = None
    output: Any = None
    logs: str = ""
    error: str | None = None
    data_removed: bool = False
    deployment: str | None = None
    deadline: float | None = None
    webhook: str | None = None
    webhook_events_filter: tuple[str, ...] = ()
    destination: str | None = None  # trainings
    seed: int | None = None
    requested_size: tuple[int, int] | None = None  # what the real model would render
    images: list[bytes] = field(default_factory=list)
    image_urls: list[str] = field(default_factory=list)
    image_data_urls: list[str] = field(default_factory=list)  # the images as data: URLs
    image_mime: str = "image/webp"
    version_created: str | None = None  # trainings: "owner/name:<id>" once succeeded
    billing: dict = field(default_factory=dict)  # official models: the counts they are billed by

    @property
    def done(self) -> bool:
        return self.status in TERMINAL

    def metrics(self) -> dict | None:
        if not self.done or self.completed_at is None:
            return None
        start = self.started_at or self.completed_at
        timing = {"predict_time": round(self.completed_at - start, 6),
                  "total_time": round(self.completed_at - self.created_at, 6)}
        return {**self.billing, **timing} if self.status == "succeeded" else timing

    def output_json(self, data_urls: bool) -> Any:
        if self.output is None or not data_urls or not self.image_data_urls:
            return self.output
        encoded = self.image_data_urls  # encoded once, outside the store's lock
        return list(encoded) if isinstance(self.output, list) else encoded[0]

    def to_json(self, *, data_urls: bool = False) -> dict:
        collection = "predictions" if self.kind == "prediction" else "trainings"
        get_url = f"{self.base_url}/v1/{collection}/{self.id}"
        urls = {"get": get_url, "cancel": f"{get_url}/cancel",
                "web": f"https://replicate.com/p/{self.id}"}
        if self.kind == "prediction":
            urls["stream"] = f"{self.base_url}/v1/predictions/{self.id}/stream"
        removed = self.data_removed
        body: dict[str, Any] = {
            "id": self.id, "model": self.model, "version": self.version,
            "input": None if removed else self.input,
            "logs": None if removed else self.logs,
            "output": None if removed else self.output_json(data_urls),
            "data_removed": removed, "error": self.error, "status": self.status,
            "source": "api", "created_at": iso(self.created_at),
            "started_at": iso(self.started_at), "completed_at": iso(self.completed_at),
            "metrics": self.metrics(), "urls": urls,
        }
        if self.kind == "prediction":
            body["deployment"] = self.deployment
            body["deadline"] = iso(self.deadline)
        else:
            body["destination"] = self.destination
        return body


@dataclass
class Blob:
    content: bytes
    content_type: str


class Store:
    """Every record the emulator holds, guarded by one lock."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._job_conditions: dict[str, threading.Condition] = {}
        self.predictions: dict[str, JobRecord] = {}
        self.trainings: dict[str, JobRecord] = {}
        self.files: dict[str, FileRecord] = {}
        self.models: dict[str, ModelRecord] = {}
        self.versions: dict[str, VersionRecord] = {}
        self.deployments: dict[str, str] = {}  # "owner/name" -> model "owner/name"
        self.blobs: dict[str, Blob] = {}  # served path -> bytes
        self.closed = False  # the emulator stopped: job threads end quietly
        self.prediction_creates = 0
        self.training_creates = 0
        self._seq = 0

    def next_seq(self) -> int:
        with self.lock:
            self._seq += 1
            return self._seq

    def add_model(self, record: ModelRecord) -> ModelRecord:
        with self.lock:
            self.models[record.full_name] = record
            for version in record.versions:
                self.versions[version.id] = version
            return record

    def add_version(self, model: ModelRecord, version: VersionRecord) -> None:
        with self.lock:
            model.versions.append(version)
            self.versions[version.id] = version

    def job_changed(self, job_id: str) -> threading.Condition:
        """The condition (on ``lock``) notified whenever job ``job_id`` changes."""
        with self.lock:
            condition = self._job_conditions.get(job_id)
            if condition is None:
                condition = self._job_conditions[job_id] = threading.Condition(self.lock)
            return condition

    def close(self) -> None:
        """Mark the store closed and wake every waiter, so job threads end quietly."""
        with self.lock:
            self.closed = True
            for condition in self._job_conditions.values():
                condition.notify_all()
