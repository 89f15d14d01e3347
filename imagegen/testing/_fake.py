"""``FakeReplicate``: a Replicate API emulator on 127.0.0.1 for offline tests.

It serves ``/v1/...`` like api.replicate.com, so the official ``replicate`` client and the
SDK's adapter run against it unchanged; everything it received is kept for assertions.
"""

from __future__ import annotations

import base64
import secrets
import threading
import time
import weakref
from collections import deque
from typing import Any

from imagegen.testing import _schemas
from imagegen.testing._delivery import WebhookDelivery, WebhookSender
from imagegen.testing._faults import FaultInjector, Faults
from imagegen.testing._server import RecordedRequest, _Server, make_server
from imagegen.testing._state import Blob, FileRecord, JobRecord, ModelRecord, Store, VersionRecord


class FakeReplicate:
    """A real HTTP server that behaves like Replicate's API; use it as a context manager.

    ``base_url`` is the API root without ``/v1`` (``REPLICATE_BASE_URL``, or the official
    client's ``base_url=``); ``api_token`` is the only token it accepts.
    """

    def __init__(
        self,
        *,
        api_token: str | None = None,
        username: str = "fake-user",
        processing_time_s: float = 0.05,
        queue_time_s: float = 0.0,
        training_time_s: float = 0.2,
        data_urls: str = "sync",
        page_size: int = 100,
        reject_unknown_inputs: bool = True,
        webhook_secret: str | None = None,
        webhook_retries: int = 2,
        port: int = 0,
    ) -> None:
        if data_urls not in ("sync", "always", "never"):
            raise ValueError("data_urls must be 'sync', 'always' or 'never'")
        self.api_token = api_token or "r8_fake_" + secrets.token_hex(16)
        self.username = username
        #: Seconds a job stays ``processing`` (trainings: ``training_time_s``).
        self.processing_time_s = processing_time_s
        #: Seconds a job stays ``starting`` before it is picked up (a cold boot).
        self.queue_time_s = queue_time_s
        self.training_time_s = training_time_s
        #: ``"sync"``: ``Prefer: wait`` answers carry ``data:`` URLs (as Replicate's sync mode
        #: does) and GETs carry served URLs; ``"always"`` / ``"never"`` for every answer.
        self.data_urls = data_urls
        self.page_size = page_size
        self.reject_unknown_inputs = reject_unknown_inputs
        #: When set, every prediction fails with this ``error`` text.
        self.prediction_error: str | None = None
        #: A prompt containing this word (safety checker on) is "flagged as NSFW".
        self.nsfw_marker: str | None = "nsfw"
        #: Seconds after completion when inputs, outputs and logs are removed (None: never).
        self.data_retention_s: float | None = None
        #: Requests per minute before a 429, per bucket (None: unlimited).
        self.rate_limit_create_per_minute: int | None = None
        self.rate_limit_per_minute: int | None = None
        self.webhook_secret = webhook_secret or (
            "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode())
        self._webhook_retries = webhook_retries
        self._host, self._port = "127.0.0.1", port  # loopback only, by design
        self._store = Store()
        self._faults = FaultInjector()
        self._requests: list[RecordedRequest] = []
        self._hits: dict[str, deque] = {"create": deque(), "other": deque()}
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._webhooks: WebhookSender | None = None
        self.base_url = ""
        self._seed_models()

    # ------------------------------------------------------------ lifecycle

    def start(self) -> FakeReplicate:
        if self._server is not None:
            return self
        self._store.closed = False
        server = self._server = make_server(self, self._host, self._port)
        self.base_url = f"http://{self._host}:{server.server_port}"
        self._webhooks = WebhookSender(self.webhook_secret, self._webhook_retries)
        self._thread = threading.Thread(target=server.serve_forever,
                                        kwargs={"poll_interval": 0.05},
                                        name="fake-replicate", daemon=True)
        self._thread.start()
        # Stop with the object even when a test forgets to.
        self._finalizer = weakref.finalize(self, _shutdown, server, self._webhooks, self._store)
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._finalizer()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None

    def __enter__(self) -> FakeReplicate:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def __repr__(self) -> str:  # never shows the token
        return f"FakeReplicate(base_url={self.base_url!r})"

    # ------------------------------------------------------------ what tests read

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received, oldest first (Authorization redacted)."""
        with self._store.lock:
            return list(self._requests)

    def requests_to(self, path_prefix: str, method: str | None = None) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.startswith(path_prefix)
                and (method is None or r.method == method.upper())]

    @property
    def predictions(self) -> dict[str, JobRecord]:
        with self._store.lock:
            return dict(self._store.predictions)

    @property
    def trainings(self) -> dict[str, JobRecord]:
        with self._store.lock:
            return dict(self._store.trainings)

    @property
    def files(self) -> dict[str, FileRecord]:
        with self._store.lock:
            return dict(self._store.files)

    @property
    def models(self) -> dict[str, ModelRecord]:
        with self._store.lock:
            return dict(self._store.models)

    @property
    def delivered_files(self) -> dict[str, bytes]:
        """Files the emulator serves (output images, trained weights), by URL."""
        with self._store.lock:
            return {self.base_url + path: blob.content
                    for path, blob in self._store.blobs.items()}

    def expire_delivered_files(self) -> None:
        """Make every output and weights URL answer 404, as expired ones do on Replicate."""
        with self._store.lock:
            self._store.blobs.clear()

    @property
    def create_count(self) -> int:
        """Predictions created server-side (whatever the client saw)."""
        return self._store.prediction_creates

    @property
    def training_create_count(self) -> int:
        return self._store.training_creates

    @property
    def webhook_deliveries(self) -> list[WebhookDelivery]:
        return list(self._webhooks.deliveries) if self._webhooks else []

    def wait_for_webhooks(self, timeout: float = 5.0) -> list[WebhookDelivery]:
        """Wait until every queued delivery was attempted; return them all."""
        if self._webhooks is not None and not self._webhooks.wait_idle(timeout):
            raise TimeoutError("webhook deliveries still pending")
        return self.webhook_deliveries

    def wait_for(self, job_id: str, timeout: float = 5.0) -> JobRecord:
        """Wait until a prediction or training reaches a terminal status."""
        with self._store.lock:
            job = self._store.predictions.get(job_id) or self._store.trainings.get(job_id)
            if job is None:
                raise KeyError(job_id)
            changed = self._store.job_changed(job_id)
            if not changed.wait_for(lambda: job.done, timeout):
                raise TimeoutError(f"{job_id} is still {job.status}")
            return job

    # ------------------------------------------------------------ configuration

    @property
    def faults(self) -> Faults:
        return self._faults.faults

    @faults.setter
    def faults(self, value: Faults | None) -> None:
        self._faults.faults = value or Faults()

    def fail_next(self, kind: str, *, times: int = 1, on: str = "any",
                  method: str | None = None) -> None:
        """Script a fault for the next matching request(s).

        ``on`` is ``"any"``, ``"create"`` (prediction and training creates) or a path prefix.
        ``kind`` is one of ``"429"``, ``"5xx"``, ``"reset"``, ``"slow"``,
        ``"5xx_after_create"``, ``"reset_after_create"``, ``"processing_with_output"``,
        ``"late_commit"`` (a create committed only ``faults.late_commit_s`` after it arrived).
        """
        self._faults.script(kind, times, on, method)

    def clear_faults(self) -> None:
        self._faults.clear()
        self._faults.faults = Faults()

    def add_deployment(self, name: str, model: str) -> None:
        """Route ``POST /v1/deployments/{name}/predictions`` to ``model``'s latest version."""
        if model not in self._store.models:
            raise KeyError(f"unknown model {model!r}")
        self._store.deployments[name] = model

    def add_model(self, name: str, *, inputs: dict[str, _schemas.Field] | None = None,
                  output: str = "list", official: bool = False) -> VersionRecord:
        """Add a model with one version (inputs default to a trained Flux LoRA's)."""
        owner, _, short = name.partition("/")
        spec_inputs = inputs if inputs is not None else _schemas.TRAINED_VERSION_INPUTS
        version_id = _schemas.synthetic_version_id(f"{name}:{len(self._store.versions)}")
        spec = _schemas.ModelSpec(name, version_id, spec_inputs, output, is_official=official)
        with self._store.lock:
            model = self._store.models.get(name) or self._store.add_model(
                ModelRecord(owner, short, is_official=official))
            version = VersionRecord(version_id, name, spec, time.time())
            self._store.add_version(model, version)
        return version

    def remove_data(self, job_id: str) -> None:
        """Drop a job's input, output and logs now, as Replicate does after an hour."""
        with self._store.lock:
            job = self._store.predictions.get(job_id) or self._store.trainings[job_id]
            job.data_removed = True

    def env(self) -> dict[str, str]:
        """``REPLICATE_API_TOKEN`` and ``REPLICATE_BASE_URL`` pointing at this emulator."""
        return {"REPLICATE_API_TOKEN": self.api_token, "REPLICATE_BASE_URL": self.base_url}

    def client(self, **kwargs: Any):
        """An official ``replicate.Client`` for this emulator, polling every 10 ms."""
        import replicate

        client = replicate.Client(api_token=self.api_token, base_url=self.base_url, **kwargs)
        client.poll_interval = 0.01
        return client

    # ------------------------------------------------------------ used by the server

    def _record(self, request: RecordedRequest) -> None:
        with self._store.lock:
            self._requests.append(request)

    def _authorized(self, header: str) -> bool:
        scheme, _, token = header.partition(" ")
        return scheme in ("Bearer", "Token") and secrets.compare_digest(
            token.strip().encode(), self.api_token.encode())

    def _rate_limit(self, bucket: str) -> int | None:
        """Seconds to wait when ``bucket`` is over its per-minute limit, else None."""
        limit = (self.rate_limit_create_per_minute if bucket == "create"
                 else self.rate_limit_per_minute)
        if limit is None:
            return None
        now = time.monotonic()
        with self._store.lock:
            hits = self._hits[bucket]
            while hits and now - hits[0] >= 60:
                hits.popleft()
            if len(hits) >= limit:
                return max(1, int(60 - (now - hits[0])) + 1)
            hits.append(now)
        return None

    def _remaining(self, bucket: str) -> int:
        limit = (self.rate_limit_create_per_minute if bucket == "create"
                 else self.rate_limit_per_minute)
        default = 600 if bucket == "create" else 3000  # documented limits
        with self._store.lock:
            return max(0, (limit or default) - len(self._hits[bucket]))

    def _job_json(self, job: JobRecord, *, data_urls: bool = False) -> dict:
        if (self.data_retention_s is not None and job.done and job.completed_at is not None
                and time.time() - job.completed_at > self.data_retention_s):
            job.data_removed = True
        return job.to_json(data_urls=data_urls or self.data_urls == "always")

    def _store_blob(self, path: str, content: bytes, content_type: str) -> None:
        with self._store.lock:
            self._store.blobs[path] = Blob(content, content_type)

    def _seed_models(self) -> None:
        now = time.time()
        for spec in _schemas.MODELS.values():
            owner, _, name = spec.name.partition("/")
            model = ModelRecord(owner, name, is_official=spec.is_official,
                                hardware="gpu-h100", description=spec.source)
            for version_id in reversed(spec.extra_version_ids):
                model.versions.append(VersionRecord(version_id, spec.name, spec, now - 86400))
            model.versions.append(VersionRecord(spec.version_id, spec.name, spec, now))
            self._store.add_model(model)


def _shutdown(server: _Server, webhooks: WebhookSender, store: Store) -> None:
    server.close_all()
    webhooks.stop()
    store.close()
