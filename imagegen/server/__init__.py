"""`imagegen serve`: the router behind the OpenAI Images API and AUTOMATIC1111's WebUI API.

    from imagegen import ImageGen
    from imagegen.server import create_app, serve

    app = create_app(ImageGen(), api_key="sk-local-...")     # any ASGI server can run it
    serve(ImageGen(), host="127.0.0.1", port=7860)           # or uvicorn, in the foreground

Needs the `serve` extra (FastAPI, uvicorn, python-multipart). ``import imagegen`` never loads
this package; it loads when served.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._security import Guard, Refusal, ServerLimits, check_bind, is_loopback

if TYPE_CHECKING:
    from fastapi import FastAPI

    from .. import ImageGen

__all__ = ["Guard", "Refusal", "ServerLimits", "check_bind", "create_app", "is_loopback",
           "ray_deployment", "serve"]


def _keys(api_key: str | None, api_keys: dict[str, float | None] | None,
          key_budget_usd: float | None) -> dict[str, float | None]:
    keys: dict[str, float | None] = dict(api_keys or {})
    if api_key:
        keys.setdefault(api_key, key_budget_usd)
    for key in keys:
        if not key or len(key) < 8 or key != key.strip():
            raise ValueError("an API key must be at least 8 characters, without surrounding spaces")
    return keys


def create_app(gen: ImageGen, *, api_key: str | None = None, api_keys: dict[str, float | None] | None = None,
               key_budget_usd: float | None = None, limits: ServerLimits | None = None,
               allow_paths: bool = False, cors_origins: list[str] | None = None,
               public_url: str | None = None, mount_arena: bool = True) -> FastAPI:
    """The ASGI app serving ``gen``.

    ``api_key`` (or ``api_keys``: key -> its own budget in USD, None for none) is required by
    every endpoint when given, as ``Authorization: Bearer <key>`` (OpenAI clients), HTTP Basic
    with the key as password (WebUI's ``--api-auth`` clients) or ``X-API-Key``.
    ``key_budget_usd``: the budget of ``api_key``. ``allow_paths``: let clients name local
    files (models, LoRAs, VAEs by path); off, only names are accepted. ``cors_origins``: origins
    allowed to call from a browser (none by default). ``public_url``: the base of image URLs
    when the server sits behind a proxy. An arena page (`imagegen.arena.create_arena_app`),
    when installed, is mounted at ``/arena``.
    """
    from ._build import build_app

    return build_app(gen, api_keys=_keys(api_key, api_keys, key_budget_usd), limits=limits or ServerLimits(),
                     allow_paths=allow_paths, cors_origins=cors_origins, public_url=public_url,
                     mount_arena=mount_arena)


def serve(gen: ImageGen, *, host: str = "127.0.0.1", port: int = 7860, api_key: str | None = None,
          log_level: str = "info", **options: Any) -> None:
    """Run the app with uvicorn in the foreground. Refuses a non-loopback ``host`` without a key."""
    import uvicorn

    check_bind(host, _keys(api_key, options.get("api_keys"), None))
    app = create_app(gen, api_key=api_key, **options)
    uvicorn.run(app, host=host, port=port, log_level=log_level, server_header=False,
                limit_concurrency=None, timeout_keep_alive=5)


def ray_deployment(*, num_replicas: int | str = 1, settings: Any = None, policy: Any = None,
                   budget_usd: float | None = None, gen_factory: Any = None, api_key: str | None = None,
                   api_keys: dict[str, float | None] | None = None, key_budget_usd: float | None = None,
                   limits: ServerLimits | None = None, ray_actor_options: dict[str, Any] | None = None,
                   name: str = "imagegen", deployment_options: dict[str, Any] | None = None,
                   **options: Any) -> Any:
    """The same app as a Ray Serve deployment (a bound application: ``serve.run`` it).

    Each of the ``num_replicas`` replicas (an int, or ``"auto"`` with ``deployment_options``'
    ``autoscaling_config``) builds its own `ImageGen` when it starts: from ``settings`` (the
    driver's environment when not given), ``policy`` and ``budget_usd``, or by calling
    ``gen_factory()`` (picklable). Budgets, the concurrency limit, /progress and image URLs
    are per replica. ``options``: those of `create_app`. Needs ``imagegen[ray,serve]``; Ray
    loads only when this is called.
    """
    from ._ray_serve import ray_deployment as build

    return build(num_replicas=num_replicas, settings=settings, policy=policy, budget_usd=budget_usd,
                 gen_factory=gen_factory, ray_actor_options=ray_actor_options, name=name,
                 deployment_options=deployment_options,
                 api_keys=_keys(api_key, api_keys, key_budget_usd), limits=limits or ServerLimits(), **options)
