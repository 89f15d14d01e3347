"""The call layer on its own: Retry-After sources, input matching, output checks."""

from __future__ import annotations

import asyncio
import base64
import io

import httpx
import pytest
from imagegen.providers.replicate._downloads import fetch_output
from imagegen.providers.replicate._provider import _Run
from imagegen.providers.replicate._schemas import MODELS, Target
from imagegen.providers.replicate._session import (
    _LAST_ERROR,
    CallPolicy,
    ClaimedIds,
    ReplicateSession,
    _timestamp,
    made_by,
    outputs_complete,
)
from imagegen.providers.replicate._translate import plan_request
from PIL import Image

from imagegen.catalog import ModelCard
from imagegen.errors import ProviderError
from imagegen.request import GenerateRequest


class _Refusal(Exception):
    def __init__(self, detail: str):
        self.detail = detail


def session(**policy) -> ReplicateSession:
    return ReplicateSession("r8_secret", "http://127.0.0.1:9", CallPolicy(**policy), ClaimedIds())


@pytest.mark.parametrize("headers, body, detail, expected", [
    ({"retry-after": "7"}, {"retry_after": 3}, "", 7.0),
    ({}, {"retry_after": 3}, "", 3.0),
    ({}, {"detail": "x"}, "Request was throttled. Your rate limit resets in ~10s.", 10.0),
    ({}, None, "throttled", 1.0),
])
def test_retry_after_prefers_header_then_body_then_detail(headers, body, detail, expected):
    _LAST_ERROR.set((429, headers, body))
    assert session()._retry_after(_Refusal(detail)) == expected


def test_an_absurd_retry_after_gives_up_instead_of_sleeping():
    _LAST_ERROR.set((429, {"retry-after": "3600"}, None))
    with pytest.raises(ProviderError, match="rate limited for 3600s"):
        session()._retry_after(_Refusal(""))


def test_reconciliation_matches_exact_input_and_version_only():
    sent = {"prompt": "a", "seed": 5, "guidance": 3.0}
    official = Target("black-forest-labs/flux-dev", None, MODELS["black-forest-labs/flux-dev"])
    assert made_by({"input": {"prompt": "a", "seed": 5, "guidance": 3}, "model": "x/internal"},
                   official, sent)
    assert not made_by({"input": {"prompt": "a", "seed": 6, "guidance": 3}}, official, sent)
    assert not made_by({"input": {"prompt": "a", "seed": 5}}, official, sent)
    trained = Target("me/lora", "a" * 64)
    assert not made_by({"input": sent, "version": "b" * 64}, trained, sent)


def test_claimed_prediction_is_never_adopted_twice():
    claimed = ClaimedIds()
    assert claimed.claim("p1") and not claimed.claim("p1")


def test_processing_reply_counts_as_done_only_with_every_output():
    assert outputs_complete({"output": ["data:x", "data:y"]}, 2)
    assert not outputs_complete({"output": ["data:x"]}, 2)
    assert not outputs_complete({"output": []}, 1)
    assert outputs_complete({"output": "https://x/out.png"}, 1)


def test_timestamps_with_nanoseconds_parse():
    assert _timestamp("2024-10-04T12:00:00.123456789Z") == pytest.approx(1728043200.123456)


def fetch(url: str, **policy) -> bytes:
    async def main() -> bytes:
        async with httpx.AsyncClient() as http:
            return await fetch_output(http, url, base_url="http://127.0.0.1:9",
                                      policy=CallPolicy(**policy))

    return asyncio.run(main())


def test_data_url_and_disallowed_hosts():
    payload = base64.b64encode(b"abc").decode()
    assert fetch(f"data:image/png;base64,{payload}") == b"abc"
    with pytest.raises(ProviderError, match="refusing"):
        fetch("http://evil.example/out.png")
    with pytest.raises(ProviderError, match="larger than"):
        fetch(f"data:image/png;base64,{payload}", max_download_bytes=2)


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, "PNG")
    return buffer.getvalue()


def _run_for(output_format: str) -> _Run:
    from imagegen.providers.replicate._schemas import official_cards

    card: ModelCard = next(c for c in official_cards() if c.model.endswith("flux-dev"))
    request = GenerateRequest(prompt="a fox", output_format=output_format)
    return _Run(session(), plan_request(request, card, seed=1), card, request, None)


def test_output_must_decode_as_the_claimed_format():
    with pytest.raises(ProviderError, match="output is PNG, expected jpg"):
        _run_for("jpeg")._image(_png(), "data:", 1)
    with pytest.raises(ProviderError, match="does not decode"):
        _run_for("png")._image(b"<html>not an image</html>", "data:", 1)
    image = _run_for("png")._image(_png(), "https://x/out-0.png", 1)
    assert image.format == "png" and image.seed == 1 and image.url == "https://x/out-0.png"


def test_session_repr_hides_the_token():
    assert "r8_secret" not in repr(session())


@pytest.mark.parametrize("policy, expected", [
    (dict(), 29), (dict(timeout_s=90.0), 60), (dict(timeout_s=1.0), None),
    (dict(sync_wait_s=5), 5), (dict(sync_wait_s=False), None), (dict(sync_wait_s=45, timeout_s=10.0), 9),
])
def test_prefer_wait_never_outlasts_our_read_timeout(policy, expected):
    assert session(**policy).prefer_wait() == expected


def test_refusals_of_credentials_and_billing_are_the_providers():
    class Refused(Exception):
        def __init__(self, status):
            self.status, self.detail, self.title = status, "refused", None

    s = session()
    _LAST_ERROR.set(None)
    assert s.refusal(Refused(401), "create").scope == "provider"
    assert s.refusal(Refused(402), "create").scope == "provider"
    assert s.refusal(Refused(422), "create").scope == "model"
    assert "r8_secret" not in str(s.refusal(Refused(401), "create"))


def test_unreachable_names_the_url_and_the_cause():
    refused = httpx.ConnectError("All connection attempts failed")
    refused.__cause__ = ConnectionRefusedError(111, "Connect call failed")
    assert session().unreachable(refused) == "cannot connect to http://127.0.0.1:9 (connection refused)"
    assert "timed out" in session().unreachable(httpx.ConnectTimeout("timed out"))
