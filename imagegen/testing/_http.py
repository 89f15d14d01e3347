"""HTTP shapes shared by the emulator's routes: replies, Replicate's problem+json errors, paging.

Error bodies are the ones recorded from Replicate (research note §2.3); where a body was not
recorded the text is marked as chosen here.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

PROBLEM_JSON = "application/problem+json"


@dataclass
class Reply:
    status: int
    body: Any = None  # dict/list -> JSON; bytes -> raw
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"
    stream: Callable[[], Iterator[bytes]] | None = None  # server-sent events

    def encoded(self) -> bytes:
        if self.body is None:
            return b""
        if isinstance(self.body, bytes):
            return self.body
        return json.dumps(self.body).encode()


class ApiError(Exception):
    """Raised by a route to answer with a problem+json error."""

    def __init__(self, status: int, body: dict, headers: dict[str, str] | None = None):
        super().__init__(body.get("detail", ""))
        self.reply = Reply(status, body, headers or {}, PROBLEM_JSON)


def unauthenticated() -> ApiError:
    return ApiError(401, {"title": "Unauthenticated",
                          "detail": "You did not pass a valid authentication token",
                          "status": 401})


def not_found(detail: str = "Not found.") -> ApiError:
    # Django REST framework's default text; Replicate's exact 404 body was not recorded.
    return ApiError(404, {"detail": detail, "status": 404})


def invalid_input(problems: list[dict]) -> ApiError:
    detail = "".join(f"- {p['field']}: {p['description']}\n" for p in problems)
    return ApiError(422, {"detail": detail, "status": 422, "title": "Input validation failed",
                          "invalid_fields": problems})


def invalid_version() -> ApiError:
    return ApiError(422, {"title": "Invalid version or not permitted",
                          "detail": "The specified version does not exist (or perhaps you "
                                    "don't have permission to use it?)",
                          "status": 422})


def throttled(retry_after_s: int) -> ApiError:
    # Both hints: the body field is confirmed (issue #445); the header is harmless if absent
    # upstream and is what RetryTransport-style clients read.
    return ApiError(429, {"title": "Request was throttled",
                          "detail": f"Request was throttled. Your rate limit resets in "
                                    f"~{retry_after_s}s.",
                          "status": 429, "retry_after": retry_after_s},
                    {"Retry-After": str(retry_after_s)})


def server_error(status: int) -> ApiError:
    titles = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable",
              504: "Gateway Timeout"}
    title = titles.get(status, "Server Error")
    return ApiError(status, {"title": title, "detail": f"{title} (injected fault)",
                             "status": status})


def bad_request(detail: str) -> ApiError:
    return ApiError(400, {"title": "Bad request", "detail": detail, "status": 400})


def encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"s{seq}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        return int(text[1:])
    except (ValueError, UnicodeDecodeError):
        raise bad_request("Invalid cursor") from None


def paginate(items: list, seq_of: Callable[[Any], int], render: Callable[[Any], dict],
             page_size: int, url: str, query: dict[str, str]) -> dict:
    """One page of ``items`` (newest first) with absolute ``next``/``previous`` URLs."""
    ordered = sorted(items, key=seq_of, reverse=True)
    start = 0
    if query.get("cursor"):
        after = decode_cursor(query["cursor"])
        start = next((i for i, item in enumerate(ordered) if seq_of(item) < after),
                     len(ordered))
    page = ordered[start:start + page_size]
    extra = {k: v for k, v in query.items() if k != "cursor"}

    def link(cursor_seq: int | None) -> str:
        params = dict(extra)
        if cursor_seq is not None:
            params["cursor"] = encode_cursor(cursor_seq)
        return url + ("?" + urlencode(params) if params else "")

    nxt = link(seq_of(page[-1])) if start + page_size < len(ordered) and page else None
    previous = None
    if start > 0:
        back = max(0, start - page_size)
        previous = link(seq_of(ordered[back - 1]) if back > 0 else None)
    return {"previous": previous, "next": nxt, "results": [render(i) for i in page]}
