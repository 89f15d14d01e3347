"""`imagegen arena serve`: the arena page on 127.0.0.1 (registered on the CLI's `arena` group).

Imports nothing heavy until it runs: the page needs the ``serve`` extra (starlette, uvicorn).
"""

from __future__ import annotations

import sys
from typing import Optional

import typer

from ..loopback import is_loopback


def serve(
    port: int = typer.Option(7861, help="Port (0: any free port)."),
    host: str = typer.Option("127.0.0.1", help="Address to bind; loopback unless --allow-remote."),
    allow_remote: bool = typer.Option(False, "--allow-remote",
                                      help="Allow a non-loopback --host (anyone who reaches it can spend your budget)."),
    session_budget: float = typer.Option(0.50, help="USD one browser session may spend on comparisons (0: no limit)."),
    strategy: Optional[str] = typer.Option(None, help="Router strategy for the client the page uses."),
    elo_source: Optional[str] = typer.Option(None, help="shipped | user | blend: the ratings the router uses."),
) -> None:
    """Compare two models blind, vote, see your ratings and your gallery in a browser."""
    from ..cli_support import err, run_guarded

    if not is_loopback(host) and not allow_remote:
        err.print(f"[red]error:[/red] --host {host} is not a loopback address; pass --allow-remote to serve it "
                  "beyond this machine", highlight=False)
        raise typer.Exit(2)
    try:
        import uvicorn

        from ._web import LOOPBACK_HOSTS, create_arena_app
    except ImportError as exc:
        err.print(f"[red]error:[/red] the arena page needs the serve extra: pip install 'imagegen[serve]' ({exc})",
                  highlight=False)
        raise typer.Exit(2) from None

    def job() -> None:
        from ..client import ImageGen
        from ..router import RoutePolicy

        fields = {k: v for k, v in (("strategy", strategy), ("elo_source", elo_source)) if v}
        gen = ImageGen(policy=RoutePolicy.model_validate(fields) if fields else None)
        app = create_arena_app(gen, session_budget_usd=session_budget or None,
                               allowed_hosts=LOOPBACK_HOSTS if is_loopback(host) else None)
        shown = f"[{host}]" if ":" in host else host
        sys.stderr.write(f"imagegen arena on http://{shown}:{port}/ (Ctrl-C stops)\n")
        try:
            uvicorn.run(app, host=host, port=port, log_level="warning")
        finally:
            gen.close()

    run_guarded(job)
