"""The same app as a Ray Serve deployment: each replica builds its own `ImageGen` (from the
settings handed over, or a factory) and serves `create_app`'s routes behind Ray's HTTP proxy.

Ray Serve wraps an ASGI app given to ``serve.ingress``; that app is pickled when the deployment
class is made, in the driver. The app handed over here is a small shim that builds the real one
inside the replica, on the ASGI lifespan startup Serve runs when the replica starts (or on the
first request, for a runner without lifespan), and closes the replica's `ImageGen` on shutdown.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ._security import ServerLimits

if TYPE_CHECKING:
    from ..client import ImageGen
    from ..router import RoutePolicy
    from ..settings import Settings

INSTALL_HINT = "imagegen serve --ray needs Ray Serve: pip install 'imagegen[ray,serve]'"


def import_serve() -> Any:
    try:
        from ray import serve
    except ImportError as exc:
        raise ConfigError(f"{INSTALL_HINT} ({exc.msg})") from None
    return serve


@dataclass
class ReplicaSpec:
    """What a replica needs to build its app; pickled to every replica."""

    settings: Settings | None = None
    policy: RoutePolicy | None = None
    budget_usd: float | None = None
    gen_factory: Callable[[], ImageGen] | None = None
    app_options: dict[str, Any] = field(default_factory=dict)

    def make_gen(self) -> ImageGen:
        if self.gen_factory is not None:
            return self.gen_factory()
        from ..client import ImageGen

        return ImageGen(settings=self.settings, policy=self.policy, budget_usd=self.budget_usd)

    def __repr__(self) -> str:  # settings may hold tokens: never in a log
        return f"ReplicaSpec(options={sorted(self.app_options)})"


class ReplicaApp:
    """An ASGI app that builds ``create_app(spec.make_gen(), ...)`` in the process it runs in."""

    def __init__(self, spec: ReplicaSpec):
        self.spec = spec
        self.gen: ImageGen | None = None
        self.app: Any = None
        self._building: asyncio.Lock | None = None

    def __getstate__(self) -> dict[str, Any]:  # a copy starts unbuilt (one per replica)
        return {"spec": self.spec, "gen": None, "app": None, "_building": None}

    async def build(self) -> Any:
        if self.app is None:
            if self._building is None:
                self._building = asyncio.Lock()
            async with self._building:
                if self.app is None:
                    self.app = await asyncio.to_thread(self._build_sync)
        return self.app

    def _build_sync(self) -> Any:
        from ._build import build_app

        gen = self.spec.make_gen()
        options = self.spec.app_options
        try:
            app = build_app(gen, api_keys=options.get("api_keys"),
                            limits=options.get("limits") or ServerLimits(),
                            allow_paths=options.get("allow_paths", False),
                            cors_origins=options.get("cors_origins"), public_url=options.get("public_url"),
                            mount_arena=options.get("mount_arena", True))
        except BaseException:
            gen.close()
            raise
        self.gen = gen
        return app

    def close(self) -> None:
        gen, self.gen, self.app = self.gen, None, None
        if gen is not None:
            gen.close()

    async def __call__(self, scope: dict[str, Any], receive: Callable, send: Callable) -> None:
        if scope["type"] != "lifespan":
            app = await self.build()
            await app(scope, receive, send)
            return
        message = await receive()  # lifespan.startup
        try:
            app = await self.build()
        except Exception as exc:  # the replica fails to start; Serve reports it
            await send({"type": "lifespan.startup.failed", "message": f"{type(exc).__name__}: {exc}"})
            return
        replayed = False

        async def first_startup() -> dict[str, Any]:
            nonlocal replayed
            if not replayed:
                replayed = True
                return message
            return await receive()

        async def closing_send(event: dict[str, Any]) -> None:
            if event.get("type", "").startswith("lifespan.shutdown."):
                await asyncio.to_thread(self.close)
            await send(event)

        await app(scope, first_startup, closing_send)


def ray_deployment(*, num_replicas: int | str = 1, settings: Settings | None = None,
                   policy: RoutePolicy | None = None, budget_usd: float | None = None,
                   gen_factory: Callable[[], ImageGen] | None = None,
                   ray_actor_options: dict[str, Any] | None = None, name: str = "imagegen",
                   deployment_options: dict[str, Any] | None = None, **app_options: Any) -> Any:
    """A bound Serve application (`serve.run` it). ``app_options`` are `build_app`'s, keys
    already checked."""
    serve = import_serve()
    if isinstance(num_replicas, bool) or not (num_replicas == "auto" or (isinstance(num_replicas, int)
                                                                         and num_replicas >= 1)):
        raise ConfigError(f"num_replicas must be a positive integer or 'auto', not {num_replicas!r}")
    if settings is None and gen_factory is None:
        from ..settings import Settings

        settings = Settings()  # the driver's environment, so replicas on other nodes see the same
    spec = ReplicaSpec(settings=settings, policy=policy, budget_usd=budget_usd, gen_factory=gen_factory,
                       app_options=app_options)

    @serve.ingress(ReplicaApp(spec))
    class ImageGenServer:
        """One replica of `imagegen serve`: the app and the `ImageGen` it built."""

    options: dict[str, Any] = {"name": name, "num_replicas": num_replicas,
                               # generations are bounded by the app's own concurrency limit (429)
                               "max_ongoing_requests": 64}
    if ray_actor_options:
        options["ray_actor_options"] = ray_actor_options
    options.update(deployment_options or {})
    return serve.deployment(ImageGenServer, **options).bind()


def connect(address: str | None) -> Any:
    """``ray``, initialised for ``address`` (``IMAGEGEN_RAY_ADDRESS``): ``auto``, ``ray://...``
    or ``local``/None (start Ray in this process). An existing connection is reused."""
    try:
        import ray
    except ImportError:
        raise ConfigError(INSTALL_HINT) from None
    if ray.is_initialized():
        return ray
    target = (address or "local").strip()
    if target != "local" and target != "auto" and not target.startswith("ray://"):
        raise ConfigError(f"IMAGEGEN_RAY_ADDRESS={target!r}: expected 'auto', 'local' or 'ray://host:port'")
    if target == "local":
        ray.init(include_dashboard=False, log_to_driver=False)
    else:
        ray.init(target, log_to_driver=False)
    return ray


def run_on_ray(application: Any, *, address: str | None, host: str = "127.0.0.1", port: int = 7860,
               name: str = "imagegen", route_prefix: str = "/") -> Any:
    """Start Serve's HTTP proxy on ``host:port`` (on the configured Ray) and deploy; returns the
    ingress handle once the replicas are up (`serve.run` raises when they fail to start)."""
    connect(address)
    serve = import_serve()
    serve.start(http_options={"host": host, "port": port})
    return serve.run(application, name=name, route_prefix=route_prefix)
