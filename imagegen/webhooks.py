"""Verify (and sign) Replicate webhook deliveries the Standard Webhooks way.

A delivery carries ``webhook-id``, ``webhook-timestamp`` and ``webhook-signature`` headers; the
signature is base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}")), the key being the base64 part
of the account's ``whsec_...`` secret (``GET /v1/webhooks/default/secret``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import time
from collections.abc import Mapping
from typing import Any

from imagegen.errors import WebhookVerificationError

__all__ = ["sign_webhook", "verify_webhook", "WebhookVerificationError"]


def _secret_key(secret: str) -> bytes:
    if not isinstance(secret, str) or not secret.strip():
        # An empty key would make every forged signature computable by anyone.
        raise WebhookVerificationError(
            "no webhook secret given: refusing to verify (or sign) without one; "
            "get it from GET /v1/webhooks/default/secret"
        )
    text = secret.strip()
    if text.startswith("whsec_"):
        text = text[len("whsec_"):]
    try:
        key = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        # Never echo the secret itself.
        raise WebhookVerificationError(
            "webhook secret is not of the form 'whsec_<base64>'"
        ) from None
    if not key:
        raise WebhookVerificationError(
            "webhook secret is empty after 'whsec_': refusing to verify without a key"
        )
    return key


def _as_text(body: bytes | str) -> str:
    if isinstance(body, (bytes, bytearray, memoryview)):
        try:
            return bytes(body).decode("utf-8")
        except UnicodeDecodeError:
            raise WebhookVerificationError("webhook body is not UTF-8") from None
    if not isinstance(body, str):
        raise WebhookVerificationError(
            f"webhook body must be the raw bytes or text received, not {type(body).__name__}"
        )
    return body


def _utf8(text: str, what: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise WebhookVerificationError(f"{what} is not valid UTF-8 text") from None


def _header_text(value: Any, name: str) -> str:
    if isinstance(value, (bytes, bytearray)):
        try:
            return bytes(value).decode("ascii")
        except UnicodeDecodeError:
            raise WebhookVerificationError(f"{name} header is not ASCII") from None
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        return str(value)
    raise WebhookVerificationError(f"{name} header must be text, not {type(value).__name__}")


# Unix seconds: ASCII digits only (int() would also take '١٢٣', '1_000' and 4300-digit numbers).
_TIMESTAMP = re.compile(r"[0-9]{1,12}")


def sign_webhook(secret: str, webhook_id: str, timestamp: int | str, body: bytes | str) -> str:
    """The ``webhook-signature`` header value (``v1,<base64>``) for one delivery."""
    content = _utf8(f"{webhook_id}.{timestamp}.{_as_text(body)}", "webhook id, timestamp or body")
    digest = hmac.new(_secret_key(secret), content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify_webhook(
    headers: Mapping[str, str],
    body: bytes | str,
    secret: str,
    tolerance_s: float | None = 300,
    *,
    now: float | None = None,
) -> Any:
    """Check a delivery's signature and age; return its JSON payload.

    ``body`` must be the raw request body, exactly as received. ``tolerance_s`` bounds how far
    the delivery's timestamp may be from now (replay protection); ``None`` turns that off.
    Raises ``WebhookVerificationError`` naming what is wrong.
    """
    if not isinstance(headers, Mapping) and not hasattr(headers, "items"):
        raise WebhookVerificationError("webhook headers must be a mapping of header names to values")
    lowered = {str(k).lower(): v for k, v in headers.items()}
    missing = [h for h in ("webhook-id", "webhook-timestamp", "webhook-signature")
               if lowered.get(h) in (None, "", b"")]
    if missing:
        raise WebhookVerificationError(f"missing webhook header(s): {', '.join(missing)}")
    _secret_key(secret)  # refuse a missing or malformed secret before reading anything else
    webhook_id = _header_text(lowered["webhook-id"], "webhook-id")
    timestamp_text = _header_text(lowered["webhook-timestamp"], "webhook-timestamp").strip()
    signature_text = _header_text(lowered["webhook-signature"], "webhook-signature")
    if not _TIMESTAMP.fullmatch(timestamp_text):
        raise WebhookVerificationError(
            f"webhook-timestamp is not a Unix time in seconds: {timestamp_text[:40]!r}"
        )
    timestamp = int(timestamp_text)
    if tolerance_s is not None:
        age = (time.time() if now is None else now) - timestamp
        if abs(age) > tolerance_s:
            direction = "old" if age > 0 else "far in the future"
            raise WebhookVerificationError(
                f"webhook timestamp is too {direction}: {abs(age):.0f} s off, "
                f"tolerance is {tolerance_s:g} s"
            )
    expected = sign_webhook(secret, webhook_id, timestamp_text, body).partition(",")[2]
    offered = [part.partition(",") for part in signature_text.split()]
    if not any(version == "v1" and hmac.compare_digest(_utf8(sig, "webhook-signature"), expected.encode())
               for version, _, sig in offered):
        raise WebhookVerificationError(
            "webhook signature does not match: wrong secret, or the body was changed"
        )
    try:
        return json.loads(_as_text(body))
    except (ValueError, RecursionError):
        raise WebhookVerificationError("webhook body is not JSON") from None
