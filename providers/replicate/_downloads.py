"""Fetching prediction outputs: data: URLs, https, or the API's own host; never with the token.

A size cap holds for every source. (The official client's `FileOutput` sends the token to any
host an output names; outputs are fetched here with a client that has no token at all.)
"""

from __future__ import annotations

import base64
from urllib.parse import unquote_to_bytes, urlsplit

import httpx
from tenacity import AsyncRetrying, RetryError, retry_if_exception, stop_after_attempt

from imagegen.errors import ProviderError

from ._session import CallPolicy, backoff, describe, transient


async def fetch_output(http: httpx.AsyncClient, url: str, *, base_url: str,
                       policy: CallPolicy) -> bytes:
    """The bytes of one output URL, or a `ProviderError` saying why not."""
    cap = policy.max_download_bytes
    if url.startswith("data:"):
        return _decode_data_url(url, cap)
    parts, api = urlsplit(url), urlsplit(base_url)
    if parts.scheme != "https" and (parts.scheme, parts.netloc) != (api.scheme, api.netloc):
        raise ProviderError(f"refusing to download an output from {parts.scheme}://"
                            f"{parts.netloc}: only https, data: and {api.netloc} are allowed",
                            provider="replicate", retryable=False)
    retrying = AsyncRetrying(retry=retry_if_exception(transient), reraise=True,
                             wait=backoff(policy), stop=stop_after_attempt(policy.get_attempts))
    try:
        async for attempt in retrying:
            with attempt:
                return await _read_capped(http, url, cap)
    except (httpx.HTTPError, _HttpStatus, RetryError) as exc:
        raise ProviderError(f"download of {parts.path} failed: {describe(exc)}",
                            provider="replicate") from None
    raise AssertionError("unreachable")


def _too_big(cap: int) -> ProviderError:
    return ProviderError(f"output larger than {cap} bytes", provider="replicate")


def _decode_data_url(url: str, cap: int) -> bytes:
    header, _, payload = url.partition(",")
    if len(payload) > cap * 4 // 3 + 4:  # refuse before decoding anything that large
        raise _too_big(cap)
    data = base64.b64decode(payload) if header.endswith(";base64") else unquote_to_bytes(payload)
    if len(data) > cap:
        raise _too_big(cap)
    return data


async def _read_capped(http: httpx.AsyncClient, url: str, cap: int) -> bytes:
    async with http.stream("GET", url) as response:
        if response.status_code >= 400:
            raise _HttpStatus(response.status_code)
        if int(response.headers.get("content-length") or 0) > cap:
            raise _too_big(cap)
        chunks, size = [], 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > cap:
                raise _too_big(cap)
            chunks.append(chunk)
        return b"".join(chunks)


class _HttpStatus(Exception):
    def __init__(self, status: int):
        self.status = status  # read by `transient`: 5xx is retried, 4xx is not
        super().__init__(f"HTTP {status}")
