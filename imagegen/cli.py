"""The `imagegen` command: a thin skin over the library, like `llm`'s CLI.

Exit codes: 0 ok; 2 a bad option, prompt or request (one line naming the field); 1 a provider
or routing failure. No traceback unless `--debug`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .errors import ConfigError, FineTuneError, ImageGenError, PromptSyntaxError
from .request import GenerateRequest, HiresFix, LoraRef
from .settings import Settings

if TYPE_CHECKING:
    from .client import ImageGen
    from .router import RouteDecision

app = typer.Typer(help="Generate images on local Stable Diffusion or Replicate's Flux models.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
_state = {"debug": False}

USAGE_ERRORS = (ValidationError, PromptSyntaxError, ConfigError, FineTuneError, ValueError)


@app.callback()
def main(debug: bool = typer.Option(False, "--debug", help="Show tracebacks.")) -> None:
    _state["debug"] = debug


def run_guarded(fn: Any) -> Any:
    """Turn our errors into one-line messages and exit codes."""
    try:
        return fn()
    except typer.Exit:
        raise
    except USAGE_ERRORS as exc:
        if _state["debug"]:
            raise
        err.print(f"[red]error:[/red] {escape(describe_error(exc))}", highlight=False)
        raise typer.Exit(2) from None
    except ImageGenError as exc:
        if _state["debug"]:
            raise
        err.print(f"[red]error:[/red] {escape(describe_error(exc))}", highlight=False)
        raise typer.Exit(1) from None


def describe_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        parts = []
        for e in exc.errors():
            field = ".".join(str(p) for p in e["loc"]) or "request"
            parts.append(f"{field}: {e['msg'].removeprefix('Value error, ')}")
        return "; ".join(parts)
    return " ".join(str(exc).split("\n")[0:1]) if not isinstance(exc, FineTuneError) else str(exc)


def make_client(strategy: str | None = None, budget: float | None = None) -> ImageGen:
    from .client import ImageGen
    from .router import RoutePolicy

    policy = RoutePolicy(strategy=strategy) if strategy else None
    return ImageGen(policy=policy, budget_usd=budget)


def parse_lora(text: str) -> LoraRef:
    name, _, weight = text.rpartition(":") if ":" in text else (text, "", "1")
    try:
        return LoraRef(name=name or text, weight=float(weight))
    except ValueError:
        raise typer.BadParameter(f"--lora {text!r}: expected NAME or NAME:WEIGHT") from None


# -- generate ---------------------------------------------------------------------------

@app.command()
def generate(
    prompt: str = typer.Argument(..., help="Prompt; Midjourney-style parameters (--ar 16:9 --no text) allowed."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="provider:model, e.g. local:demo"),
    strategy: Optional[str] = typer.Option(None, help="cost | quality | speed | balanced"),
    negative: Optional[str] = typer.Option(None, "--negative", "-n", help="Negative prompt."),
    width: Optional[int] = typer.Option(None, "--width", "-W"),
    height: Optional[int] = typer.Option(None, "--height", "-H"),
    steps: Optional[int] = typer.Option(None),
    cfg: Optional[float] = typer.Option(None, help="CFG scale."),
    sampler: Optional[str] = typer.Option(None, help='A1111 sampler, e.g. "DPM++ 2M Karras".'),
    scheduler: Optional[str] = typer.Option(None, help='A1111 schedule type, e.g. "Karras".'),
    seed: Optional[int] = typer.Option(None),
    variation_seed: Optional[int] = typer.Option(None, help="A1111 variation seed (-1: random)."),
    variation_strength: Optional[float] = typer.Option(None, help="0 = the seed's image, 1 = the variation seed's."),
    clip_skip: Optional[int] = typer.Option(None, help="A1111 numbering: 1 = none, 2 = skip the last layer."),
    vae: Optional[str] = typer.Option(None, help="VAE override (name in VAE/ or a path)."),
    lora: list[str] = typer.Option([], help="NAME:WEIGHT, repeatable."),
    hires: Optional[float] = typer.Option(None, help="Hires fix upscale factor, e.g. 2."),
    init_image: Optional[Path] = typer.Option(None, help="img2img source image."),
    denoise: Optional[float] = typer.Option(None, help="Denoising strength for img2img / hires."),
    batch_size: Optional[int] = typer.Option(None),
    batch_count: Optional[int] = typer.Option(None),
    output_format: Optional[str] = typer.Option(None, "--format", help="png | jpeg | webp"),
    budget: Optional[float] = typer.Option(None, help="Refuse to spend more than this many USD."),
    out: Path = typer.Option(Path("."), "-o", "--out", help="Output directory."),
    record: bool = typer.Option(False, "--record", help="Also keep the images in the arena gallery."),
) -> None:
    """Generate images and save them with their A1111 parameters."""
    overrides: dict[str, Any] = {
        "model": model, "negative_prompt": negative, "width": width, "height": height, "steps": steps,
        "cfg_scale": cfg, "sampler": sampler, "scheduler": scheduler, "seed": seed,
        "variation_seed": variation_seed, "variation_strength": variation_strength, "clip_skip": clip_skip,
        "vae": vae, "batch_size": batch_size, "batch_count": batch_count, "output_format": output_format,
    }
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if lora:
        overrides["loras"] = [parse_lora(item) for item in lora]
    if hires is not None:
        overrides["hires"] = HiresFix(scale=hires, **({"denoising_strength": denoise} if denoise is not None else {}))
    if init_image is not None:
        overrides["init_image"] = init_image
        if denoise is not None:
            overrides["denoising_strength"] = denoise

    def job() -> None:
        requests = GenerateRequest.expand_midjourney(prompt, **overrides)
        with make_client(strategy, budget) as gen:
            for index, request in enumerate(requests):
                if len(requests) > 1:
                    console.print(f"[bold]job {index + 1}/{len(requests)}[/bold]: {request.prompt}")
                result = _generate_with_progress(gen, request)
                _print_result(result, result.save(out))
                if record:
                    from .arena import record_result

                    record_result(request, result, home=gen.settings.home)

    run_guarded(job)


def _generate_with_progress(gen: ImageGen, request: GenerateRequest) -> Any:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), console=err, transient=True, disable=not err.is_terminal) as bar:
        task = bar.add_task("starting", total=None)

        def on_progress(event: Any) -> None:
            label = f"{event.stage} image {event.image_index + 1}" if event.stage == "step" else event.stage
            bar.update(task, description=label, completed=event.step, total=event.total or None)

        return gen.generate(request, progress=on_progress)


def _print_result(result: Any, paths: list[Path]) -> None:
    for path, image in zip(paths, result.images):
        console.print(f"saved [green]{path}[/green]  seed {image.seed}  {image.width}x{image.height}",
                      highlight=False)
    console.print(f"provider {result.provider}  model {result.model}  cost ${result.cost_usd:.4f}  "
                  f"time {result.latency_s:.2f}s", highlight=False)
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)


# -- route / models ---------------------------------------------------------------------

@app.command()
def route(
    prompt: str = typer.Argument(...),
    strategy: Optional[str] = typer.Option(None, help="cost | quality | speed | balanced"),
    model: Optional[str] = typer.Option(None, "--model", "-m"),
) -> None:
    """Show which model the router would choose, the ranked candidates, and why others are out."""

    def job() -> None:
        overrides = {"model": model} if model else {}
        request = GenerateRequest.from_midjourney(prompt, **overrides)
        with make_client(strategy) as gen:
            console.print(route_table(gen.route(request)))

    run_guarded(job)


def route_table(decision: RouteDecision) -> Table:
    table = Table(title=f"route ({decision.strategy}): chose {decision.chosen.id}")
    for column in ("", "model", "score", "est. cost", "est. latency", "notes"):
        table.add_column(column, overflow="fold")
    for rank, c in enumerate(decision.candidates, 1):
        marker = "→" if c.card.id == decision.chosen.id else str(rank)
        table.add_row(marker, c.card.id, f"{c.score:.4g}", f"${c.cost_usd:.4f}", f"{c.latency_s:.1f}s",
                      "; ".join(c.warnings))
    for e in decision.excluded:
        table.add_row("✗", e.card.id, "", "", "", e.reason, style="dim")
    return table


@app.command()
def models() -> None:
    """The catalog: price, Elo (with source and date), latency, capabilities."""

    def job() -> None:
        with make_client() as gen:
            table = Table(title="models")
            for column in ("model", "family", "price", "Elo", "latency", "capabilities"):
                table.add_column(column, overflow="fold")
            for card in gen.models():
                table.add_row(card.id, card.family, _price(card), _elo(card), f"{card.latency_s:g}s",
                              _caps(card))
            console.print(table)

    run_guarded(job)


def _price(card: Any) -> str:
    p = card.price
    parts = [f"${p.per_image:g}/image" if p.per_image else "",
             f"${p.per_megapixel:g}/MP" if p.per_megapixel else "",
             f"${p.per_gpu_second:g}/GPU-s" if p.per_gpu_second else ""]
    return " ".join(x for x in parts if x) or "free"


def _elo(card: Any) -> str:
    if card.elo.value is None:
        return "unknown"
    return f"{card.elo.value:.0f} ({card.elo.source}, {card.elo.date})"


def _caps(card: Any) -> str:
    caps = card.capabilities
    names = ["negative_prompt", "seed", "lora", "img2img", "inpaint", "controlnet", "hires_fix", "clip_skip"]
    return ", ".join(n for n in names if getattr(caps, n))


# -- info -------------------------------------------------------------------------------

@app.command()
def info(
    image: Path = typer.Argument(..., exists=True, dir_okay=False),
    as_request: bool = typer.Option(False, "--as-request", help="Print it as GenerateRequest JSON."),
) -> None:
    """Print the A1111 parameters stored in a PNG, JPEG or WebP."""
    from .result import read_infotext

    def job() -> None:
        text = read_infotext(image)
        if not text:
            err.print(f"[red]error:[/red] {image}: no generation parameters stored in this image")
            raise typer.Exit(1)
        if as_request:
            request = GenerateRequest.from_infotext(text)
            console.print_json(request.model_dump_json(exclude_defaults=True))
        else:
            sys.stdout.write(text + "\n")

    run_guarded(job)


# -- fine-tunes -------------------------------------------------------------------------

finetune_app = typer.Typer(help="Cloud LoRA fine-tunes on Replicate.", no_args_is_help=True)
app.add_typer(finetune_app, name="finetune")


@finetune_app.command("create")
def finetune_create(
    images: Path = typer.Argument(..., exists=True, help="Folder of images (captions as .txt beside them) or a .zip."),
    destination: str = typer.Option(..., "--destination", "-d", help="owner/name of the new model."),
    trigger_word: str = typer.Option("TOK", "--trigger-word", "-t"),
    steps: int = typer.Option(1000),
    lora_rank: int = typer.Option(16),
    learning_rate: float = typer.Option(4e-4),
    autocaption: bool = typer.Option(True),
    wait: bool = typer.Option(False, help="Wait for the training to finish."),
    budget: Optional[float] = typer.Option(None, help="Refuse to start if the estimate exceeds this (USD)."),
) -> None:
    """Check the dataset, upload it and start a training."""
    from .finetune import FineTuneRequest

    def job() -> None:
        request = FineTuneRequest(images=images, destination=destination, trigger_word=trigger_word, steps=steps,
                                  lora_rank=lora_rank, learning_rate=learning_rate, autocaption=autocaption)
        with make_client(budget=budget) as gen:
            started = gen.finetune(request)
            _print_job(started.wait() if wait else started)

    run_guarded(job)


@finetune_app.command("status")
def finetune_status(job_id: str, logs: bool = typer.Option(False, help="Print the training logs.")) -> None:
    """Refresh one job from Replicate and print it."""

    def job() -> None:
        with make_client() as gen:
            found = gen.job(job_id).refresh()
            _print_job(found)
            if logs and found.logs:
                sys.stdout.write(found.logs + "\n")

    run_guarded(job)


@finetune_app.command("wait")
def finetune_wait(job_id: str, timeout: Optional[float] = typer.Option(None, help="Seconds.")) -> None:
    """Wait for a job (also one started by another process) to finish."""

    def job() -> None:
        with make_client() as gen:
            _print_job(gen.job(job_id).wait(timeout=timeout))

    run_guarded(job)


@finetune_app.command("list")
def finetune_list() -> None:
    """Every stored fine-tune job, newest first."""

    def job() -> None:
        with make_client() as gen:
            table = Table(title="fine-tunes")
            for column in ("id", "status", "destination", "version", "cost"):
                table.add_column(column, overflow="fold")
            for item in gen.jobs():
                table.add_row(item.id, item.status, item.destination, item.version or "", f"${item.cost_usd:.2f}")
            console.print(table)

    run_guarded(job)


@finetune_app.command("cancel")
def finetune_cancel(job_id: str) -> None:
    """Cancel a running training."""

    def job() -> None:
        with make_client() as gen:
            _print_job(gen.job(job_id).cancel())

    run_guarded(job)


def _print_job(job: Any) -> None:
    cost = f"${job.cost_usd:.2f}" + ("" if job.cost_is_actual else " (estimate)")
    console.print(f"{job.id}  {job.status}  {job.destination}  {cost}", highlight=False)
    if job.version:
        console.print(f"model: replicate:{job.version}", highlight=False)
    for warning in job.warnings or []:
        console.print(f"[yellow]warning:[/yellow] {escape(warning)}", highlight=False)
    if job.error:
        console.print(f"[red]error:[/red] {escape(str(job.error))}", highlight=False)


# -- arena ------------------------------------------------------------------------------

arena_app = typer.Typer(help="Your own pairwise votes and the Elo / Bradley-Terry ratings from them.",
                        no_args_is_help=True)
app.add_typer(arena_app, name="arena")


@arena_app.command("vote")
def arena_vote(
    prompt: str = typer.Argument(...),
    model_a: str = typer.Argument(..., help="Card id of image A's model."),
    model_b: str = typer.Argument(..., help="Card id of image B's model."),
    winner: str = typer.Argument(..., help="a, b, tie, or the winning card id."),
) -> None:
    """Record which of two images (from two models) was better for a prompt."""
    from . import arena

    def job() -> None:
        vote = arena.record_vote(prompt, model_a, model_b, winner, home=Settings().home)
        console.print(f"recorded vote {vote.id}: {vote.model_a} vs {vote.model_b} -> {vote.winner}",
                      highlight=False)

    run_guarded(job)


@arena_app.command("ratings")
def arena_ratings(method: str = typer.Option("bt", help="bt (Bradley-Terry) or elo (online)."),
                  rounds: int = typer.Option(200, help="Bootstrap rounds for the 95% interval.")) -> None:
    """Ratings from your votes, best first."""
    from . import arena

    def job() -> None:
        if method not in ("bt", "elo"):
            raise ValueError(f"--method must be bt or elo, not {method!r}")
        rows = arena.ratings(home=Settings().home, method=method, rounds=rounds)  # type: ignore[arg-type]
        table = Table(title=f"your ratings ({method})")
        for column in ("model", "rating", "95% CI", "games", "W-L-T"):
            table.add_column(column)
        for r in rows:
            table.add_row(r.model, f"{r.rating:.0f}", f"{r.ci_low:.0f}..{r.ci_high:.0f}", str(r.games),
                          f"{r.wins}-{r.losses}-{r.ties}")
        console.print(table)

    run_guarded(job)


def _arena_serve_command() -> None:
    from .arena._cli import serve

    arena_app.command("serve")(serve)


_arena_serve_command()


# -- emulator ---------------------------------------------------------------------------

@app.command()
def emulator(port: int = typer.Option(8787, help="Port on 127.0.0.1 (0: any free port)."),
             processing_time: float = typer.Option(1.0, help="Emulated seconds per prediction."),
             duration: Optional[float] = typer.Option(None, help="Stop after this many seconds.")) -> None:
    """Run the FakeReplicate emulator in the foreground for your own integration tests."""
    import time

    from .testing import FakeReplicate

    fake = FakeReplicate(port=port, processing_time_s=processing_time).start()
    try:
        console.print(f"FakeReplicate listening on {fake.base_url}. Set:")
        for name, value in fake.env().items():
            sys.stdout.write(f"export {name}={value}\n")
        sys.stdout.flush()
        deadline = time.monotonic() + duration if duration else None
        while deadline is None or time.monotonic() < deadline:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        fake.stop()




if __name__ == "__main__":  # pragma: no cover
    app()
