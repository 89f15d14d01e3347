"""The `imagegen serve` command (registered by `imagegen.cli`); FastAPI loads only when it runs."""

from __future__ import annotations

from typing import Any, Optional

import typer


def serve_command(
    host: str = typer.Option("127.0.0.1", help="Address to listen on; anything but loopback needs --api-key."),
    port: int = typer.Option(7860, help="Port (7860 is WebUI's)."),
    api_key: list[str] = typer.Option([], "--api-key", envvar="IMAGEGEN_API_KEY",
                                      help="Key every client must send (repeatable)."),
    budget: Optional[float] = typer.Option(None, help="USD this server may spend in total."),
    key_budget: Optional[float] = typer.Option(None, help="USD each --api-key may spend."),
    strategy: Optional[str] = typer.Option(None, help="Routing for model=auto: cost | quality | speed | balanced."),
    max_concurrency: int = typer.Option(4, help="Generations in flight at once; more get 429 + Retry-After."),
    max_images: int = typer.Option(10, help="Images one request may ask for."),
    max_pixels: int = typer.Option(2048 * 2048, help="Pixels per image (width x height) at most."),
    max_body_mb: float = typer.Option(32.0, help="Request body size limit in MB."),
    url_ttl: float = typer.Option(3600.0, help="Seconds an image URL (response_format=url) stays valid."),
    cors_origin: list[str] = typer.Option([], help="Browser origin allowed to call (repeatable); none by default."),
    allow_paths: bool = typer.Option(False, help="Let clients name local files (models, LoRAs) by path."),
    public_url: Optional[str] = typer.Option(None, help="Base of image URLs when behind a proxy."),
    ray: bool = typer.Option(False, "--ray", help="Run as a Ray Serve deployment on IMAGEGEN_RAY_ADDRESS "
                                                  "(auto, ray://..., or local: the default)."),
    replicas: int = typer.Option(1, min=1, help="With --ray: replicas behind Ray's proxy, each its own router."),
) -> None:
    """Serve the router as the OpenAI Images API (/v1/images/*) and AUTOMATIC1111's API (/sdapi/v1/*)."""
    from ..cli_support import err, make_client, run_guarded
    from ..errors import ConfigError

    def job() -> None:
        try:
            import fastapi  # noqa: F401
            import uvicorn  # noqa: F401
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ConfigError(f"imagegen serve needs the serve extra: pip install 'imagegen[serve]' ({exc})") from None
        from . import ServerLimits, check_bind, serve

        keys = {key: key_budget for key in api_key}
        check_bind(host, keys)
        limits = ServerLimits(max_concurrency=max_concurrency, max_images=max_images, max_pixels=max_pixels,
                              max_body_bytes=int(max_body_mb * 1024 * 1024), url_ttl_s=url_ttl)
        if ray:
            serve_on_ray(host=host, port=port, keys=keys, limits=limits, strategy=strategy, budget=budget,
                         replicas=replicas, allow_paths=allow_paths, cors_origins=cors_origin or None,
                         public_url=public_url)
            return
        with make_client(strategy, budget) as gen:
            err.print(f"imagegen serve on http://{host}:{port}  (OpenAI: /v1/images/generations, "
                      f"A1111: /sdapi/v1/txt2img){'  auth: on' if keys else ''}", highlight=False)
            serve(gen, host=host, port=port, api_keys=keys, limits=limits, allow_paths=allow_paths,
                  cors_origins=cors_origin or None, public_url=public_url)

    run_guarded(job)


def serve_on_ray(*, host: str, port: int, keys: dict[str, float | None], limits: Any, strategy: str | None,
                 budget: float | None, replicas: int, **options: Any) -> None:
    """``imagegen serve --ray``: deploy on the configured Ray and serve until Ctrl-C."""
    import time

    from ..cli_support import err, make_policy
    from ..settings import Settings
    from . import ray_deployment
    from ._ray_serve import import_serve, run_on_ray

    settings = Settings()
    application = ray_deployment(num_replicas=replicas, settings=settings, policy=make_policy(strategy),
                                 budget_usd=budget, api_keys=keys, limits=limits, **options)
    run_on_ray(application, address=settings.ray_address, host=host, port=port)
    serve = import_serve()
    err.print(f"imagegen serve on Ray Serve at http://{host}:{port}  ({replicas} replica"
              f"{'s' if replicas > 1 else ''}; budgets and limits per replica){'  auth: on' if keys else ''}",
              highlight=False)
    try:
        while True:
            time.sleep(1.0)
    except KeyboardInterrupt:
        pass
    finally:
        if (settings.ray_address or "local").strip() == "local":
            serve.shutdown()  # the Ray this process started
        else:
            serve.delete("imagegen")  # a shared cluster keeps Serve and its other applications
