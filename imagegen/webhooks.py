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
import time
from collections.abc import Mapping
from typing import Any

from imagegen.errors import WebhookVerificationError

__all__ = ["sign_webhook", "verify_webhook", "WebhookVerificationError"]


def _secret_key(secret: str) -> bytes:
    text = secret.strip()
    if text.startswith("whsec_"):
        text = text[len("whsec_"):]
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        # Never echo the secret itself.
        raise WebhookVerificationError(
            "webhook secret is not of the form 'whsec_<base64>'"
        ) from None


def _as_text(body: bytes | str) -> str:
    if isinstance(body, bytes):
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError:
            raise WebhookVerificationError("webhook body is not UTF-8") from None
    return body


def sign_webhook(secret: str, webhook_id: str, timestamp: int | str, body: bytes | str) -> str:
    """The ``webhook-signature`` header value (``v1,<base64>``) for one delivery."""
    content = f"{webhook_id}.{timestamp}.{_as_text(body)}".encode()
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
    lowered = {str(k).lower(): v for k, v in headers.items()}
    missing = [h for h in ("webhook-id", "webhook-timestamp", "webhook-signature")
               if not lowered.get(h)]
    if missing:
        raise WebhookVerificationError(f"missing webhook header(s): {', '.join(missing)}")
    webhook_id = lowered["webhook-id"]
    timestamp_text = lowered["webhook-timestamp"].strip()
    try:
        timestamp = int(timestamp_text)
    except ValueError:
        raise WebhookVerificationError(
            f"webhook-timestamp is not a Unix time in seconds: {timestamp_text!r}"
        ) from None
    if tolerance_s is not None:
        age = (time.time() if now is None else now) - timestamp
        if abs(age) > tolerance_s:
            direction = "old" if age > 0 else "far in the future"
            raise WebhookVerificationError(
                f"webhook timestamp is too {direction}: {abs(age):.0f} s off, "
                f"tolerance is {tolerance_s:g} s"
            )
    expected = sign_webhook(secret, webhook_id, timestamp_text, body).partition(",")[2]
    offered = [part.partition(",") for part in lowered["webhook-signature"].split()]
    if not any(version == "v1" and hmac.compare_digest(sig.encode(), expected.encode())
               for version, _, sig in offered):
        raise WebhookVerificationError(
            "webhook signature does not match: wrong secret, or the body was changed"
        )
    try:
        return json.loads(_as_text(body))
    except ValueError:
        raise WebhookVerificationError("webhook body is not JSON") from None
