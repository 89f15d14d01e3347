"""`ReplicateProvider`: the Flux family on Replicate (schnell, dev, dev-lora, pro, 1.1-pro,
1.1-pro-ultra) and LoRA versions trained there (``replicate:owner/name:<version>``).

Image i gets seed s+i, so each image is its own prediction (``num_outputs`` is used only when
``provider_options["replicate"]["num_outputs"]`` asks for it). Predictions run concurrently;
synchronous calls share one connection pool on a background event loop (progress callbacks
then run on that loop's thread).
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import random
import threading
import time
from typing import TYPE_CHECKING, Any

from imagegen.errors import ProviderError
from imagegen.prompt.translate import to_flux
from imagegen.request import SEED_MAX
from imagegen.result import GeneratedImage, GenerateResult

from ..base import (
    BaseProvider,
    Prepared,
    Progress,
    ProgressCallback,
    check_capabilities,
    runnable,
)
from ._downloads import fetch_output, image_size
from ._loop import LoopThread
from ._schemas import REPLICATE_TO_FORMAT, finetune_card, official_cards, target_for
from ._session import (
    TERMINAL,
    CallPolicy,
    ClaimedIds,
    ReplicateSession,
    made_by,
    outputs_complete,
    start_request_count,
)
from ._translate import Plan, PlannedPrediction, plan_request

if TYPE_CHECKING:
    from imagegen.catalog import ModelCard
    from imagegen.request import GenerateRequest, RequestNeeds
    from imagegen.settings import Settings

_PIL_FORMATS = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp"}
NO_TOKEN = "REPLICATE_API_TOKEN is not set"


class ReplicateProvider(BaseProvider):
    name = "replicate"

    def __init__(self, settings: Settings | None = None, *, policy: CallPolicy | None = None):
        super().__init__(settings)
        self.policy = policy or CallPolicy()
        if self.policy.output_hosts is None:  # IMAGEGEN_OUTPUT_HOSTS, by default Replicate's
            self.policy = dataclasses.replace(self.policy,
                                              output_hosts=self.settings.replicate_output_hosts)
        self._claimed = ClaimedIds()
        self.last_requests = 0  # HTTP requests of the last generate call
        self._lock = threading.Lock()
        self._loop: LoopThread | None = None  # for synchronous callers, started on first use
        self._shared: ReplicateSession | None = None

    def __repr__(self) -> str:
        return f"<ReplicateProvider {self.settings.replicate_base_url}>"

    def models(self) -> list[ModelCard]:
        from imagegen.finetune import finetune_cards  # succeeded fine-tunes in the job store

        return official_cards() + finetune_cards(self.settings.home, provider=self.name)

    def card_for(self, model: str) -> ModelCard | None:
        return finetune_card(model)

    def trainer(self) -> Any:
        """LoRA trainings on Replicate (`_trainings.ReplicateTrainer`): the fine-tune capability."""
        from ._trainings import ReplicateTrainer

        return ReplicateTrainer(self.settings, self.policy)

    def prepare(self, request: GenerateRequest, cards: list[ModelCard],
                needs: RequestNeeds | None = None) -> list[Prepared]:
        """The generic check, the token, and the translation into predictions, per card. The
        translation is made once per Flux model, not once per card (a user's fine-tunes all
        share one base model), and is what `generate` sends."""
        needs = request.needs() if needs is None else needs
        no_token = not self.settings.token()
        translator = _Translator(request, needs)
        prepared = []
        for card in cards:
            one = check_capabilities(request, card, needs)
            if no_token:
                one.missing.insert(0, NO_TOKEN)
            plan = translator.plan_for(card)
            if plan is None:
                one.missing.append(f"{card.model} is not a Flux model this adapter can translate")
            else:  # the generic check and the plan share wording for images: said once
                one.missing.extend(m for m in plan.missing if m not in one.missing)
                one.warnings.extend(w for w in plan.warnings if w not in one.warnings)
                one.plan = plan
            if one.ok:  # (a card without a plan is missing something) priced from what the plan sends
                one.cost_usd = plan.estimate_usd(card)
            prepared.append(one)
        return prepared

    # -- generation -----------------------------------------------------------------------

    def generate(self, prepared: Prepared, *, progress: ProgressCallback | None = None) -> GenerateResult:
        """Runs on the provider's own event loop thread, reusing its connections."""
        runnable(prepared)
        with self._lock:
            if self._loop is None:
                self._loop = LoopThread("imagegen-replicate")
        return self._loop.run(self._generate_shared(prepared, progress),
                              cancel_grace_s=self.policy.cancel_grace_s + 3)

    async def agenerate(self, prepared: Prepared, *,
                        progress: ProgressCallback | None = None) -> GenerateResult:
        """Runs on the caller's loop with connections of its own for this call."""
        runnable(prepared)
        async with self._new_session() as session:
            return await self._generate_with(session, prepared, progress)

    def close(self) -> None:
        with self._lock:
            loop, self._loop = self._loop, None
        if loop is not None:
            if self._shared is not None:
                loop.run(self._shared.__aexit__(None, None, None))
                self._shared = None
            loop.stop()

    def _new_session(self) -> ReplicateSession:
        return ReplicateSession(self.settings.token() or "", self.settings.replicate_base_url,
                                self.policy, self._claimed)

    async def _generate_shared(self, prepared: Prepared, progress: ProgressCallback | None) -> GenerateResult:
        if self._shared is None:  # only this loop's thread gets here: no race
            self._shared = await self._new_session().__aenter__()
        return await self._generate_with(self._shared, prepared, progress)

    async def _generate_with(self, session: ReplicateSession, prepared: Prepared,
                             progress: ProgressCallback | None) -> GenerateResult:
        counter = start_request_count()
        run = _Run(session, prepared.plan, prepared.card, prepared.request, progress)
        try:
            outcomes = await run.all()
        finally:
            self.last_requests = counter[0]
        return run.result(outcomes, counter[0])


class _Run:
    """The predictions of one request, run concurrently, and the result they make."""

    def __init__(self, session: ReplicateSession, plan: Plan, card: ModelCard,
                 request: GenerateRequest, progress: ProgressCallback | None):
        self.session, self.plan, self.card, self.request = session, plan, card, request
        self.progress = progress
        self.open_ids: set[str] = set()
        # Creates sent whose reply has not been read: (input, task).
        self.in_flight: dict[int, tuple[dict[str, Any], asyncio.Future]] = {}
        self.warnings: list[str] = []

    async def all(self) -> list[Any]:
        limit = asyncio.Semaphore(self.session.policy.max_concurrency)

        async def guarded(planned: PlannedPrediction) -> Any:
            async with limit:
                try:
                    return await self.one(planned)
                except ProviderError as exc:  # the others' images are paid for: keep them
                    return exc

        try:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(guarded(p)) for p in self.plan.predictions]
        except Exception as grouped:  # an ExceptionGroup: e.g. a cancel from the progress callback
            await self._cancel_remote()
            raise getattr(grouped, "exceptions", [grouped])[0] from None
        except asyncio.CancelledError:
            await self._cancel_remote()
            raise
        return [t.result() for t in tasks]

    async def _cancel_remote(self) -> None:
        """Cancel what was started, including predictions whose create reply had not come."""
        ids = set(self.open_ids)
        if self.in_flight:
            # A create already sent is let finish (briefly) so its prediction can be canceled.
            tasks = {task: sent for sent, task in self.in_flight.values()}
            done, pending = await asyncio.wait(tasks, timeout=self.session.policy.cancel_grace_s)
            ids.update(t.result()["id"] for t in done if not t.cancelled() and not t.exception())
            if pending:  # still held (sync wait): long enough on the server to be listed
                try:
                    recent = await self.session.list_since(time.time() - 300)
                except ProviderError:
                    recent = []
                ids.update(p["id"] for p in recent if p.get("status") not in TERMINAL and any(
                    made_by(p, self.plan.target, tasks[t]) for t in pending))
                for task in pending:
                    task.cancel()
        await asyncio.gather(*(self.session.cancel(i) for i in ids))

    def _report(self, stage: str, planned: PlannedPrediction, message: str = "") -> None:
        if self.progress is not None:
            self.progress(Progress(stage, image_index=planned.first_index, total=len(
                self.plan.predictions), message=message))

    async def one(self, planned: PlannedPrediction) -> _Paid:
        session, plan = self.session, self.plan
        self._report("queued", planned)
        # Shielded: cancelling this task must not abort a create the server may be making.
        create = asyncio.ensure_future(session.create(plan.target, planned.input))
        self.in_flight[planned.first_index] = (planned.input, create)
        prediction = await asyncio.shield(create)
        self.open_ids.add(prediction["id"])
        del self.in_flight[planned.first_index]
        priced_per_second = self.card.price.per_gpu_second > 0
        prediction = await session.wait(
            prediction, len(planned.seeds), need_metrics=priced_per_second,
            on_status=lambda status: self._report("running", planned, status))
        self.open_ids.discard(prediction["id"])
        status = prediction.get("status")
        if status != "succeeded" and not (status == "processing" and outputs_complete(
                prediction, len(planned.seeds))):
            error = _failure(prediction)
            if status in ("failed", "canceled"):  # billed for what ran (per-second models)
                charge = self.card.price.charge(prediction.get("metrics"), tier=self.plan.tier(self.card))
                if charge:
                    error.cost_usd, error.prediction_ids = charge, [prediction["id"]]
            raise error
        outputs = prediction["output"]
        urls = outputs if isinstance(outputs, list) else [outputs]
        if len(urls) < len(planned.seeds):
            self.warnings.append(f"prediction {prediction['id']} returned {len(urls)} of "
                                 f"{len(planned.seeds)} images (the safety checker drops flagged ones)")
        self._report("download", planned)
        # From here the prediction is paid for: an output that cannot be fetched or read is
        # recorded (with the prediction id) and the others are still delivered.
        paid = _Paid(planned, prediction, produced=len(urls[:len(planned.seeds)]))
        for offset, url in enumerate(urls[:len(planned.seeds)]):
            try:
                data = await fetch_output(session.http, url, base_url=session.base_url,
                                          policy=session.policy)
                paid.images.append(self._image(data, url, planned.seeds[offset]))
            except ProviderError as exc:
                paid.undelivered.append((url, exc))
        return paid

    def _image(self, data: bytes, url: str, seed: int | None) -> GeneratedImage:
        from PIL import Image

        plan = self.plan
        limit = self.session.policy.max_output_pixels
        size = image_size(data)  # from the header: a decompression bomb is never decoded
        if size is not None and size[0] * size[1] > limit:
            raise ProviderError(f"output is {size[0]}x{size[1]} pixels, over the {limit:,}-pixel "
                                "limit (CallPolicy.max_output_pixels); not decoded",
                                provider="replicate")
        try:
            with Image.open(io.BytesIO(data)) as image:
                if image.size[0] * image.size[1] > limit:
                    raise ProviderError(f"output is {image.size[0]}x{image.size[1]} pixels, over "
                                        f"the {limit:,}-pixel limit; not decoded",
                                        provider="replicate")
                image.load()
                found = _PIL_FORMATS.get(image.format or "")
                if plan.output_ext is None and found is not None:  # the model picks its format
                    convert = plan.convert_to if plan.convert_to != REPLICATE_TO_FORMAT[found] else None
                    plan = dataclasses.replace(plan, output_ext=found, convert_to=convert)
                if found != plan.output_ext:
                    raise ProviderError(f"output is {image.format or 'not an image'}, "
                                        f"expected {plan.output_ext}", provider="replicate")
                size = image.size
                converted = None
                if plan.convert_to:
                    converted = GeneratedImage.from_pil(image.copy(), format=plan.convert_to)
        except ProviderError:
            raise
        except Exception as exc:  # noqa: BLE001 - OSError, SyntaxError, DecompressionBombError...
            raise ProviderError(f"output does not decode as {plan.output_ext}: "
                                f"{type(exc).__name__}: {exc}", provider="replicate") from None
        fmt = plan.convert_to or REPLICATE_TO_FORMAT[plan.output_ext or found or "png"]
        return GeneratedImage(data=converted.data if converted else data, format=fmt,
                              width=size[0], height=size[1], seed=seed,
                              infotext=self._infotext(seed),
                              url=None if url.startswith("data:") else url)

    def _infotext(self, seed: int | None) -> str:
        from imagegen.prompt.infotext import format_infotext

        width, height = self.plan.size
        return format_infotext({"Steps": self.plan.steps, "CFG scale": self.plan.guidance,
                                "Seed": seed, "Size": f"{width}x{height}",
                                "Model": self.card.model}, prompt=self.request.prompt)

    def result(self, outcomes: list[Any], requests: int) -> GenerateResult:
        """The images of the paid predictions, charged as Replicate charges them, including
        predictions whose outputs could not be fetched: those are named (ids and URLs) in the
        warnings and ``raw["undelivered"]``, or, when no image arrived at all, in a
        `ProviderError` whose ``cost_usd`` the client counts against the budget."""
        paid = sorted((o for o in outcomes if isinstance(o, _Paid)), key=lambda o: o.planned.first_index)
        errors = [o for o in outcomes if isinstance(o, Exception)]
        images, ids, predict_time = [], [], 0.0
        cost, actual = 0.0, True
        price, tier = self.card.price, self.plan.tier(self.card)
        undelivered: list[dict[str, Any]] = []
        for one in paid:
            images.extend(one.images)
            ids.append(one.prediction["id"])
            metrics = one.prediction.get("metrics") or {}
            predict_time += float(metrics.get("predict_time") or 0.0)
            charge = price.charge(metrics, tier=tier)  # what Replicate bills, from its counts
            if charge is None:  # a metric the price needs is missing: this one is estimated
                actual = False
                width, height = self.plan.size
                charge = price.estimate(images=one.produced, output_pixels=width * height,
                                        input_pixels=self.plan.input_pixels,
                                        gpu_seconds=self.card.latency_s * one.produced, tier=tier)
            cost += charge
            undelivered.extend({"prediction_id": one.prediction["id"],
                                "url": None if url.startswith("data:") else url,
                                "error": str(exc)} for url, exc in one.undelivered)
        charged_errors = [e for e in errors if isinstance(e, ProviderError) and e.cost_usd]
        cost = round(cost + sum(e.cost_usd for e in charged_errors), 6)
        ids += [pid for e in charged_errors for pid in e.prediction_ids]
        if not images:
            if not paid:
                first = errors[0]
                if isinstance(first, ProviderError) and charged_errors:
                    first.cost_usd, first.prediction_ids = cost, ids  # all that was billed
                raise first
            causes = [exc for one in paid for _, exc in one.undelivered] + errors
            paid_ids = ", ".join(ids)
            raise ProviderError(
                f"{len(paid)} prediction(s) succeeded and were charged (${cost:.4f}) but no "
                f"output could be fetched: {causes[0]}; the outputs stay on Replicate under "
                f"prediction {paid_ids} (GET /v1/predictions/<id>)", provider="replicate",
                detail={"undelivered": undelivered, "errors": [str(e) for e in errors]},
                retryable=all(getattr(c, "retryable", True) for c in causes), cost_usd=cost,
                prediction_ids=ids)
        warnings = list(self.warnings)
        if errors:
            warnings.append(f"{len(errors)} of {len(outcomes)} predictions failed; "
                            f"{len(images)} images delivered: {errors[0]}")
        if undelivered:
            named = ", ".join(dict.fromkeys(u["prediction_id"] for u in undelivered))
            warnings.append(f"{len(undelivered)} paid output(s) could not be fetched (prediction "
                            f"{named}): {undelivered[0]['error']}")
        return GenerateResult(
            images=images, provider="replicate", model=self.card.id, cost_usd=cost,
            cost_source="actual" if actual else "estimate",
            gpu_seconds=predict_time, warnings=warnings,
            raw={"prediction_ids": ids, "requests": requests, "undelivered": undelivered,
                 "errors": [str(e) for e in errors]})


@dataclasses.dataclass
class _Paid:
    """A prediction that succeeded (so was charged), the images fetched from it, and the
    outputs that could not be fetched or read."""

    planned: PlannedPrediction
    prediction: dict[str, Any]
    produced: int  # outputs the prediction made (what was paid for)
    images: list[GeneratedImage] = dataclasses.field(default_factory=list)
    undelivered: list[tuple[str, ProviderError]] = dataclasses.field(default_factory=list)


class _Translator:
    """One request's translations for many cards: the prompt text once (it is the same for every
    Flux model), and a plan per Flux model."""

    def __init__(self, request: GenerateRequest, needs: RequestNeeds):
        self.request, self.needs = request, needs
        self.plans: dict[tuple[int, str], Plan] = {}
        self.prompt: tuple[str, list[str]] | None = None

    def plan_for(self, card: ModelCard) -> Plan | None:
        """The translation for ``card`` (None: not a model this adapter knows), remembered by
        what it depends on: the card's Flux model, and the card's name only when raw provider
        options are given (it appears in their messages). A shared plan gets the card's own
        target."""
        try:
            target = target_for(card)
        except KeyError:
            return None
        request = self.request
        key = (id(target.flux), card.model if request.provider_options.get("replicate") else "")
        if key not in self.plans:
            if self.prompt is None:
                self.prompt = to_flux(request)
            # The client resolves a random seed before preparing; a direct call gets one here.
            self.plans[key] = plan_request(request, card, seed=random.randint(0, SEED_MAX),
                                           needs=self.needs, prompt=self.prompt)
        plan = self.plans[key]
        return plan if plan.target == target else dataclasses.replace(plan, target=target)


def _failure(prediction: dict[str, Any]) -> ProviderError:
    status, pid = prediction.get("status"), prediction.get("id")
    detail = {"prediction_id": pid, "status": status}
    if status == "aborted":
        return ProviderError(f"prediction {pid} was aborted before it started (deadline); "
                             "not charged", provider="replicate", detail=detail)
    if status == "canceled":
        return ProviderError(f"prediction {pid} was canceled", provider="replicate",
                             detail=detail, retryable=False)
    return ProviderError(f"prediction {pid} {status}: {prediction.get('error') or 'no output'}",
                         provider="replicate", detail=detail)


__all__ = ["ReplicateProvider", "CallPolicy", "NO_TOKEN"]
