"""Images served by URL (OpenAI's ``response_format="url"``): kept in memory for a while.

Each URL carries an unguessable token (like a signed URL), so fetching it needs no API key and
works from an ``<img>`` tag; it stops working after ``ttl_s`` seconds.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

MEDIA_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "jpg": "image/jpeg", "webp": "image/webp"}


@dataclass
class StoredImage:
    data: bytes
    media_type: str
    expires_at: float


class ImageStore:
    """Token -> image bytes, dropped when expired or when more than ``max_items`` are kept."""

    def __init__(self, ttl_s: float = 3600.0, max_items: int = 512):
        self.ttl_s = ttl_s
        self.max_items = max_items
        self._items: OrderedDict[str, StoredImage] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, data: bytes, format: str) -> tuple[str, float]:
        """Store ``data``; returns (token, expiry as a Unix time)."""
        token = secrets.token_urlsafe(24)
        now = time.time()
        with self._lock:
            self._drop_expired(now)
            self._items[token] = StoredImage(data, MEDIA_TYPES.get(format, "application/octet-stream"),
                                             now + self.ttl_s)
            while len(self._items) > self.max_items:
                self._items.popitem(last=False)
        return token, now + self.ttl_s

    def get(self, token: str) -> StoredImage | None:
        now = time.time()
        with self._lock:
            item = self._items.get(token)
            if item is None or item.expires_at <= now:
                self._items.pop(token, None)
                return None
            return item

    def __len__(self) -> int:
        return len(self._items)

    def _drop_expired(self, now: float) -> None:
        for token in [t for t, item in self._items.items() if item.expires_at <= now]:
            del self._items[token]
