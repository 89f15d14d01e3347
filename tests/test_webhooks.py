"""imagegen.webhooks: Standard Webhooks verification, checked against Replicate's test vector."""

from __future__ import annotations

import pytest
from replicate.webhook import Webhooks, WebhookSigningSecret

from imagegen.errors import ImageGenError, WebhookVerificationError
from imagegen.webhooks import sign_webhook, verify_webhook

# replicate-python tests/test_webhooks.py (research note §4.2).
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
MSG_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
TIMESTAMP = 1614265330
BODY = '{"test": 2432232314}'
SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
HEADERS = {"webhook-id": MSG_ID, "webhook-timestamp": str(TIMESTAMP),
           "webhook-signature": SIGNATURE}


def test_sign_webhook_reproduces_the_published_vector():
    assert sign_webhook(SECRET, MSG_ID, TIMESTAMP, BODY) == SIGNATURE


def test_verify_accepts_the_vector_and_returns_the_payload():
    assert verify_webhook(HEADERS, BODY, SECRET, now=TIMESTAMP + 10) == {"test": 2432232314}


def test_verify_accepts_bytes_and_any_header_case():
    headers = {k.upper(): v for k, v in HEADERS.items()}
    assert verify_webhook(headers, BODY.encode(), SECRET, now=TIMESTAMP)["test"] == 2432232314


def test_verify_accepts_when_any_of_several_signatures_matches():
    headers = {**HEADERS, "webhook-signature": "v1,AAAA " + SIGNATURE}
    verify_webhook(headers, BODY, SECRET, now=TIMESTAMP)


def test_tampered_body_is_rejected():
    with pytest.raises(WebhookVerificationError, match="signature does not match"):
        verify_webhook(HEADERS, BODY.replace("2432232314", "2432232315"), SECRET,
                       now=TIMESTAMP)


def test_old_timestamp_is_rejected_by_default_and_accepted_without_tolerance():
    with pytest.raises(WebhookVerificationError, match="too old"):
        verify_webhook(HEADERS, BODY, SECRET)  # the vector is from 2021
    verify_webhook(HEADERS, BODY, SECRET, tolerance_s=None)


def test_future_timestamp_beyond_tolerance_is_rejected():
    with pytest.raises(WebhookVerificationError, match="future"):
        verify_webhook(HEADERS, BODY, SECRET, now=TIMESTAMP - 301)


def test_wrong_secret_is_rejected_without_echoing_it():
    other = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldY"
    with pytest.raises(WebhookVerificationError) as err:
        verify_webhook(HEADERS, BODY, other, now=TIMESTAMP)
    assert other not in str(err.value)
    assert isinstance(err.value, ImageGenError)


def test_missing_headers_are_named():
    with pytest.raises(WebhookVerificationError, match="webhook-signature"):
        verify_webhook({"webhook-id": MSG_ID, "webhook-timestamp": str(TIMESTAMP)}, BODY,
                       SECRET, now=TIMESTAMP)


def test_malformed_secret_is_a_clear_error():
    with pytest.raises(WebhookVerificationError, match="whsec_"):
        verify_webhook(HEADERS, BODY, "whsec_not base64!", now=TIMESTAMP)


def test_official_client_accepts_what_sign_webhook_produces():
    body = '{"id": "abc", "status": "succeeded"}'
    headers = {"webhook-id": "msg_1", "webhook-timestamp": "1700000000",
               "webhook-signature": sign_webhook(SECRET, "msg_1", 1700000000, body)}
    assert Webhooks.validate(headers=headers, body=body,
                             secret=WebhookSigningSecret(key=SECRET)) is None
