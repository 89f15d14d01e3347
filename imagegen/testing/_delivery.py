"""Signed webhook deliveries from the emulator, to loopback URLs only.

Each delivery POSTs the job's JSON with Standard Webhooks headers (research note §4). Redirects
are not followed; failed deliveries are retried a few times with the same ``webhook-id``.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import queue
import secrets
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from imagegen.webhooks import sign_webhook

EVENTS = ("start", "output", "logs", "completed")
# Replicate's default when no filter is given: new outputs and completion.
DEFAULT_EVENTS = ("output", "completed")


def loopback_problem(url: str) -> str | None:
    """Why ``url`` may not receive deliveries, or None when it is a loopback HTTP(S) URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"webhook must be an http(s) URL, got {url!r}"
    host = parts.hostname
    if host == "localhost":
        return None
    try:
        if ipaddress.ip_address(host).is_loopback:
            return None
    except ValueError:
        pass
    return (f"FakeReplicate delivers webhooks only to loopback addresses "
            f"(127.0.0.1, ::1, localhost), not {host!r}")


@dataclass
class WebhookDelivery:
    """One webhook message and every attempt to deliver it."""

    job_id: str
    event: str
    url: str
    webhook_id: str
    timestamp: int
    body: bytes
    headers: dict[str, str]
    statuses: list[int | str] = field(default_factory=list)  # HTTP status or error text

    @property
    def delivered(self) -> bool:
        return any(isinstance(s, int) and 200 <= s < 300 for s in self.statuses)

    def json(self) -> dict:
        return json.loads(self.body)


class WebhookSender:
    """A background thread sending deliveries in order."""

    def __init__(self, secret: str, retries: int = 2, retry_delay_s: float = 0.05):
        self.secret = secret
        self.retries = retries
        self.retry_delay_s = retry_delay_s
        self.deliveries: list[WebhookDelivery] = []
        self._queue: queue.Queue[WebhookDelivery | None] = queue.Queue()
        self._idle = threading.Condition()
        self._pending = 0
        self._thread = threading.Thread(target=self._run, name="fake-replicate-webhooks",
                                         daemon=True)
        self._thread.start()

    def send(self, job_id: str, event: str, url: str, payload: dict) -> None:
        body = json.dumps(payload).encode()
        webhook_id = "msg_" + secrets.token_hex(12)
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "FakeReplicate-Webhooks",
            "webhook-id": webhook_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign_webhook(self.secret, webhook_id, timestamp, body),
        }
        delivery = WebhookDelivery(job_id, event, url, webhook_id, timestamp, body, headers)
        with self._idle:
            self._pending += 1
            self.deliveries.append(delivery)
        self._queue.put(delivery)

    def wait_idle(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def stop(self) -> None:
        self._queue.put(None)

    def _run(self) -> None:
        while True:
            delivery = self._queue.get()
            if delivery is None:
                return
            for attempt in range(1 + self.retries):
                status = _post(delivery)
                delivery.statuses.append(status)
                if isinstance(status, int) and 200 <= status < 300:
                    break
                if attempt < self.retries:
                    time.sleep(self.retry_delay_s * (2 ** attempt))
            with self._idle:
                self._pending -= 1
                self._idle.notify_all()


def _post(delivery: WebhookDelivery) -> int | str:
    parts = urlsplit(delivery.url)
    conn_type = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    try:
        conn = conn_type(parts.hostname or "127.0.0.1", parts.port, timeout=5)
        try:
            conn.request("POST", path, body=delivery.body, headers=delivery.headers)
            response = conn.getresponse()
            response.read()
            return response.status
        finally:
            conn.close()
    except OSError as exc:
        return f"{type(exc).__name__}: {exc}"
