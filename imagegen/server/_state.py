"""What both APIs share: the server state, error shapes, limits, and running a generation.

A request goes: body-size limit (ASGI middleware) -> API key (`Guard.authenticate`) -> the API
layer turns its payload into a `GenerateRequest` -> `ServerState.generate` checks references,
sizes, budget and the concurrency cap, then awaits `ImageGen.agenerate` -> the API layer shapes
the result. Every failure becomes a `Refusal`, written in the calling API's error shape; nothing
else (no traceback, no key) ever reaches a client.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import (
    BudgetExceededError,
    ConfigError,
    ImageGenError,
    ModelLoadError,
    NoRouteError,
    PromptSyntaxError,
    ProviderError,
    UserCancelledError,
)
from ._images import ImageStore
from ._security import Guard, Refusal, ServerLimits, _looks_like_path, check_references

if TYPE_CHECKING:
    from imagegen.providers.base import Progress

    from .. import GenerateRequest, GenerateResult, ImageGen, RoutePolicy

log = logging.getLogger("imagegen.server")
A1111_PREFIX = "/sdapi/"


# -- progress of the jobs in flight (A1111's /progress and /interrupt) ------------------------

@dataclass
class Job:
    task_id: str
    key_id: str
    kind: str  # "txt2img", "img2img", "generations", "edits"
    images: int
    batch_size: int
    started: float = field(default_factory=time.time)
    timestamp: str = field(default_factory=lambda: time.strftime("%Y%m%d%H%M%S"))
    image_no: int = 0
    step: int = 0
    steps: int = 0
    interrupted: bool = False

    def on_progress(self, event: Progress) -> None:
        # Runs on the provider's thread; raising stops the generation between steps.
        if self.interrupted:
            raise UserCancelledError("interrupted by /sdapi/v1/interrupt")
        if event.stage in ("step", "hires"):
            self.image_no, self.step, self.steps = event.image_index, event.step, event.total

    def fraction(self) -> float:
        """A1111's formula: 0.01 + done jobs / jobs + this job's share of its steps."""
        batches = max(1, -(-self.images // max(1, self.batch_size)))
        batch_no = self.image_no // max(1, self.batch_size)
        value = 0.01 + batch_no / batches
        if self.steps > 0:
            value += self.step / self.steps / batches
        return min(value, 1.0)


# -- the state both APIs share -------------------------------------------------------------------

class ServerState:
    def __init__(self, gen: ImageGen, guard: Guard, *, allow_paths: bool = False,
                 public_url: str | None = None):
        self.gen = gen
        self.guard = guard
        self.limits: ServerLimits = guard.limits
        self.images = ImageStore(guard.limits.url_ttl_s, guard.limits.max_stored_images)
        self.allow_paths = allow_paths
        self.public_url = public_url.rstrip("/") if public_url else None
        self.jobs: dict[str, Job] = {}
        self.options: dict[str, dict[str, Any]] = {}  # A1111 /options, per key
        self._lock = threading.Lock()
        self._models_cache: tuple[float, list[Any]] = (0.0, [])

    def authenticate(self, request: Request) -> str:
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        presented: str | None = None
        if scheme.lower() == "bearer":
            presented = value.strip()
        elif scheme.lower() == "basic":  # A1111 clients send --api-auth as HTTP Basic: the password is the key
            import base64
            import binascii

            try:
                presented = base64.b64decode(value.strip(), validate=True).decode().partition(":")[2]
            except (binascii.Error, UnicodeDecodeError):
                presented = None
        presented = presented or request.headers.get("x-api-key")
        return self.guard.authenticate(presented)

    def models(self) -> list[Any]:
        """The router's cards, cached for a few seconds (a listing can touch the disk)."""
        stamp, cards = self._models_cache
        if time.monotonic() - stamp > 5.0:
            cards = self.gen.models()
            self._models_cache = (time.monotonic(), cards)
        return cards

    def resolve_model(self, model: str, *, param: str = "model") -> str:
        """A model reference the router knows, or `Refusal` 404 (OpenAI's model_not_found)."""
        if not self.allow_paths and model.startswith("local:") and _looks_like_path(model[6:]):
            if model not in {c.id for c in self.models()}:
                raise Refusal(400, "Local models are chosen by name here, not by path.",
                              code="path_not_allowed", param=param)
        try:
            return self.gen.card(model).id
        except (ConfigError, ModelLoadError) as exc:
            raise Refusal(404, _first_line(exc), code="model_not_found", param=param) from None

    def base_url(self, request: Request) -> str:
        return self.public_url or str(request.base_url).rstrip("/")

    async def generate(self, request: GenerateRequest, *, key_id: str, kind: str,
                       policy: RoutePolicy | None = None, task_id: str | None = None,
                       hires_scale: float = 1.0) -> tuple[GenerateResult | None, Job]:
        """Run one generation under every server rule. Returns (None, job) when interrupted."""
        check_references(request, allow_paths=self.allow_paths,
                         known_models=frozenset(c.id for c in self.models()))
        width, height = request.size() if (request.width or request.height or request.aspect_ratio) else (None, None)
        self.guard.check_size(width, height, request.image_count, scale=hires_scale)
        estimate = 0.0
        if self.guard._state[key_id].budget_usd is not None:
            decision = self.gen.route(request, policy=policy)
            estimate = decision.candidates[0].cost_usd if decision.candidates else 0.0
        ticket = self.guard.admit(key_id, estimate)
        job = Job(task_id or f"task({uuid.uuid4().hex[:15]})", key_id, kind, request.image_count,
                  request.batch_size)
        self.jobs[job.task_id] = job
        cost: float | None = None
        try:
            result = await self.gen.agenerate(request, policy=policy, progress=job.on_progress)
            cost = result.cost_usd
            return result, job
        except UserCancelledError:
            return None, job
        finally:
            self.jobs.pop(job.task_id, None)
            ticket.release(cost)

    def current_job(self, key_id: str) -> Job | None:
        jobs = [j for j in list(self.jobs.values()) if j.key_id == key_id or self.guard.open]
        return min(jobs, key=lambda j: j.started) if jobs else None

    def interrupt(self, key_id: str) -> int:
        count = 0
        for job in list(self.jobs.values()):
            if job.key_id == key_id or self.guard.open:
                job.interrupted = True
                count += 1
        return count


# -- errors: ours -> a Refusal -> the caller's shape ---------------------------------------------

def refusal_from(exc: Exception, *, model_param: str = "model") -> Refusal:
    """The HTTP answer for an exception raised while serving a request."""
    if isinstance(exc, Refusal):
        return exc
    if isinstance(exc, ValidationError):
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": str(exc)}
        param = ".".join(str(p) for p in first["loc"]) or None
        message = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'request'}: "
                            f"{e['msg'].removeprefix('Value error, ')}" for e in exc.errors()[:5])
        return Refusal(400, message, code="invalid_value", param=param)
    if isinstance(exc, PromptSyntaxError):
        return Refusal(400, _first_line(exc), code="invalid_prompt", param="prompt")
    if isinstance(exc, BudgetExceededError):
        return Refusal(429, _first_line(exc), code="insufficient_quota", kind="insufficient_quota")
    if isinstance(exc, NoRouteError):
        if str(exc).startswith("every candidate failed"):
            return Refusal(502, _first_line(exc), code="upstream_error", kind="server_error")
        return Refusal(400, _first_line(exc), code="no_route", param=model_param)
    if isinstance(exc, ModelLoadError):
        return Refusal(404, _first_line(exc), code="model_not_found", param=model_param)
    if isinstance(exc, ConfigError):
        return Refusal(400, _first_line(exc), code="invalid_request")
    if isinstance(exc, ProviderError):
        status = 429 if exc.status == 429 else 502
        return Refusal(status, _first_line(exc), code="upstream_error", kind="server_error",
                       retry_after_s=1.0 if status == 429 else None)
    if isinstance(exc, ImageGenError):
        return Refusal(400, _first_line(exc), code="invalid_request")
    if isinstance(exc, ValueError):
        return Refusal(400, _first_line(exc), code="invalid_value")
    log.exception("unexpected error while serving a request")  # the traceback stays in the server log
    return Refusal(500, "The server had an error while processing your request.", code="server_error",
                   kind="server_error")


def _first_line(exc: Exception) -> str:
    return (str(exc).split("\n", 1)[0] or type(exc).__name__)[:2000]


def error_response(request_path: str, refusal: Refusal) -> JSONResponse:
    headers = refusal.headers()
    if refusal.status == 401:
        headers["WWW-Authenticate"] = "Basic" if request_path.startswith(A1111_PREFIX) else "Bearer"
    if request_path.startswith(A1111_PREFIX):
        # WebUI's own error body (modules/api/api.py, handle_exception).
        body: dict[str, Any] = {"error": "HTTPException", "detail": refusal.message, "body": "",
                                "errors": f"{refusal.status}: {refusal.message}"}
    else:
        body = {"error": {"message": refusal.message, "type": refusal.kind, "param": refusal.param,
                          "code": refusal.code}}
    return JSONResponse(body, status_code=refusal.status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(Refusal)
    async def _refusal(request: Request, exc: Refusal) -> JSONResponse:
        return error_response(request.url.path, exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
                  for e in exc.errors()[:20]]  # never echo the input back (it may be megabytes)
        if request.url.path.startswith(A1111_PREFIX):
            return JSONResponse({"detail": errors}, status_code=422)  # FastAPI's shape, as WebUI answers
        first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
        loc = [str(p) for p in first["loc"] if p != "body"]
        refusal = Refusal(400, f"{'.'.join(loc) or 'body'}: {first['msg']}", code="invalid_value",
                          param=".".join(loc) or None)
        return error_response(request.url.path, refusal)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}
        message = exc.detail if isinstance(exc.detail, str) else "request refused"
        if exc.status_code == 404 and message == "Not Found":
            message = f"Unknown path {request.url.path}"
        return error_response(request.url.path, Refusal(exc.status_code, message,
                                                        code=codes.get(exc.status_code, "http_error")))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        return error_response(request.url.path, refusal_from(exc))


# -- the body-size limit, as plain ASGI (cheap on every request) --------------------------------

class BodyLimit:
    """Refuse bodies over ``max_bytes`` with 413: by Content-Length before reading, and by
    counting while reading when the client streams without one."""

    def __init__(self, app: Any, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        length = next((v for k, v in scope.get("headers", []) if k == b"content-length"), None)
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            await self._refuse(path, scope, receive, send)
            return
        seen = 0
        too_big = False

        async def counting_receive() -> dict:
            nonlocal seen, too_big
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    too_big = True
                    raise _TooLarge()
            return message

        started = False

        async def tracking_send(message: dict) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _TooLarge:
            if not started:
                await self._refuse(path, scope, receive, send)
        except Exception:
            if not too_big:
                raise
            if not started:
                await self._refuse(path, scope, receive, send)

    async def _refuse(self, path: str, scope: dict, receive: Any, send: Any) -> None:
        refusal = Refusal(413, f"Request body over this server's limit of {self.max_bytes} bytes.",
                          code="request_too_large")
        await error_response(path, refusal)(scope, receive, send)


class KeyRequired:
    """An ASGI app behind the server's keys (HTTP Basic, so a browser asks for the key)."""

    def __init__(self, app: Any, state: ServerState):
        self.app = app
        self.state = state

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and not self.state.guard.open:
            try:
                self.state.authenticate(Request(scope))
            except Refusal as refusal:
                response = error_response(A1111_PREFIX, refusal)  # WWW-Authenticate: Basic
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


class _TooLarge(BaseException):
    """Raised from `receive` past the limit; a BaseException so that no handler's
    ``except Exception`` turns it into a 500 on its way back to `BodyLimit`."""
