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


# -- hostile deliveries: always a WebhookVerificationError, never another exception -----------

def test_empty_secret_refuses_to_verify_even_a_delivery_signed_with_it():
    forged = {"webhook-id": "msg_1", "webhook-timestamp": "1700000000",
              "webhook-signature": "v1," + __import__("base64").b64encode(
                  __import__("hmac").new(b"", b"msg_1.1700000000.{}", "sha256").digest()).decode()}
    for secret in ("", "   ", "whsec_", None):
        with pytest.raises(WebhookVerificationError, match="secret"):
            verify_webhook(forged, "{}", secret, tolerance_s=None)
    with pytest.raises(WebhookVerificationError, match="secret"):
        sign_webhook("", "msg_1", 1700000000, "{}")


def test_huge_timestamp_is_a_verification_error_not_an_overflow():
    for stamp in ("9" * 400, "9" * 5000, "1e9", "-5", "\u0661\u0662\u0663", "1_000", ""):
        headers = {**HEADERS, "webhook-timestamp": stamp}
        with pytest.raises(WebhookVerificationError):
            verify_webhook(headers, BODY, SECRET, now=TIMESTAMP)


def test_non_text_header_values_are_read_or_refused_cleanly():
    # an int timestamp (as some frameworks hand it over) is read as its digits
    assert verify_webhook({**HEADERS, "webhook-timestamp": TIMESTAMP}, BODY, SECRET,
                          now=TIMESTAMP) == {"test": 2432232314}
    assert verify_webhook({k: v.encode() for k, v in HEADERS.items()}, BODY, SECRET,
                          now=TIMESTAMP) == {"test": 2432232314}
    for value in (1.5, ["1"], object(), True):
        with pytest.raises(WebhookVerificationError, match="webhook-timestamp"):
            verify_webhook({**HEADERS, "webhook-timestamp": value}, BODY, SECRET, now=TIMESTAMP)
    with pytest.raises(WebhookVerificationError):
        verify_webhook(None, BODY, SECRET)  # type: ignore[arg-type]


def test_lone_surrogates_and_non_text_bodies_are_verification_errors():
    with pytest.raises(WebhookVerificationError):
        verify_webhook({**HEADERS, "webhook-id": "msg_\ud800"}, BODY, SECRET, now=TIMESTAMP)
    with pytest.raises(WebhookVerificationError):
        verify_webhook(HEADERS, "\udfff", SECRET, now=TIMESTAMP)
    with pytest.raises(WebhookVerificationError):
        verify_webhook(HEADERS, 12345, SECRET, now=TIMESTAMP)  # type: ignore[arg-type]
    with pytest.raises(WebhookVerificationError, match="not UTF-8"):
        verify_webhook(HEADERS, b"\xff\xfe", SECRET, now=TIMESTAMP)


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_VALUE = (st.text(max_size=40) | st.integers() | st.binary(max_size=20) | st.none() | st.floats()
          | st.sampled_from([str(TIMESTAMP), MSG_ID, SIGNATURE, "9" * 400, "v1,", "v1, v2,x"]))


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["webhook-id", "Webhook-Timestamp", "webhook-signature", "x"]),
                       _VALUE, max_size=4),
       st.text(max_size=40) | st.binary(max_size=40) | st.just(BODY),
       st.sampled_from([SECRET, "", "whsec_", "whsec_!!", "c2VjcmV0"]))
def test_fuzzed_deliveries_end_as_verification_errors(headers, body, secret):
    try:
        verify_webhook(headers, body, secret, now=TIMESTAMP)
    except WebhookVerificationError:
        return
    # Accepted: only possible with the real secret over the genuine vector
    assert secret == SECRET and headers
