"""The arena page: an ASGI app (Starlette, extra ``serve``) to compare two models blind on the
same seed, vote, see your ratings, and browse the gallery. ``create_arena_app(gen)``.

Safety: the app answers only Host names in ``allowed_hosts`` (loopback by default, so a web
page elsewhere cannot reach it by DNS rebinding); every POST carries a CSRF token tied to the
session cookie (and a cross-site ``Origin`` is refused); everything shown is escaped, and a
Content-Security-Policy allows only this app's own script and style; images are served from
the SQLite store by their random id, never from a path. Links are built on the ASGI
``root_path``, so the app can be mounted under a prefix (``imagegen serve`` mounts it at /arena).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import secrets
import threading
import time
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from functools import partial
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..errors import ImageGenError
from . import _templates as t
from ._ratings import ENOUGH_VOTES, blend_weight, information, least_sure_pair, rate, win_matrix
from ._store import Arena, VoteError, valid_id

if TYPE_CHECKING:
    from ..client import ImageGen
    from ..request import GenerateRequest

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
SESSION_COOKIE = "imagegen_arena_session"
_MEDIA = {"png": "image/png", "jpeg": "image/jpeg", "jpg": "image/jpeg", "webp": "image/webp"}
_CSP = ("default-src 'self'; img-src 'self' data:; script-src 'self'; style-src 'self'; object-src 'none'; "
        "base-uri 'none'; frame-ancestors 'none'; form-action 'self'")


@dataclass
class Slot:
    side: str
    model: str
    status: str = "queued"  # queued | running | done | error
    stage: str = "queued"
    step: int = 0
    total: int = 0
    image_id: str | None = None
    cost_usd: float | None = None
    estimate_usd: float = 0.0
    error: str | None = None

    def label(self) -> str:
        if self.status == "error":
            return "failed"
        if self.status == "done":
            return "done"
        if self.stage == "step" and self.total:
            return f"step {self.step}/{self.total}"
        return self.stage


@dataclass
class Job:
    id: str
    kind: str  # "compare" (two slots, a vote) or "run" (a re-run, one slot)
    prompt: str
    seed: int | None
    slots: list[Slot]
    session: str
    created_at: float = field(default_factory=time.time)

    @property
    def finished(self) -> bool:
        return all(s.status in ("done", "error") for s in self.slots)


class ArenaState:
    def __init__(self, gen: ImageGen, arena: Arena, *, models: list[str] | None, session_budget_usd: float | None,
                 secret: bytes, rounds: int):
        self.gen = gen
        self.arena = arena
        self.fixed_models = models
        self.session_budget_usd = session_budget_usd
        self.secret = secret
        self.rounds = rounds
        self.jobs: dict[str, Job] = {}
        self.spent: dict[str, float] = {}
        self.lock = threading.Lock()
        self._models: tuple[float, list[str]] | None = None

    # -- sessions and CSRF -----------------------------------------------------------

    def csrf_for(self, session: str) -> str:
        return hmac.new(self.secret, b"csrf:" + session.encode(), hashlib.sha256).hexdigest()

    def spent_by(self, session: str) -> float:
        with self.lock:
            return self.spent.get(session, 0.0)

    def left_for(self, session: str) -> float:
        if self.session_budget_usd is None:
            return math.inf
        return self.session_budget_usd - self.spent_by(session)

    def charge(self, session: str, amount: float) -> None:
        with self.lock:
            self.spent[session] = self.spent.get(session, 0.0) + amount

    # -- models ----------------------------------------------------------------------

    def models(self) -> list[str]:
        """Card ids the page offers: the ones given, or every card that can take a plain prompt now."""
        if self.fixed_models is not None:
            return list(self.fixed_models)
        if self._models is not None and time.monotonic() - self._models[0] < 60:
            return self._models[1]
        from ..request import GenerateRequest

        usable = []
        for card in self.gen.models():
            try:
                self.gen.route(GenerateRequest(prompt="a test", model=card.id))
            except Exception:  # noqa: BLE001 - a card that cannot serve now is simply not offered
                continue
            usable.append(card.id)
        self._models = (time.monotonic(), usable)
        return usable

    def estimate(self, request: GenerateRequest, model: str) -> float:
        decision = self.gen.route(request.model_copy(update={"model": model}))
        return float(decision.candidates[0].cost_usd or 0.0)

    def router_line(self) -> str:
        source = getattr(self.gen.policy, "elo_source", "shipped")
        meaning = {
            "shipped": "the shipped Elo table only; your votes are not used for routing. "
                       "RoutePolicy(elo_source=\"blend\") mixes them in by confidence",
            "user": "your own ratings only (cards without votes have no Elo)",
            "blend": "the shipped Elo blended with yours, each of your ratings weighted by its "
                     "effective votes n as n / (n + blend_votes)",
        }.get(source, source)
        return f"The router uses now: <strong>elo_source=\"{t.h(source)}\"</strong>: {t.h(meaning)}."

    def router_elo(self) -> dict[str, tuple[float | None, str]]:
        """The Elo the router would use for each card under the client's policy, and its note."""
        try:
            cards = self.gen.models()
            resolve = self.gen.router._elo_resolver(self.gen.policy, cards)
            return {c.id: resolve(c) for c in cards}
        except Exception:  # noqa: BLE001 - the page still shows the rest
            return {}

    # -- running --------------------------------------------------------------------

    def start(self, job: Job, request: GenerateRequest) -> None:
        self.jobs[job.id] = job
        by_provider: dict[str, list[Slot]] = {}
        for slot in job.slots:
            by_provider.setdefault(slot.model.partition(":")[0], []).append(slot)
        for slots in by_provider.values():  # two providers run side by side; one provider in turn
            threading.Thread(target=self._run_slots, args=(job, request, slots), daemon=True,
                             name=f"arena-{job.id}").start()

    def _run_slots(self, job: Job, request: GenerateRequest, slots: list[Slot]) -> None:
        for slot in slots:
            self._run(job, request, slot)

    def _run(self, job: Job, request: GenerateRequest, slot: Slot) -> None:
        slot.status, slot.stage = "running", "starting"

        def on_progress(event: Any) -> None:
            slot.stage = str(getattr(event, "stage", "running"))
            slot.step = int(getattr(event, "step", 0) or 0)
            slot.total = int(getattr(event, "total", 0) or 0)

        sided = request.model_copy(update={"model": slot.model})
        try:
            result = self.gen.generate(sided, progress=on_progress)
            stored = self.arena.record_result(sided, result, source="arena")
            if not stored:
                raise ImageGenError(f"{slot.model} returned no image")
            slot.image_id = stored[0].id
            slot.cost_usd = result.cost_usd
            if job.kind == "compare":
                self.arena.set_comparison_image(job.id, slot.side, stored[0].id)  # type: ignore[arg-type]
            self.charge(job.session, (result.cost_usd or 0.0) - slot.estimate_usd)
            slot.status = "done"
        except Exception as exc:  # noqa: BLE001 - shown on the page, the other side goes on
            slot.error = str(exc).split("\n")[0][:500] or type(exc).__name__
            slot.status = "error"
            self.charge(job.session, -slot.estimate_usd)


def create_arena_app(gen: ImageGen | None = None, *, home: str | Path | None = None,
                     models: list[str] | None = None, session_budget_usd: float | None = 0.50,
                     allowed_hosts: list[str] | tuple[str, ...] | None = LOOPBACK_HOSTS,
                     secret: bytes | None = None, rounds: int = 100, debug: bool = False) -> Starlette:
    """The arena page as an ASGI app.

    ``gen``: the client that generates (default: ``ImageGen()``); ``home``: where ``arena.sqlite``
    lives (default: the client's ``settings.home``, the same file the CLI uses); ``models``: the
    card ids offered (default: every card that can serve a plain prompt now);
    ``session_budget_usd``: what one browser session may spend (None: no limit);
    ``allowed_hosts``: Host names answered (None: any, for a server behind your own proxy);
    ``rounds``: bootstrap rounds for the intervals on the ratings page.
    """
    if gen is None:
        from ..client import ImageGen

        gen = ImageGen()
    arena = Arena.at_home(home if home is not None else gen.settings.home)
    state = ArenaState(gen, arena, models=models, session_budget_usd=session_budget_usd,
                       secret=secret or secrets.token_bytes(32), rounds=rounds)
    static_dir = resources.files("imagegen.arena") / "static"
    routes = [
        Route("/", partial(_page, state=state, handler=_home), methods=["GET"], name="home"),
        Route("/compare", partial(_post, state=state, handler=_compare), methods=["POST"], name="compare"),
        Route("/c/{cid}", partial(_page, state=state, handler=_comparison), methods=["GET"], name="comparison"),
        Route("/c/{cid}/status", partial(_page, state=state, handler=_status), methods=["GET"], name="status"),
        Route("/c/{cid}/vote", partial(_post, state=state, handler=_vote), methods=["POST"], name="vote"),
        Route("/ratings", partial(_page, state=state, handler=_ratings), methods=["GET"], name="ratings"),
        Route("/ratings.json", partial(_page, state=state, handler=_ratings_json), methods=["GET"], name="ratings_json"),
        Route("/gallery", partial(_page, state=state, handler=_gallery), methods=["GET"], name="gallery"),
        Route("/gallery/{image_id}/rerun", partial(_post, state=state, handler=_rerun), methods=["POST"], name="rerun"),
        Route("/image/{image_id}", partial(_page, state=state, handler=_image), methods=["GET"], name="image"),
        Mount("/static", app=StaticFiles(directory=str(static_dir)), name="static"),
    ]
    app = Starlette(debug=debug, routes=routes)
    app.state.arena = state
    return _Guard(app, allowed_hosts)  # type: ignore[return-value]


class _Guard:
    """Host allow-list and security headers around the app (pure ASGI, so it mounts anywhere)."""

    def __init__(self, app: Starlette, allowed_hosts: list[str] | tuple[str, ...] | None):
        self.app = app
        self.state = app.state
        self.allowed = None if allowed_hosts is None else {h.lower().strip("[]") for h in allowed_hosts}

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.allowed is not None:
            host = _header(scope, b"host")
            name = host.rsplit(":", 1)[0] if not host.startswith("[") else host[1:].split("]")[0]
            if name.lower() not in self.allowed:
                response = Response("host not allowed: the arena page answers only " +
                                    ", ".join(sorted(self.allowed)), status_code=421, media_type="text/plain")
                await response(scope, receive, send)
                return

        async def send_with_headers(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [(b"content-security-policy", _CSP.encode()), (b"x-content-type-options", b"nosniff"),
                            (b"referrer-policy", b"no-referrer"), (b"x-frame-options", b"DENY")]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _header(scope: dict, name: bytes) -> str:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return ""


# -- plumbing: sessions, CSRF, base path -------------------------------------------------


def _base(request: Request) -> str:
    return str(request.scope.get("root_path", "")).rstrip("/")


def _session(request: Request) -> tuple[str, bool]:
    value = request.cookies.get(SESSION_COOKIE, "")
    if len(value) == 32 and all(c in "0123456789abcdef" for c in value):
        return value, False
    return secrets.token_hex(16), True


def _with_cookie(response: Response, request: Request, session: str, new: bool) -> Response:
    if new:
        response.set_cookie(SESSION_COOKIE, session, httponly=True, samesite="strict",
                            path=_base(request) or "/")
    return response


async def _page(request: Request, state: ArenaState, handler: Any) -> Response:
    session, new = _session(request)
    try:
        response = await run_in_threadpool(handler, request, state, session)
    except _HTTPError as exc:
        response = _error(request, exc.status, exc.message)
    return _with_cookie(response, request, session, new)


async def _post(request: Request, state: ArenaState, handler: Any) -> Response:
    session = request.cookies.get(SESSION_COOKIE, "")
    form = await request.form()
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    await form.close()
    origin = request.headers.get("origin")
    if origin and origin != "null" and origin.split("://", 1)[-1] != request.headers.get("host", ""):
        return _error(request, 403, "cross-site request refused (Origin does not match this page)")
    token = fields.get("csrf", "")
    if not session or not hmac.compare_digest(token, state.csrf_for(session)):
        return _error(request, 403, "CSRF token missing or wrong: reload the page and try again")
    try:
        return await run_in_threadpool(handler, request, state, session, fields)
    except _HTTPError as exc:
        return _error(request, exc.status, exc.message)


class _HTTPError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def _error(request: Request, status: int, message: str) -> Response:
    if "application/json" in request.headers.get("accept", ""):
        return JSONResponse({"error": message}, status_code=status)
    return HTMLResponse(t.error_page(base=_base(request), status=status, message=message), status_code=status)


def _see(request: Request, path: str) -> RedirectResponse:
    return RedirectResponse(_base(request) + path, status_code=303)


# -- handlers (sync: they run in the thread pool) ----------------------------------------


ONE_MODEL = ("a comparison needs two models, and only one can serve now: set REPLICATE_API_TOKEN for the "
             "Replicate models, or IMAGEGEN_MODELS_DIR for your own checkpoints")


def _home(request: Request, state: ArenaState, session: str, *, status: int = 200, error: str | None = None,
          prompt: str = "", left: str = "auto", right: str = "auto") -> Response:
    if error is None and len(state.models()) < 2:
        error = ONE_MODEL
    body = t.compare_page(base=_base(request), csrf=state.csrf_for(session), models=state.models(),
                          spent=state.spent_by(session), budget=state.session_budget_usd,
                          router_line=state.router_line(), prompt=prompt, left=left, right=right, error=error)
    return HTMLResponse(body, status_code=status)


def _parse(prompt: str, model: str | None = None) -> GenerateRequest:
    from ..request import GenerateRequest

    request = GenerateRequest.from_midjourney(prompt)
    update: dict[str, Any] = {"batch_size": 1, "batch_count": 1}
    if request.seed is None or request.seed == -1:
        update["seed"] = secrets.randbelow(2**32)
    return request.model_copy(update=update)


def _describe(exc: Exception) -> str:
    from ..cli_support import describe_error

    return describe_error(exc)


def _compare(request: Request, state: ArenaState, session: str, fields: dict[str, str]) -> Response:
    prompt = fields.get("prompt", "").strip()
    left, right = fields.get("left", "auto") or "auto", fields.get("right", "auto") or "auto"

    def again(message: str, status: int = 400) -> Response:
        return _home(request, state, session, status=status, error=message, prompt=prompt, left=left, right=right)

    if not prompt:
        return again("prompt: type what the two images should show")
    try:
        gen_request = _parse(prompt)
    except Exception as exc:  # noqa: BLE001 - a bad prompt is shown back, escaped
        return again(_describe(exc))
    offered = state.models()
    if len(offered) < 2:
        return again(ONE_MODEL)
    for name, value in (("left", left), ("right", right)):
        if value != "auto" and value not in offered:
            return again(f"{name}: {value!r} is not one of the models offered here")
    estimates: dict[str, float] = {}

    def estimate(model: str) -> float:
        if model not in estimates:
            try:
                estimates[model] = state.estimate(gen_request, model)
            except Exception:  # noqa: BLE001 - a model that cannot serve this request costs "infinity"
                estimates[model] = math.inf
        return estimates[model]

    budget_left = state.left_for(session)
    battles = state.arena.battles()
    if left == "auto" or right == "auto":
        fixed = right if left == "auto" else left
        pool = [m for m in offered if m != fixed] if fixed != "auto" else offered

        def fits(a: str, b: str) -> bool:
            if fixed != "auto" and fixed not in (a, b):
                return False
            return estimate(a) + estimate(b) <= budget_left + 1e-12

        choices = pool + ([fixed] if fixed != "auto" else [])
        pair = least_sure_pair(choices, battles, fits=fits)
        if pair is None:
            return again("no pair of models fits this request within the session budget "
                         f"({t.money(max(0.0, budget_left))} left)", 402)
        pair_list = list(pair)
        if secrets.randbelow(2):  # which side a model lands on is random: the vote stays blind
            pair_list.reverse()
        left, right = pair_list
    if left == right:
        return again("left and right must be two different models")
    cost = estimate(left) + estimate(right)
    if not math.isfinite(cost):
        bad = left if not math.isfinite(estimate(left)) else right
        return again(f"{bad} cannot serve this request")
    if cost > budget_left + 1e-12:
        return again(f"this pair is estimated at {t.money(cost)}, more than the {t.money(max(0.0, budget_left))} "
                     "left in this session's budget", 402)
    comparison = state.arena.new_comparison(gen_request, left, right)
    slots = [Slot("left", left, estimate_usd=estimate(left)), Slot("right", right, estimate_usd=estimate(right))]
    state.charge(session, cost)  # at the estimate now; settled to the actual cost as each side ends
    state.start(Job(comparison.id, "compare", gen_request.prompt, gen_request.seed, slots, session), gen_request)
    return _see(request, f"/c/{comparison.id}")


def _job_view(state: ArenaState, cid: str) -> dict[str, Any]:
    """One comparison or re-run, from memory while it runs, else from the store."""
    job = state.jobs.get(cid)
    comparison = state.arena.comparison(cid)
    if job is None and comparison is None:
        raise _HTTPError(404, "no such comparison")
    voted = None
    if comparison is not None and comparison.vote_id is not None:
        vote = state.arena.vote(comparison.vote_id)
        if vote is not None:
            voted = ("both_bad" if vote.both_bad else {"a": "left", "b": "right", "tie": "tie"}[vote.winner])
    base_slots: list[Slot]
    if job is not None:
        base_slots = job.slots
        kind, prompt, seed = job.kind, job.prompt, job.seed
    else:
        assert comparison is not None
        kind, prompt, seed = "compare", comparison.prompt, comparison.request.get("seed")
        base_slots = []
        for side, model, image_id in (("left", comparison.model_left, comparison.image_left),
                                      ("right", comparison.model_right, comparison.image_right)):
            stored = state.arena.image(image_id) if image_id else None
            base_slots.append(Slot(side, model, status="done" if image_id else "error", image_id=image_id,
                                   cost_usd=stored.cost_usd if stored else None,
                                   error=None if image_id else "not generated (the server restarted)"))
    finished = all(s.status in ("done", "error") for s in base_slots)
    revealed = kind != "compare" or voted is not None or (finished and any(s.status == "error" for s in base_slots))
    votable = kind == "compare" and voted is None and all(s.status == "done" for s in base_slots)
    return {"kind": kind, "prompt": prompt, "seed": seed, "slots": base_slots, "voted": voted,
            "revealed": revealed, "votable": votable, "finished": finished}


def _slot_dict(base: str, slot: Slot, revealed: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"side": slot.side, "status": slot.status, "stage": slot.stage, "step": slot.step,
                           "total": slot.total, "label": slot.label(),
                           "image_url": f"{base}/image/{slot.image_id}" if slot.image_id else None,
                           "error": slot.error if revealed else ("failed" if slot.error else None)}
    if revealed:  # names and costs would give the blind away
        out.update(model=slot.model, cost_usd=slot.cost_usd)
    return out


def _comparison(request: Request, state: ArenaState, session: str) -> Response:
    cid = request.path_params["cid"]
    if not valid_id(cid):
        raise _HTTPError(404, "no such comparison")
    view = _job_view(state, cid)
    base = _base(request)
    slots = [_slot_dict(base, s, view["revealed"]) for s in view["slots"]]
    body = t.comparison_page(base=base, csrf=state.csrf_for(session), cid=cid, prompt=view["prompt"],
                             seed=view["seed"], slots=slots, voted=view["voted"], revealed=view["revealed"],
                             votable=view["votable"], kind=view["kind"], models=state.models(),
                             spent=state.spent_by(session), budget=state.session_budget_usd,
                             finished=view["finished"])
    return HTMLResponse(body)


def _status(request: Request, state: ArenaState, session: str) -> Response:
    cid = request.path_params["cid"]
    if not valid_id(cid):
        raise _HTTPError(404, "no such comparison")
    view = _job_view(state, cid)
    base = _base(request)
    return JSONResponse({"kind": view["kind"], "finished": view["finished"], "votable": view["votable"],
                         "voted": view["voted"], "revealed": view["revealed"],
                         "slots": [_slot_dict(base, s, view["revealed"]) for s in view["slots"]]},
                        headers={"cache-control": "no-store"})


def _vote(request: Request, state: ArenaState, session: str, fields: dict[str, str]) -> Response:
    cid = request.path_params["cid"]
    if not valid_id(cid):
        raise _HTTPError(404, "no such comparison")
    try:
        state.arena.vote_on(cid, fields.get("verdict", ""))
    except VoteError as exc:
        raise _HTTPError(409 if "already" in str(exc) else 400, str(exc)) from None
    return _see(request, f"/c/{cid}")


def rating_rows(state: ArenaState) -> tuple[list[dict[str, Any]], list[Any]]:
    votes = state.arena.votes()
    battles = [(v.model_a, v.model_b, {"a": 1.0, "b": 0.0, "tie": 0.5}[v.winner]) for v in votes]
    bt = {r.model: r for r in rate(battles, method="bt", rounds=state.rounds)}
    elo = {r.model: r for r in rate(battles, method="elo", rounds=state.rounds)}
    info = information(battles, {m: r.rating for m, r in bt.items()})
    both_bad: dict[str, int] = {}
    for v in votes:
        if v.both_bad:
            for m in (v.model_a, v.model_b):
                both_bad[m] = both_bad.get(m, 0) + 1
    cards = {}
    try:
        cards = {c.id: c for c in state.gen.models()}
    except Exception:  # noqa: BLE001
        pass
    router = state.router_elo()
    blend_votes = float(getattr(state.gen.policy, "blend_votes", 30.0))
    rows = []
    for model, r in bt.items():
        card = cards.get(model)
        e = elo.get(model)
        routed = router.get(model, (None, ""))
        rows.append({
            "model": model, "bt": r.rating, "bt_low": r.ci_low, "bt_high": r.ci_high,
            "elo": e.rating if e else None, "elo_low": e.ci_low if e else None, "elo_high": e.ci_high if e else None,
            "games": r.games, "wins": r.wins, "losses": r.losses, "ties": r.ties, "both_bad": both_bad.get(model, 0),
            "effective": info.get(model, 0.0), "weight": blend_weight(info.get(model, 0.0), blend_votes),
            "shipped": card.elo.value if card is not None else None,
            "shipped_source": (card.elo.source if card is not None and card.elo.value is not None else ""),
            "router": routed[0], "router_note": routed[1], "enough": info.get(model, 0.0) >= ENOUGH_VOTES,
        })
    return rows, votes


def _ratings(request: Request, state: ArenaState, session: str) -> Response:
    rows, votes = rating_rows(state)
    battles = state.arena.battles()
    models = [r["model"] for r in rows]
    body = t.ratings_page(base=_base(request), rows=rows, matrix_models=models, matrix=win_matrix(battles),
                          total_votes=len(votes), router_line=state.router_line())
    return HTMLResponse(body)


def _ratings_json(request: Request, state: ArenaState, session: str) -> Response:
    rows, votes = rating_rows(state)
    safe = json.loads(json.dumps(rows, default=str).replace("Infinity", "null").replace("NaN", "null"))
    return JSONResponse({"votes": len(votes), "enough_votes": ENOUGH_VOTES,
                         "elo_source": getattr(state.gen.policy, "elo_source", "shipped"), "ratings": safe})


def _gallery(request: Request, state: ArenaState, session: str) -> Response:
    per_page = 48
    try:
        page = max(1, int(request.query_params.get("page", "1")))
    except ValueError:
        page = 1
    total = state.arena.gallery_count()
    pages = max(1, math.ceil(total / per_page))
    images = state.arena.gallery(limit=per_page, offset=(min(page, pages) - 1) * per_page)
    body = t.gallery_page(base=_base(request), csrf=state.csrf_for(session), images=images, models=state.models(),
                          page=min(page, pages), pages=pages, total=total, blind=state.arena.blind_images())
    return HTMLResponse(body)


def _rerun(request: Request, state: ArenaState, session: str, fields: dict[str, str]) -> Response:
    from ..request import GenerateRequest

    image = state.arena.image(request.path_params["image_id"])
    if image is None:
        raise _HTTPError(404, "no such image")
    if image.id in state.arena.blind_images():
        raise _HTTPError(409, "vote on this image's comparison first: a re-run would name its model")
    model = fields.get("model", "")
    if model not in state.models():
        raise _HTTPError(400, f"model: {model!r} is not one of the models offered here")
    try:
        gen_request = GenerateRequest.model_validate({**image.request, "model": model})
        cost = state.estimate(gen_request, model)
    except (ImageGenError, ValueError) as exc:
        raise _HTTPError(400, _describe(exc)) from None
    if cost > state.left_for(session) + 1e-12:
        raise _HTTPError(402, f"this re-run is estimated at {t.money(cost)}, more than the "
                              f"{t.money(max(0.0, state.left_for(session)))} left in this session's budget")
    from ._store import new_id

    job = Job(new_id(), "run", gen_request.prompt, gen_request.seed, [Slot("result", model, estimate_usd=cost)],
              session)
    state.charge(session, cost)
    state.start(job, gen_request)
    return _see(request, f"/c/{job.id}")


def _image(request: Request, state: ArenaState, session: str) -> Response:
    found = state.arena.image_bytes(request.path_params["image_id"])
    if found is None:
        raise _HTTPError(404, "no such image")
    data, fmt = found
    if state.arena.in_blind_comparison(request.path_params["image_id"]):
        # until the vote, the pixels only: the infotext inside the file names the model
        return Response(_without_metadata(data), media_type="image/png", headers={"cache-control": "no-store"})
    return Response(data, media_type=_MEDIA.get(fmt.lower(), "application/octet-stream"),
                    headers={"cache-control": "private, max-age=31536000, immutable"})


def _without_metadata(data: bytes) -> bytes:
    import io

    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        out = io.BytesIO()
        image.convert("RGBA" if "A" in image.getbands() else "RGB").save(out, format="PNG")
    return out.getvalue()
