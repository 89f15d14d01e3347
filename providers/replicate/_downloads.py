"""Fetching what predictions and trainings produce, never with the token, under one set of rules.

Output host policy (``DownloadRules``):

- ``data:`` URLs are decoded locally;
- the API host itself (same scheme, host and port as ``REPLICATE_BASE_URL``: the emulator serves
  outputs there over http);
- over ``https`` only, the hosts of ``Settings.replicate_output_hosts`` (``IMAGEGEN_OUTPUT_HOSTS``),
  by default Replicate's delivery hosts: ``replicate.delivery`` and its subdomains. A pattern
  ``*.example.com`` allows the subdomains of example.com, not example.com itself.

Anything else (another host, http to a host other than the API's, a redirect, a user name in the
URL) is refused before a request is made: an output URL is chosen by the server, so an open
policy would let it point the client at internal addresses. Every download has a size cap
(checked against Content-Length, then while streaming) and an overall deadline, however slowly
the bytes arrive. (The official client's `FileOutput` sends the token to any host an output
names; here the HTTP client has no token at all.)

`download_bytes` and `download_to_file` (and `download_to_file_sync`, for synchronous code such as
fine-tune weights) are the reusable entry points; `fetch_output` is the prediction-output one.
`image_size` reads an image's dimensions from its header, so a decompression bomb is refused
before anything is decoded.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import concurrent.futures
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote_to_bytes, urlsplit

import httpx
from tenacity import AsyncRetrying, RetryError, retry_if_exception, stop_after_attempt

from imagegen.errors import ProviderError
from imagegen.settings import REPLICATE_DELIVERY_HOSTS as DELIVERY_HOSTS

from ._session import CallPolicy, backoff, describe, ssl_context, transient

if TYPE_CHECKING:
    from collections.abc import Callable


@dataclass(frozen=True)
class DownloadRules:
    """What a download may fetch and how long and large it may be."""

    api_base_url: str  # its scheme + host + port are allowed (the emulator serves over http)
    hosts: tuple[str, ...] = DELIVERY_HOSTS  # https hosts allowed; "*.d" = subdomains of d
    max_bytes: int = 50 * 1024 * 1024
    deadline_s: float = 120.0  # the whole download, retries included
    read_timeout_s: float = 30.0
    attempts: int = 6  # on 5xx, 429 and connection errors
    backoff_s: float = 0.2
    allow_data: bool = True
    what: str = "output"  # for messages: "output", "trained weights"

    @classmethod
    def for_outputs(cls, policy: CallPolicy, base_url: str,
                    hosts: tuple[str, ...] | None = None) -> DownloadRules:
        if hosts is None:
            hosts = policy.output_hosts if policy.output_hosts is not None else DELIVERY_HOSTS
        return cls(api_base_url=base_url, hosts=tuple(hosts),
                   max_bytes=policy.max_download_bytes, deadline_s=policy.download_timeout_s,
                   read_timeout_s=policy.timeout_s, attempts=policy.get_attempts,
                   backoff_s=policy.get_backoff_s)


def _error(message: str, *, retryable: bool = True) -> ProviderError:
    return ProviderError(message, provider="replicate", retryable=retryable)


def check_url(url: str, rules: DownloadRules) -> None:
    """Raise a `ProviderError` unless ``rules`` allow fetching ``url`` (nothing is fetched)."""
    if url.startswith("data:"):
        if not rules.allow_data:
            raise _error(f"refusing a data: URL for the {rules.what}", retryable=False)
        return
    try:
        parts, api = urlsplit(url), urlsplit(rules.api_base_url)
        host = (parts.hostname or "").lower()
        port = parts.port
    except ValueError:
        raise _error(f"refusing to download the {rules.what} from a malformed URL",
                     retryable=False) from None
    if parts.username or parts.password:
        raise _error(f"refusing to download the {rules.what} from a URL with credentials",
                     retryable=False)
    same_as_api = (parts.scheme, host, port or _default_port(parts.scheme)) == (
        api.scheme, (api.hostname or "").lower(), api.port or _default_port(api.scheme))
    if same_as_api or (parts.scheme == "https" and host_allowed(host, port, rules.hosts)):
        return
    allowed = ", ".join(["data:", f"{api.scheme}://{api.netloc}", *(f"https://{h}" for h in rules.hosts)])
    raise _error(f"refusing to download the {rules.what} from {parts.scheme}://{parts.netloc}: "
                 f"only {allowed} are allowed (IMAGEGEN_OUTPUT_HOSTS adds hosts)", retryable=False)


def host_allowed(host: str, port: int | None, patterns: tuple[str, ...]) -> bool:
    for pattern in patterns:
        name, _, want_port = pattern.lower().partition(":")
        if want_port and int(want_port) != (port or 443):
            continue
        if not want_port and port not in (None, 443):
            continue
        if name.startswith("*."):
            if host.endswith(name[1:]) and len(host) > len(name) - 1:
                return True
        elif host == name:
            return True
    return False


def _default_port(scheme: str) -> int | None:
    return {"http": 80, "https": 443}.get(scheme)


async def fetch_output(http: httpx.AsyncClient, url: str, *, base_url: str, policy: CallPolicy,
                       hosts: tuple[str, ...] | None = None) -> bytes:
    """The bytes of one prediction output URL, or a `ProviderError` saying why not."""
    return await download_bytes(http, url, DownloadRules.for_outputs(policy, base_url, hosts))


async def download_bytes(http: httpx.AsyncClient, url: str, rules: DownloadRules) -> bytes:
    chunks: list[bytes] = []
    await _download(http, url, rules, chunks.append, chunks.clear)
    return b"".join(chunks)


async def download_to_file(http: httpx.AsyncClient, url: str, path: str | os.PathLike[str],
                           rules: DownloadRules) -> int:
    """Stream ``url`` into ``path`` (written as ``path.part``, renamed when complete, removed on
    failure); returns the size. The same host, size and deadline rules as outputs."""
    target = Path(path)
    part = target.with_name(target.name + ".part")
    target.parent.mkdir(parents=True, exist_ok=True)
    handle = open(part, "wb")  # noqa: SIM115 - closed below, on every path
    size = 0

    def write(chunk: bytes) -> None:
        nonlocal size
        handle.write(chunk)
        size += len(chunk)

    def restart() -> None:
        nonlocal size
        handle.seek(0)
        handle.truncate()
        size = 0

    try:
        await _download(http, url, rules, write, restart)
        handle.close()
        os.replace(part, target)
        return size
    except BaseException:
        handle.close()
        part.unlink(missing_ok=True)
        raise


def download_to_file_sync(url: str, path: str | os.PathLike[str], rules: DownloadRules) -> int:
    """`download_to_file` for synchronous callers (also inside a running event loop): its own
    token-free HTTP client, on a worker thread."""

    async def main() -> int:
        async with _client(rules) as http:
            return await download_to_file(http, url, path, rules)

    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="imagegen-download") as pool:
        return pool.submit(asyncio.run, main()).result()


def _client(rules: DownloadRules) -> httpx.AsyncClient:
    return httpx.AsyncClient(timeout=httpx.Timeout(rules.read_timeout_s, connect=10.0),
                             follow_redirects=False, verify=ssl_context())


async def _download(http: httpx.AsyncClient, url: str, rules: DownloadRules,
                    write: Callable[[bytes], None], restart: Callable[[], None]) -> None:
    check_url(url, rules)
    if url.startswith("data:"):
        write(_decode_data_url(url, rules))
        return
    where = urlsplit(url).path or "/"
    retrying = AsyncRetrying(retry=retry_if_exception(transient), reraise=True,
                             wait=_backoff(rules), stop=stop_after_attempt(rules.attempts))

    async def attempts() -> None:
        async for attempt in retrying:
            with attempt:
                restart()
                await _read_capped(http, url, rules, write)

    try:
        await asyncio.wait_for(attempts(), timeout=rules.deadline_s)
    except asyncio.TimeoutError:
        raise _error(f"download of the {rules.what} {where} did not finish within "
                     f"{rules.deadline_s:g}s") from None
    except (httpx.HTTPError, _HttpStatus, RetryError) as exc:
        raise _error(f"download of the {rules.what} {where} failed: {describe(exc)}") from None


def _backoff(rules: DownloadRules):
    return backoff(CallPolicy(get_backoff_s=rules.backoff_s))


def _too_big(rules: DownloadRules) -> ProviderError:
    return _error(f"{rules.what} larger than {rules.max_bytes} bytes", retryable=True)


def _decode_data_url(url: str, rules: DownloadRules) -> bytes:
    header, _, payload = url.partition(",")
    if len(payload) > rules.max_bytes * 4 // 3 + 4:  # refuse before decoding anything that large
        raise _too_big(rules)
    try:
        data = (base64.b64decode(payload, validate=False) if header.endswith(";base64")
                else unquote_to_bytes(payload))
    except (binascii.Error, ValueError):
        raise _error(f"the {rules.what} data: URL does not decode") from None
    if len(data) > rules.max_bytes:
        raise _too_big(rules)
    return data


async def _read_capped(http: httpx.AsyncClient, url: str, rules: DownloadRules,
                       write: Callable[[bytes], None]) -> None:
    cap = rules.max_bytes
    async with http.stream("GET", url) as response:
        if response.status_code >= 300:  # redirects are not followed: their target is unchecked
            raise _HttpStatus(response.status_code)
        try:
            declared = int(response.headers.get("content-length") or 0)
        except ValueError:
            declared = 0
        if declared > cap:
            raise _too_big(rules)
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > cap:
                raise _too_big(rules)
            write(chunk)


class _HttpStatus(Exception):
    def __init__(self, status: int):
        self.status = status  # read by `transient`: 5xx is retried, 4xx is not
        super().__init__(f"HTTP {status}")


# -- image headers ----------------------------------------------------------------------------


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG, JPEG, WebP or GIF header, without decoding; None when the
    header is not one of these (or is cut short)."""
    try:
        if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR":
            return struct.unpack(">II", data[16:24])
        if data[:6] in (b"GIF87a", b"GIF89a"):
            return struct.unpack("<HH", data[6:10])
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            return _webp_size(data)
        if data[:2] == b"\xff\xd8":
            return _jpeg_size(data)
    except struct.error:
        return None
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8X":
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return width, height
    if chunk == b"VP8L" and data[20:21] == b"\x2f":
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    return None


_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # no length
            i += 2
            continue
        (length,) = struct.unpack(">H", data[i + 2:i + 4])
        if marker in _SOF:
            height, width = struct.unpack(">HH", data[i + 5:i + 9])
            return width, height
        i += 2 + length
    return None
