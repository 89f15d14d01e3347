"""Replicate calls through the official client: create (never paying twice), read, wait, cancel.

A create that surely made nothing (a 429, a refused connection) is retried. A create whose
outcome is unknown (5xx, a reply lost or not read in time) is reconciled: the recent predictions
are searched for one with exactly our input, whose seed acts as the marker, again and again until
``CallPolicy.commit_timeout_s`` after the create was sent (as long as a server may take to commit
it). Only when none has turned up by then is the create sent again; when the search itself fails,
`UnknownOutcomeError` says so. Each prediction found or made is claimed by exactly one call.

Creates are sent by this module (through the official client's connection, auth and error
types) rather than by the client's ``predictions.create``: that method sets its own read timeout
of 60.5 s whenever ``Prefer: wait`` is asked for. Here ``CallPolicy.timeout_s`` is the read
timeout of every request, and ``Prefer: wait=N`` asks the server to answer within it.

Connection failures and refused credentials (401, 403, 402) are the provider's, not a model's:
their errors carry ``scope="provider"`` so the router does not try the provider's other models.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import json
import math
import re
import ssl
import threading
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote, urlsplit

import certifi
import httpx
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from imagegen.errors import ProviderError, UnknownOutcomeError

from ._schemas import Target

TERMINAL = ("succeeded", "failed", "canceled", "aborted")
_POOL_SIZE = 16  # connections per pool
_RESETS_IN = re.compile(r"~\s*(\d+(?:\.\d+)?)\s*s")
# The last error reply seen by this task; ReplicateError keeps neither headers nor retry_after.
_LAST_ERROR: ContextVar[tuple[int, dict[str, str], Any] | None] = ContextVar(
    "replicate_last_error", default=None)
# HTTP requests of one generate call: set before its tasks start, so they all share the list.
_RUN_REQUESTS: ContextVar[list[int] | None] = ContextVar("replicate_run_requests", default=None)


def start_request_count() -> list[int]:
    counter = [0]
    _RUN_REQUESTS.set(counter)
    return counter


@dataclass
class CallPolicy:
    """Timings and limits of the calls; the defaults suit the real API."""

    sync_wait_s: int | bool = True  # Prefer: wait (60 s, capped to fit timeout_s) on create
    poll_initial_s: float = 0.5
    poll_max_s: float = 5.0
    get_attempts: int = 6  # GETs: on 5xx, 429 and connection errors
    get_backoff_s: float = 0.2
    create_attempts: int = 6  # creates: only after a 429 or when surely nothing was made
    connect_attempts: int = 3  # creates whose connection failed (nothing was sent)
    max_retry_after_s: float = 120.0
    # After a create whose outcome is unknown, the recent predictions are searched until this
    # long after it was sent (how long a server may take to commit a create; the fine-tune path
    # waits as long), and at least reconcile_attempts times; the pause between searches starts at
    # reconcile_delay_s and doubles up to reconcile_max_delay_s.
    commit_timeout_s: float = 120.0
    reconcile_attempts: int = 3
    reconcile_delay_s: float = 1.0
    reconcile_max_delay_s: float = 10.0
    reconcile_window_s: float = 120.0  # allowed clock difference with the server
    max_download_bytes: int = 50 * 1024 * 1024
    download_timeout_s: float = 120.0  # a whole output download, however slowly bytes arrive
    max_output_pixels: int = 40_000_000  # outputs larger than this are refused before decoding
    # Hosts outputs may be fetched from over https, besides the API host and data: URLs;
    # "*.example.com" allows the subdomains. None: Settings.replicate_output_hosts
    # (IMAGEGEN_OUTPUT_HOSTS; by default replicate.delivery and its subdomains).
    output_hosts: tuple[str, ...] | None = None
    timeout_s: float = 30.0  # the read timeout of every request, creates included
    max_concurrency: int = 100
    cancel_grace_s: float = 2.0  # on cancel, how long a create in flight may still finish


class _Throttled(Exception):
    def __init__(self, retry_after: float):
        self.retry_after = retry_after


class _NotCreated(Exception):
    """The create surely made nothing (never sent, or reconciled and absent): send again."""

    def __init__(self, reason: str, *, connect: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.connect = connect  # the connection itself failed


class ClaimedIds:
    """Prediction ids already owned by a call, so a reconciliation never adopts one twice."""

    def __init__(self) -> None:
        self._ids: set[str] = set()
        self._lock = threading.Lock()

    def claim(self, prediction_id: str) -> bool:
        with self._lock:
            if prediction_id in self._ids:
                return False
            self._ids.add(prediction_id)
            return True


class ReplicateSession:
    """One event loop's connection to the API: an official `replicate.Client` plus a plain
    httpx client for output files (which never carries the token)."""

    def __init__(self, token: str, base_url: str, policy: CallPolicy, claimed: ClaimedIds):
        self._token = token
        self.base_url = base_url.rstrip("/")
        self.policy = policy
        self.claimed = claimed
        self.requests = 0

    def __repr__(self) -> str:  # never shows the token
        return f"<ReplicateSession {self.base_url}>"

    async def __aenter__(self) -> ReplicateSession:
        import replicate

        # Several small pools: httpcore scans every connection of a pool for each request, so
        # one pool of a hundred connections costs more CPU than the calls themselves.
        shards = max(1, math.ceil(self.policy.max_concurrency / _POOL_SIZE))
        limits = httpx.Limits(max_connections=_POOL_SIZE + 2, max_keepalive_connections=_POOL_SIZE + 2)
        timeout = httpx.Timeout(self.policy.timeout_s, connect=10.0)
        self._transports = [httpx.AsyncHTTPTransport(limits=limits, verify=ssl_context())
                            for _ in range(shards + 1)]
        self._clients = []
        for transport in self._transports[:-1]:
            client = replicate.Client(api_token=self._token, base_url=self.base_url,
                                      timeout=timeout, transport=transport,
                                      event_hooks={"request": [self._count],
                                                   "response": [_remember_error]})
            # Retries are ours (tenacity, below); the client's own transport would add up to
            # ten more attempts per GET with backoff reaching tens of seconds.
            inner = getattr(client._async_client, "_transport", None)
            if hasattr(inner, "max_attempts"):
                inner.max_attempts = 1
            self._clients.append(client)
        self._turn = itertools.cycle(self._clients)
        self.http = httpx.AsyncClient(timeout=timeout, transport=self._transports[-1],
                                      follow_redirects=False, event_hooks={"request": [self._count]})
        return self

    @property
    def client(self) -> Any:
        """The official client of the next pool, in turn."""
        return next(self._turn)

    async def __aexit__(self, *exc: Any) -> None:
        await self.http.aclose()
        for transport in self._transports:
            await transport.aclose()

    async def _count(self, request: httpx.Request) -> None:
        self.requests += 1
        counter = _RUN_REQUESTS.get()
        if counter is not None:
            counter[0] += 1

    # -- create ---------------------------------------------------------------------------

    async def create(self, target: Target, payload: dict[str, Any]) -> dict[str, Any]:
        """Create one prediction; returns its JSON. Never leaves two paid predictions behind."""
        policy = self.policy
        tries = {"all": 0, "connect": 0}

        def stop(state: Any) -> bool:
            exc = state.outcome.exception()
            if isinstance(exc, _NotCreated) and exc.connect:
                tries["connect"] += 1
                if tries["connect"] >= policy.connect_attempts:
                    return True
            return state.attempt_number >= policy.create_attempts

        retrying = AsyncRetrying(
            retry=retry_if_exception_type((_Throttled, _NotCreated)),
            wait=_create_wait(policy), stop=stop, reraise=True)
        try:
            async for attempt in retrying:
                with attempt:
                    tries["all"] += 1
                    return await self._create_once(target, payload)
        except _Throttled as exc:
            raise ProviderError(f"still rate limited after {tries['all']} tries "
                                f"(retry after {exc.retry_after:g}s)", provider="replicate",
                                status=429) from None
        except _NotCreated as exc:
            raise ProviderError(f"{exc.reason}; nothing was created ({tries['all']} tries)",
                                provider="replicate",
                                scope="provider" if exc.connect else "model") from None
        raise AssertionError("unreachable")

    def prefer_wait(self) -> int | None:
        """Seconds of ``Prefer: wait`` asked on create: what the policy asks, at most the API's
        60 s, and short enough that the server answers within our own read timeout."""
        wait = self.policy.sync_wait_s
        if wait is False or wait is None:
            return None
        asked = 60 if wait is True else int(wait)
        seconds = min(asked, 60, math.floor(self.policy.timeout_s - 0.5))
        return seconds if seconds >= 1 else None

    async def _create_once(self, target: Target, payload: dict[str, Any]) -> dict[str, Any]:
        from replicate.exceptions import ReplicateError

        body: dict[str, Any] = {"input": payload}
        if target.version is None:
            path = f"/v1/models/{target.model}/predictions"
        else:
            path = "/v1/predictions"
            body["version"] = target.version
        wait = self.prefer_wait()
        headers = {"Prefer": f"wait={wait}"} if wait else {}
        sent_at = time.time()
        _LAST_ERROR.set(None)
        try:
            response = await self.client._async_request(
                "POST", path, json=body, headers=headers, timeout=self.timeout())
            found = response.json()
            if not isinstance(found, dict) or not isinstance(found.get("id"), str):
                raise ValueError("the create reply holds no prediction id")
        except ReplicateError as exc:
            if exc.status == 429:
                raise _Throttled(self._retry_after(exc)) from None
            if exc.status is None or exc.status >= 500:
                return await self._reconcile(target, payload, sent_at, exc)
            raise self.refusal(exc, "create") from None
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            # The request never left: surely nothing was made.
            raise _NotCreated(self.unreachable(exc), connect=True) from None
        except (httpx.TransportError, ValueError) as exc:  # sent; reply lost, late or unreadable
            return await self._reconcile(target, payload, sent_at, exc)
        if self.claimed.claim(found["id"]):
            return found
        # An identical call's search adopted this prediction while our reply was on its way:
        # it is that call's now, and that call's own create (if it was ever made) is ours.
        return await self._reconcile(target, payload, sent_at, _Adopted(found["id"]))

    def timeout(self) -> httpx.Timeout:
        return httpx.Timeout(self.policy.timeout_s, connect=min(10.0, self.policy.timeout_s))

    def unreachable(self, exc: BaseException) -> str:
        """Why the API could not be reached, naming its URL (never a header)."""
        chain: list[BaseException] = []
        link: BaseException | None = exc
        while link is not None and len(chain) < 10:  # httpx -> httpcore -> OSError -> the cause
            chain.append(link)
            link = link.__cause__ or link.__context__
        text = " ".join(str(e) for e in chain).lower()
        if any(isinstance(e, ConnectionRefusedError) for e in chain) or "refused" in text:
            reason = "connection refused"
        elif isinstance(exc, httpx.ConnectTimeout) or "timed out" in text:
            reason = "connection timed out"
        elif isinstance(exc, httpx.PoolTimeout):
            reason = "no free connection in the pool"
        elif "name or service" in text or "nodename" in text or "getaddrinfo" in text:
            reason = "host name not found"
        else:
            reason = describe(exc)
        return f"cannot connect to {self.base_url} ({reason})"

    def refusal(self, exc: Any, what: str) -> ProviderError:
        """A 4xx answer as a `ProviderError`; credentials and billing refusals are the whole
        provider's (another model of it would be refused the same way)."""
        status = getattr(exc, "status", None)
        message = getattr(exc, "detail", None) or getattr(exc, "title", None) or f"{what} refused"
        scope = "model"
        if status in (401, 403):
            scope = "provider"
            message = f"{message} (check REPLICATE_API_TOKEN for {self.base_url})"
        elif status == 402:
            scope = "provider"
        last = _LAST_ERROR.get()
        return ProviderError(message, provider="replicate", status=status,
                             detail=last and last[2], scope=scope)

    def _retry_after(self, exc: Exception) -> float:
        """Retry-After header, else the body's retry_after, else "~Ns" in the detail, else 1."""
        _, headers, body = _LAST_ERROR.get() or (0, {}, None)
        seconds: float | None = None
        header = headers.get("retry-after", "")
        if header.strip().replace(".", "", 1).isdigit():
            seconds = float(header)
        elif isinstance(body, dict) and isinstance(body.get("retry_after"), (int, float)):
            seconds = float(body["retry_after"])
        else:
            found = _RESETS_IN.search(str(getattr(exc, "detail", "") or ""))
            seconds = float(found.group(1)) if found else 1.0
        if seconds > self.policy.max_retry_after_s:
            raise ProviderError(f"rate limited for {seconds:g}s", provider="replicate", status=429)
        return seconds

    async def _reconcile(self, target: Target, payload: dict[str, Any], sent_at: float,
                         cause: Exception) -> dict[str, Any]:
        """Find the prediction an unanswered create made, or prove there is none: search the
        recent predictions until ``commit_timeout_s`` after sending (the last search at or after
        that moment), so a create the server commits late is found, never made twice."""
        policy = self.policy
        since = sent_at - policy.reconcile_window_s
        # On the monotonic clock: a wall-clock jump must not end (or stretch) the wait.
        deadline = time.monotonic() + policy.commit_timeout_s - max(0.0, time.time() - sent_at)
        delay = policy.reconcile_delay_s
        searches = 0
        while True:
            try:
                recent = await self.list_since(since)
            except ProviderError as exc:
                raise UnknownOutcomeError(
                    "a create was sent but its reply was lost, and the recent predictions could "
                    f"not be searched ({exc}); it may have been created", provider="replicate",
                    detail=_unknown_detail(target, payload, sent_at, cause),
                    scope=exc.scope) from None
            searches += 1
            for found in sorted(recent, key=lambda p: p.get("created_at") or ""):
                if made_by(found, target, payload) and self.claimed.claim(found["id"]):
                    return found
            left = deadline - time.monotonic()
            if left <= 0 and searches >= policy.reconcile_attempts:
                raise _NotCreated(f"a create got no answer ({describe(cause)}) and no "
                                  f"prediction appeared within {policy.commit_timeout_s:g}s")
            await asyncio.sleep(min(delay, left) if left > 0 else delay)
            delay = min(delay * 2, policy.reconcile_max_delay_s)

    # -- read -----------------------------------------------------------------------------

    async def get(self, prediction_id: str) -> dict[str, Any]:
        return await self._get_json(f"/v1/predictions/{prediction_id}")

    async def list_since(self, since: float) -> list[dict[str, Any]]:
        """Predictions created after ``since`` (newest pages first, all pages in the window)."""
        stamp = datetime.fromtimestamp(since, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        path: str | None = f"/v1/predictions?created_after={quote(stamp)}"
        found: list[dict[str, Any]] = []
        for _ in range(50):
            page = await self._get_json(path)
            results = page.get("results") or []
            found.extend(results)
            path = page.get("next")
            older = [p for p in results if _timestamp(p.get("created_at")) < since]
            if not path or older:  # a server that ignores created_after still ends here
                break
        return found

    async def _get_json(self, path: str) -> Any:
        # The raw reply, not the client's Prediction model: that model rejects "aborted".
        retrying = AsyncRetrying(
            retry=retry_if_exception(transient), reraise=True,
            wait=_get_wait(self.policy), stop=stop_after_attempt(self.policy.get_attempts))
        try:
            async for attempt in retrying:
                with attempt:
                    _LAST_ERROR.set(None)
                    response = await self.client._async_request("GET", path)
                    return response.json()
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise ProviderError(f"GET {urlsplit(path).path} failed: {self.unreachable(exc)}",
                                provider="replicate", scope="provider") from None
        except Exception as exc:
            status = getattr(exc, "status", None)
            if status in (401, 402, 403):
                raise self.refusal(exc, f"GET {urlsplit(path).path}") from None
            raise ProviderError(f"GET {urlsplit(path).path} failed: {describe(exc)}",
                                provider="replicate", status=status) from None
        raise AssertionError("unreachable")

    async def wait(self, prediction: dict[str, Any], expected: int, *, need_metrics: bool,
                   on_status: Callable[[str], None]) -> dict[str, Any]:
        """Poll with backoff until terminal, or until a `processing` reply holds every output."""
        delay = self.policy.poll_initial_s
        while True:
            status = prediction.get("status")
            if status in TERMINAL:
                return prediction
            if status == "processing" and not need_metrics and outputs_complete(prediction, expected):
                return prediction
            on_status(status or "starting")
            await asyncio.sleep(delay)
            delay = min(delay * 1.6, self.policy.poll_max_s)
            try:
                prediction = await self.get(prediction["id"])
            except ProviderError as exc:
                raise UnknownOutcomeError(
                    f"prediction {prediction['id']} was created but cannot be read: {exc}",
                    provider="replicate", detail={"prediction_id": prediction["id"]}) from None

    async def cancel(self, prediction_id: str) -> None:
        try:
            await self.client._async_request("POST", f"/v1/predictions/{prediction_id}/cancel")
        except Exception:  # best effort: the caller is already failing
            pass


@functools.lru_cache(maxsize=1)
def ssl_context() -> ssl.SSLContext:
    # Loading the CA bundle costs tens of milliseconds of CPU: once per process, not per call.
    return ssl.create_default_context(cafile=certifi.where())


def outputs_complete(prediction: dict[str, Any], expected: int) -> bool:
    output = prediction.get("output")
    if isinstance(output, str):
        return bool(output)
    return isinstance(output, list) and len(output) >= expected and all(output)


async def _remember_error(response: httpx.Response) -> None:
    if response.status_code >= 400:
        await response.aread()
        try:
            body = response.json()
        except ValueError:
            body = None
        _LAST_ERROR.set((response.status_code, {k.lower(): v for k, v in response.headers.items()},
                         body))


def backoff(policy: CallPolicy) -> Any:
    return wait_exponential_jitter(multiplier=policy.get_backoff_s, max=5.0,
                                   jitter=policy.get_backoff_s)


def _get_wait(policy: CallPolicy) -> Callable[[Any], float]:
    exponential = backoff(policy)

    def wait(state: Any) -> float:
        status, headers, _ = _LAST_ERROR.get() or (0, {}, None)
        if status == 429 and headers.get("retry-after", "").isdigit():
            return min(float(headers["retry-after"]), policy.max_retry_after_s)
        return exponential(state)

    return wait


def _create_wait(policy: CallPolicy) -> Callable[[Any], float]:
    exponential = backoff(policy)

    def wait(state: Any) -> float:
        exc = state.outcome.exception()
        if isinstance(exc, _Throttled):
            return exc.retry_after  # nothing was created: wait as told, then send again
        return exponential(state)

    return wait


class _Adopted(Exception):
    """Our create's prediction was claimed by an identical call's search (the cause recorded
    while we look for that call's own prediction)."""

    def __init__(self, prediction_id: str):
        super().__init__(f"prediction {prediction_id} was adopted by an identical call")


def transient(exc: BaseException) -> bool:
    status = getattr(exc, "status", None)
    if isinstance(exc, (httpx.TransportError, json.JSONDecodeError)):
        return True
    return isinstance(status, int) and (status == 429 or status >= 500)


def made_by(prediction: dict[str, Any], target: Target, payload: dict[str, Any]) -> bool:
    # Official models may report an internal model name, so only versions are compared.
    if target.version is not None and prediction.get("version") != target.version:
        return False
    return _same(prediction.get("input"), payload)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return float(a) == float(b)
    return a == b


def _timestamp(value: str | None) -> float:
    if not value:
        return 0.0
    text = value.rstrip("Z")
    head, dot, frac = text.partition(".")
    try:
        moment = datetime.fromisoformat(head + (dot + frac[:6] if dot else ""))
    except ValueError:
        return 0.0
    return moment.replace(tzinfo=moment.tzinfo or timezone.utc).timestamp()


def _unknown_detail(target: Target, payload: dict[str, Any], sent_at: float,
                    cause: Exception) -> dict[str, Any]:
    # Inputs such as hf_api_token / civitai_api_token are secrets too.
    shown = {k: ("<redacted>" if k.endswith("_token") else v) for k, v in payload.items()}
    return {"model": target.model, "version": target.version, "input": shown,
            "sent_at": sent_at, "cause": describe(cause)}


def describe(exc: BaseException) -> str:
    """A short description that never includes headers (so never the token)."""
    status = getattr(exc, "status", None)
    detail = getattr(exc, "detail", None)
    if status is not None:
        return f"HTTP {status}" + (f": {detail}" if detail else "")
    return type(exc).__name__ + (f": {exc}" if str(exc) else "")
