"""What every `imagegen` command shares: the consoles, errors as one line with the documented
exit code (see `imagegen.cli`), and the client built from routing options. Sub-commands that
live beside their feature (`arena serve`, `serve`) import this, never `imagegen.cli` itself."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

from .errors import ConfigError, FineTuneError, ImageGenError, ImageReadError, PromptSyntaxError

if TYPE_CHECKING:
    from .client import ImageGen

# Piped or redirected output is read by programs: never wrap it (a folded model id breaks grep).
_PIPE_WIDTH = 100_000
console = Console(soft_wrap=True, width=None if sys.stdout.isatty() else _PIPE_WIDTH)
err = Console(stderr=True, soft_wrap=True, width=None if sys.stderr.isatty() else _PIPE_WIDTH)
state = {"debug": False}  # set by `imagegen --debug`

USAGE_ERRORS = (ValidationError, PromptSyntaxError, ConfigError, FineTuneError, ImageReadError, ValueError)


def run_guarded(fn: Any) -> Any:
    """Turn our errors into one-line messages and exit codes."""
    try:
        return fn()
    except typer.Exit:
        raise
    except USAGE_ERRORS as exc:
        if state["debug"]:
            raise
        err.print(f"[red]error:[/red] {one_line(describe_error(exc))}", highlight=False)
        raise typer.Exit(2) from None
    except ImageGenError as exc:
        if state["debug"]:
            raise
        err.print(f"[red]error:[/red] {one_line(describe_error(exc))}", highlight=False)
        raise typer.Exit(1) from None
    except OSError as exc:  # a disk, a folder or a port, not a bug
        if state["debug"]:
            raise
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        err.print(f"[red]error:[/red] {one_line(where + (exc.strerror or str(exc)))}", highlight=False)
        raise typer.Exit(1) from None
    except Exception as exc:  # noqa: BLE001 - a bug: still one line, the traceback with --debug
        if state["debug"]:
            raise
        err.print(f"[red]error:[/red] unexpected {type(exc).__name__}: {one_line(str(exc))} "
                  "(a bug: run again with --debug for the traceback and report it)", highlight=False)
        raise typer.Exit(1) from None


def one_line(text: Any) -> str:
    """One line of text for the terminal: markup escaped, and an undecodable file-name byte
    (a lone surrogate) shown as its escape instead of failing the whole print."""
    line = " ".join(str(text).split())
    return escape(line.encode("utf-8", "backslashreplace").decode("utf-8"))


def describe_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        parts = []
        for e in exc.errors():
            field = ".".join(str(p) for p in e["loc"]) or "request"
            parts.append(f"{field}: {e['msg'].removeprefix('Value error, ')}")
        return "; ".join(parts)
    return " ".join(str(exc).split("\n")[0:1]) if not isinstance(exc, FineTuneError) else str(exc)


def make_client(strategy: str | None = None, budget: float | None = None, **constraints: Any) -> ImageGen:
    """``constraints``: RoutePolicy fields given on the command line (max_cost_per_image,
    min_elo, local_only, elo_source); the ones not given keep the policy's defaults."""
    from .client import ImageGen

    return ImageGen(policy=make_policy(strategy, **constraints), budget_usd=budget)


def make_policy(strategy: str | None = None, **constraints: Any) -> Any:
    from .router import RoutePolicy

    given = {k: v for k, v in constraints.items() if v is not None and v is not False}
    if strategy:
        given["strategy"] = strategy
    return RoutePolicy(**given) if given else None


