"""The `imagegen` command: a thin skin over the library, like `llm`'s CLI.

Exit codes: 0 ok; 2 a bad option, prompt, request or input file (one line naming the field
or file); 1 a failure at run time: a provider, routing or budget refusal, a busy port, a file
that cannot be written, nothing to show. Every error is one line on stderr; `--debug` shows
the traceback instead. Output piped elsewhere is never wrapped (a model id stays on one line).
"""

from __future__ import annotations

import difflib
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import typer
from pydantic import ValidationError
from rich.markup import escape
from rich.table import Table
from typer.core import TyperGroup

from .cli_support import (
    console,
    describe_error,
    err,
    make_client,
    make_policy,  # noqa: F401  (part of this module's surface: tests and scripts build policies with it)
    run_guarded,
    state,
)
from .cli_support import one_line as _safe
from .errors import ConfigError, FineTuneError, ImageGenError, PromptSyntaxError
from .request import GenerateRequest, HiresFix, LoraRef
from .server._cli import serve_command  # typer only; FastAPI loads when it runs
from .settings import Settings

if TYPE_CHECKING:
    from .client import ImageGen
    from .router import RouteDecision

try:  # typer >= 0.16 vendors click
    from typer._click.exceptions import ClickException
except ImportError:  # pragma: no cover
    from click.exceptions import ClickException


class _OneLineErrors(TyperGroup):
    """Usage errors (a bad option value, a missing argument) as one line and exit 2, like ours,
    instead of click's usage box."""

    def main(self, args: Any = None, prog_name: Any = None, complete_var: Any = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        argv = list(sys.argv[1:] if args is None else args)
        try:
            code = super().main(argv, prog_name, complete_var, False, **extra)
        except ClickException as exc:
            if type(exc).__name__ == "NoArgsIsHelpError":  # bare `imagegen`: the help, as before
                if exc.format_message().strip():  # (rich prints it while building the error)
                    sys.stderr.write(exc.format_message() + "\n")
                sys.exit(exc.exit_code)
            ctx = getattr(exc, "ctx", None)
            hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
            err.print(f"[red]error:[/red] {_safe(exc.format_message())}{_safe(hint) and ' ' + _safe(hint)}",
                      highlight=False)
            sys.exit(exc.exit_code)
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(help="Generate images on local Stable Diffusion or Replicate's Flux models.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  cls=_OneLineErrors)
@app.callback()
def main(debug: bool = typer.Option(False, "--debug", help="Show tracebacks.")) -> None:
    state["debug"] = debug


# The routing options `generate` and `route` share (RoutePolicy fields).
_MAX_COST = typer.Option(None, "--max-cost", min=0.0, help="Most USD per image a model may cost.")
_MIN_ELO = typer.Option(None, "--min-elo", help="Only models rated at least this (Elo; unrated ones are out).")
_LOCAL_ONLY = typer.Option(False, "--local-only", help="Only models that run on this machine.")
_ELO_SOURCE = typer.Option(None, "--elo-source",
                           help="Quality ratings: shipped (the catalog's), user (your arena votes) or blend.")


def parse_lora(text: str) -> LoraRef:
    name, _, weight = text.rpartition(":") if ":" in text else (text, "", "1")
    try:
        number = float(weight)
    except ValueError:  # a name holding ':' (a path, a URL), no weight
        name, number = text, 1.0
    return LoraRef(name=name or text, weight=number)


def _checked_out_dir(out: Path) -> Path:
    """Create the output folder before anything is paid for, and prove it takes files."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".imagegen-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or "not a usable folder name"
        raise ConfigError(f"--out {out}: cannot write images there ({reason})") from None
    return out


def _emit_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")


# -- generate ---------------------------------------------------------------------------

@app.command()
def generate(
    prompt: Optional[str] = typer.Argument(None, help="Prompt; Midjourney-style parameters (--ar 16:9 --no text) allowed."),
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
    budget: Optional[float] = typer.Option(None, min=0.0, help="Refuse to spend more than this many USD."),
    max_cost: Optional[float] = _MAX_COST,
    min_elo: Optional[float] = _MIN_ELO,
    local_only: bool = _LOCAL_ONLY,
    elo_source: Optional[str] = _ELO_SOURCE,
    out: Path = typer.Option(Path("."), "-o", "--out", help="Output directory."),
    record: bool = typer.Option(False, "--record", help="Also keep the images in the arena gallery."),
    batch: Optional[Path] = typer.Option(None, "--batch", help="A file of prompts, one a line (# comments), "
                                         "run together over every provider the router picks."),
    concurrency: int = typer.Option(4, "--concurrency", min=1, help="With --batch: requests at once."),
) -> None:
    """Generate images and save them with their A1111 parameters.

    `--repeat N` with a fixed seed varies it: repeat k starts at seed + k x images per job."""
    constraints = {"max_cost_per_image": max_cost, "min_elo": min_elo, "local_only": local_only,
                   "elo_source": elo_source}

    def job() -> None:
        overrides: dict[str, Any] = {
            "model": model, "negative_prompt": negative, "width": width, "height": height, "steps": steps,
            "cfg_scale": cfg, "sampler": sampler, "scheduler": scheduler, "seed": seed,
            "variation_seed": variation_seed, "variation_strength": variation_strength, "clip_skip": clip_skip,
            "vae": vae, "batch_size": batch_size, "batch_count": batch_count, "output_format": output_format,
        }
        overrides = {k: v for k, v in overrides.items() if v is not None}
        if lora:
            overrides["loras"] = [parse_lora(item) for item in lora]
        if denoise is not None and hires is None and init_image is None:
            raise ConfigError("--denoise sets the strength of --hires or --init-image; give one of them "
                              "(or leave --denoise out)")
        if hires is not None:
            overrides["hires"] = _hires_fix(hires, denoise if init_image is None else None)
        if init_image is not None:
            overrides["init_image"] = init_image
            if denoise is not None:
                overrides["denoising_strength"] = denoise
        if (prompt is None) == (batch is None):
            raise ConfigError("give a PROMPT or --batch FILE (one prompt a line), not both" if prompt
                              else "give a PROMPT, or --batch FILE with one prompt a line")
        lines = _batch_prompts(batch) if batch is not None else [prompt or ""]
        requests = [r for line in lines for r in GenerateRequest.expand_midjourney(line, **overrides)]
        _checked_out_dir(out)
        with make_client(strategy, budget, **constraints) as gen:
            if batch is not None:
                _generate_batch(gen, requests, concurrency, out, record)
                return
            for index, request in enumerate(requests):
                if len(requests) > 1:
                    console.print(f"[bold]job {index + 1}/{len(requests)}[/bold]: {_safe(request.prompt)}",
                                  highlight=False)
                result = _generate_with_progress(gen, request)
                _print_result(result, result.save(out))
                if record:
                    from .arena import record_result

                    record_result(request, result, home=gen.settings.home)

    run_guarded(job)


def _batch_prompts(path: Path) -> list[str]:
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    prompts = [line for line in lines if line and not line.startswith("#")]
    if not prompts:
        raise ConfigError(f"--batch {path}: no prompts in it (one a line; # starts a comment)")
    return prompts


def _generate_batch(gen: ImageGen, requests: list[GenerateRequest], concurrency: int, out: Path,
                    record: bool) -> None:
    """Every request through `gen.map`, a bar counting finished requests; failures are listed
    and make the exit code 1, the others are saved."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    failed = 0
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err, disable=not err.is_terminal) as bar:
        task = bar.add_task("generating", total=len(requests))
        item: Any
        for item in gen.map(requests, concurrency=concurrency, return_exceptions=True,
                            progress=lambda event: bar.update(task, completed=event.step)):
            index: int = getattr(item, "index", 0) if isinstance(item, Exception) else item.raw["index"]
            label = f"[bold]{index + 1}/{len(requests)}[/bold] {_safe(requests[index].prompt)}"
            if isinstance(item, Exception):
                failed += 1
                err.print(f"{label}: [red]error:[/red] {_safe(describe_error(item))}", highlight=False)
                continue
            console.print(label, highlight=False)
            _print_result(item, item.save(out))
            if record:
                from .arena import record_result

                record_result(requests[index], item, home=gen.settings.home)
    if failed:
        err.print(f"{failed} of {len(requests)} requests failed", highlight=False)
        raise typer.Exit(1)


def _hires_fix(scale: float, denoise: float | None) -> HiresFix:
    """The --hires fix; its errors name the options, not HiresFix's fields."""
    try:
        return HiresFix(scale=scale, **({"denoising_strength": denoise} if denoise is not None else {}))
    except ValidationError as exc:
        flags = {"scale": "--hires", "denoising_strength": "--denoise"}
        problems = [f"{flags.get(str(e['loc'][0]), e['loc'][0])}: {e['msg']}" for e in exc.errors()]
        raise ConfigError("; ".join(problems)) from None


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
        console.print(f"saved [green]{_safe(path)}[/green]  seed {image.seed}  {image.width}x{image.height}",
                      highlight=False)
    console.print(f"provider {result.provider}  model {result.model}  cost ${result.cost_usd:.4f}  "
                  f"time {result.latency_s:.2f}s", highlight=False)
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/yellow] {_safe(warning)}", highlight=False)


# -- route / models ---------------------------------------------------------------------

@app.command()
def route(
    prompt: str = typer.Argument(...),
    strategy: Optional[str] = typer.Option(None, help="cost | quality | speed | balanced"),
    model: Optional[str] = typer.Option(None, "--model", "-m"),
    budget: Optional[float] = typer.Option(None, min=0.0, help="USD left to spend: dearer models are out."),
    max_cost: Optional[float] = _MAX_COST,
    min_elo: Optional[float] = _MIN_ELO,
    local_only: bool = _LOCAL_ONLY,
    elo_source: Optional[str] = _ELO_SOURCE,
    as_json: bool = typer.Option(False, "--json", help="Print the decision as JSON."),
) -> None:
    """Show which model the router would choose, the ranked candidates, and why others are out."""

    def job() -> None:
        overrides = {"model": model} if model else {}
        request = GenerateRequest.from_midjourney(prompt, **overrides)
        with make_client(strategy, budget, max_cost_per_image=max_cost, min_elo=min_elo,
                         local_only=local_only, elo_source=elo_source) as gen:
            decision = gen.route(request)
            if as_json:
                _emit_json(route_json(decision))
            else:
                console.print(route_table(decision))

    run_guarded(job)


def route_json(decision: RouteDecision) -> dict[str, Any]:
    return {
        "strategy": decision.strategy,
        "chosen": decision.chosen.id,
        "candidates": [{"model": c.card.id, "score": c.score, "cost_usd": c.cost_usd,
                        "latency_s": c.latency_s, "warnings": list(c.warnings)} for c in decision.candidates],
        "excluded": [{"model": e.card.id, "reason": e.reason} for e in decision.excluded],
    }


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
def models(as_json: bool = typer.Option(False, "--json", help="Print every card as JSON."),
           check: bool = typer.Option(False, "--check", help="List cards whose price or Elo is over "
                                      "a year old or undated; exit 1 if any.")) -> None:
    """The catalog: price (units, source, date), Elo (arena, date), latency, capabilities.

    Cards are shown as routed: ``$IMAGEGEN_HOME/catalog.json`` laid over the shipped table."""

    def job() -> None:
        from datetime import date

        from .catalog import stale_entries

        with make_client() as gen:
            cards = [gen.router.effective_card(card) for card in gen.models()]
            if check:
                stale = stale_entries(cards, date.today())
                if as_json:
                    _emit_json([{"id": cid, "what": what, "why": why} for cid, what, why in stale])
                else:
                    for cid, what, why in stale:
                        console.print(f"{escape(cid)}: {what} {escape(why)}")
                    console.print(f"{len(stale)} stale or undated figure(s) in {len(cards)} cards")
                if stale:
                    raise typer.Exit(1)
                return
            if as_json:
                _emit_json([card.model_dump(mode="json") for card in cards])
                return
            table = Table(title="models")
            for column in ("model", "family", "price", "Elo", "latency", "capabilities"):
                table.add_column(column, overflow="fold")
            for card in cards:
                table.add_row(escape(card.id), card.family, escape(_price(card)), escape(_elo(card)),
                              f"{card.latency_s:g}s", _caps(card))
            console.print(table)

    run_guarded(job)


def _price(card: Any) -> str:
    p = card.price
    units = " + ".join(p.units) or "free"
    if p.tiers:
        units += f" ({p.default_tier} tier; by {p.tier_input}: " + ", ".join(
            f"{tier} " + "+".join(f"${v:g}" for v in overrides.values()) for tier, overrides in p.tiers.items()) + ")"
    return units + (f" [{p.date}]" if p.date else " [undated]" if units != "free" else "")


def _elo(card: Any) -> str:
    elo = card.elo
    others = f"; {len(elo.others)} other arena figure(s)" if elo.others else ""
    if elo.value is None:
        return "unknown" + others
    offset = f", measured {elo.measured:g} {elo.offset:+g} offset" if elo.measured is not None else ""
    return f"{elo.value:.0f} ({elo.arena or elo.source}, {elo.date or 'undated'}{offset}){others}"


def _caps(card: Any) -> str:
    caps = card.capabilities
    names = ["negative_prompt", "seed", "lora", "img2img", "edit", "inpaint", "controlnet", "hires_fix",
             "clip_skip"]
    found = [n for n in names if getattr(caps, n)]
    if not caps.txt2img:
        found.append("needs an input image")
    if caps.max_reference_images:
        found.append(f"{caps.max_reference_images} reference images")
    if caps.output_megapixels:
        found.append("MP " + "/".join(f"{mp:g}" for mp in caps.output_megapixels))
    return ", ".join(found)


# -- info -------------------------------------------------------------------------------

@app.command()
def info(
    image: Path = typer.Argument(..., exists=True, dir_okay=False),
    as_request: bool = typer.Option(False, "--as-request", help="Print it as GenerateRequest JSON."),
    as_json: bool = typer.Option(False, "--json", help="Print the text and its parsed parameters as JSON."),
) -> None:
    """Print the A1111 parameters stored in a PNG, JPEG or WebP."""
    from .prompt.infotext import parse_infotext
    from .result import read_infotext

    def job() -> None:
        text = read_infotext(image)
        if not text:
            err.print(f"[red]error:[/red] {_safe(image)}: no generation parameters stored in this image",
                      highlight=False)
            raise typer.Exit(1)
        if as_json:
            try:
                request: Any = GenerateRequest.from_infotext(text).model_dump(mode="json", exclude_defaults=True)
            except (ValidationError, PromptSyntaxError) as exc:
                request = {"error": describe_error(exc)}
            _emit_json({"file": str(image), "infotext": text, "parameters": dict(parse_infotext(text)),
                        "request": request})
        elif as_request:
            request = GenerateRequest.from_infotext(text)
            console.print_json(request.model_dump_json(exclude_defaults=True))
        else:
            sys.stdout.write(text + "\n")

    run_guarded(job)


# -- fine-tunes -------------------------------------------------------------------------

finetune_app = typer.Typer(help="LoRA fine-tunes on a provider's trainer (cloud or local). Commands that "
                                "print a job exit 1 when it failed.", no_args_is_help=True)
app.add_typer(finetune_app, name="finetune")


@finetune_app.command("create")
def finetune_create(
    images: Path = typer.Argument(..., exists=True, help="Folder of images (captions as .txt beside them) or a .zip."),
    destination: Optional[str] = typer.Option(None, "--destination", "-d",
                                              help="owner/name of the new model (cloud trainers)."),
    trainer: str = typer.Option("auto", help="The provider that trains (auto: the base model's, else the first)."),
    base: Optional[str] = typer.Option(None, help="Model to train on, e.g. local:sd15 (default: the trainer's)."),
    trigger_word: str = typer.Option("TOK", "--trigger-word", "-t"),
    steps: int = typer.Option(1000),
    lora_rank: int = typer.Option(16),
    learning_rate: float = typer.Option(4e-4),
    autocaption: bool = typer.Option(True),
    wait: bool = typer.Option(False, help="Wait for the training to finish, printing its status."),
    budget: Optional[float] = typer.Option(None, help="Refuse to start if the estimate exceeds this (USD)."),
    local: bool = typer.Option(False, "--local", help="Train on this machine (trainer 'local')."),
    option: list[str] = typer.Option([], "--option", "-o",
                                     help="A local trainer setting in kohya_ss terms, KEY=VALUE (JSON values), "
                                          "e.g. -o network_dim=32 -o optimizer=AdamW -o save_every_n_steps=100."),
) -> None:
    """Check the dataset, upload it (cloud) and start a training."""
    import json as _json

    from .finetune import FineTuneRequest

    def job() -> None:
        settings_of_local: dict[str, Any] = {}
        for item in option:
            key, sep, raw = item.partition("=")
            if not sep:
                raise typer.BadParameter(f"{item!r}: give KEY=VALUE", param_hint="--option")
            try:
                settings_of_local[key.strip()] = _json.loads(raw)
            except ValueError:
                settings_of_local[key.strip()] = raw
        request = FineTuneRequest(images=images, destination=destination, trainer="local" if local else trainer,
                                  base=base, trigger_word=trigger_word, steps=steps, lora_rank=lora_rank,
                                  learning_rate=learning_rate,
                                  **({"autocaption": autocaption} if not local else {}),
                                  **({"local": settings_of_local} if settings_of_local else {}))
        with make_client(budget=budget) as gen:
            started = gen.finetune(request)
            _print_job(started)
            if wait:
                _wait_and_print(started, None)
            elif started.status in ("failed", "aborted"):
                raise typer.Exit(1)

    run_guarded(job)


@finetune_app.command("status")
def finetune_status(job_id: str, logs: bool = typer.Option(False, help="Print the training logs.")) -> None:
    """Ask the job's trainer for its state and print it."""

    def job() -> None:
        with make_client() as gen:
            found = gen.job(job_id).refresh()
            _print_job(found)
            if logs and found.logs:
                sys.stdout.write(found.logs + "\n")
            if found.status in ("failed", "aborted"):
                raise typer.Exit(1)

    run_guarded(job)


@finetune_app.command("wait")
def finetune_wait(job_id: str, timeout: Optional[float] = typer.Option(None, help="Seconds.")) -> None:
    """Wait for a job (also one started by another process) to finish, printing its status."""

    def job() -> None:
        with make_client() as gen:
            found = gen.job(job_id)
            console.print(f"waiting for {found.id} ({found.status})", highlight=False)
            _wait_and_print(found, timeout)

    run_guarded(job)


@finetune_app.command("list")
def finetune_list() -> None:
    """Every stored fine-tune job, newest first."""

    def job() -> None:
        with make_client() as gen:
            table = Table(title="fine-tunes")
            for column in ("id", "status", "trainer", "destination", "model", "cost"):
                table.add_column(column, overflow="fold")
            for item in gen.jobs():
                table.add_row(item.id, item.status, item.trainer or "", item.destination or "", item.model or "",
                              _job_cost(item))
            console.print(table)

    run_guarded(job)


@finetune_app.command("cancel")
def finetune_cancel(job_id: str) -> None:
    """Cancel a running training (or a job not started yet)."""

    def job() -> None:
        with make_client() as gen:
            found = gen.job(job_id)
            if found.done:
                console.print(f"{found.id} already {found.status}: nothing to cancel", highlight=False)
            else:
                found = found.cancel()
            _print_job(found)
            if found.status in ("failed", "aborted"):
                raise typer.Exit(1)

    run_guarded(job)


def _wait_and_print(job: Any, timeout: float | None) -> None:
    """Wait, printing each change of status or progress on stderr; exit 1 if it failed."""
    try:
        job.wait(timeout=timeout, progress=_print_progress)
    except FineTuneError as exc:
        if not job.done:
            raise  # a timeout, or a job that cannot go on: one line, exit 2
        _print_job(job)
        err.print(f"[red]error:[/red] {escape(describe_error(exc))}", highlight=False)
        raise typer.Exit(1) from None
    _print_job(job)


def _print_progress(job: Any) -> None:
    parts = [job.id, job.status]
    progress = job.progress
    if progress.get("total"):
        parts.append(f"step {progress.get('step', 0)}/{progress['total']}")
    if progress.get("loss") is not None:
        parts.append(f"loss {progress['loss']:.4g}")
    if progress.get("eta_s") is not None:
        minutes, seconds = divmod(int(progress["eta_s"]), 60)
        parts.append(f"ETA {minutes}m{seconds:02d}s")
    if progress.get("message"):
        parts.append(str(progress["message"]))
    err.print(escape("  ".join(parts)), highlight=False)


def _job_cost(job: Any) -> str:
    return f"${job.cost_usd:.2f}" + ("" if job.cost_is_actual else " (estimate)")


def _print_job(job: Any) -> None:
    target = f"  {job.destination}" if job.destination else ""
    console.print(f"{job.id}  {job.status}{target}  {_job_cost(job)}", highlight=False)
    if job.model:
        console.print(f"model: {job.model}", highlight=False)
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
        home = Settings().home
        with make_client() as gen:
            known = _known_models(gen, home)
            a, b = (_vote_model(gen, known, given, label) for given, label in ((model_a, "MODEL_A"),
                                                                                (model_b, "MODEL_B")))
        chosen = {model_a: a, model_b: b}.get(winner, winner)
        vote = arena.record_vote(prompt, a, b, chosen, home=home)
        console.print(f"recorded vote {vote.id}: {vote.model_a} vs {vote.model_b} -> {vote.winner}",
                      highlight=False)

    run_guarded(job)


def _known_models(gen: ImageGen, home: Path) -> set[str]:
    from . import arena

    known = {card.id for card in gen.models()}
    try:
        for vote in arena.Arena.at_home(home).votes():
            known.update((vote.model_a, vote.model_b))
    except ImageGenError:
        pass
    return known


def _vote_model(gen: ImageGen, known: set[str], given: str, label: str) -> str:
    """The card id a vote names: a known one (also by its short name), else a one-line refusal
    that names the closest known id."""
    if given in known:
        return given
    try:
        return gen.card(given).id
    except ImageGenError:
        pass
    close = difflib.get_close_matches(given, sorted(known), n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}?" if close else "`imagegen models` lists the known ones"
    raise ConfigError(f"{label}: unknown model {given!r}; {hint}")


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
def emulator(port: int = typer.Option(8787, min=0, max=65535, help="Port on 127.0.0.1 (0: any free port)."),
             processing_time: float = typer.Option(1.0, min=0.0, help="Emulated seconds per prediction."),
             duration: Optional[float] = typer.Option(None, min=0.0, help="Stop after this many seconds."),
             username: str = typer.Option("fake-user", help="The account the token belongs to: fine-tune "
                                          "destinations must be USERNAME/<name>, as on Replicate.")) -> None:
    """Run the FakeReplicate emulator in the foreground for your own integration tests."""
    import time

    from .testing import FakeReplicate

    def start() -> Any:
        try:
            return FakeReplicate(port=port, processing_time_s=processing_time, username=username).start()
        except OSError as exc:
            raise ConfigError(f"--port {port}: cannot listen on 127.0.0.1:{port} ({exc.strerror or exc}); "
                              "choose another port, or 0 for any free one") from None

    fake = run_guarded(start)
    try:
        console.print(f"FakeReplicate listening on {fake.base_url} as account {username!r} "
                      f"(fine-tune destinations: {username}/<name>). Set:", highlight=False)
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


app.command("serve")(serve_command)


if __name__ == "__main__":  # pragma: no cover
    app()
