"""Putting the server together: the shared state, the error handlers and limits, both APIs'
routes, the arena page when installed, CORS when asked."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import FastAPI

from . import _a1111, _openai
from ._security import Guard, ServerLimits
from ._state import BodyLimit, KeyRequired, ServerState, install_error_handlers

if TYPE_CHECKING:
    from ..client import ImageGen


def build_app(gen: ImageGen, *, api_keys: dict[str, float | None] | None, limits: ServerLimits,
              allow_paths: bool, cors_origins: list[str] | None, public_url: str | None,
              mount_arena: bool) -> FastAPI:
    state = ServerState(gen, Guard(api_keys, limits), allow_paths=allow_paths, public_url=public_url)
    app = FastAPI(title="imagegen", docs_url=None, redoc_url=None, openapi_url=None, debug=False)
    app.state.imagegen = state
    install_error_handlers(app)
    app.include_router(_openai.router(state))
    app.include_router(_a1111.router(state))

    @app.get("/health", include_in_schema=False)
    async def health() -> dict[str, Any]:  # open, for load balancers: says nothing else
        return {"status": "ok"}

    if mount_arena:
        try:
            from ..arena import create_arena_app  # built by the arena page, when installed
        except ImportError:
            pass
        else:
            # The page generates (and spends) too: behind the same keys as the APIs.
            app.mount("/arena", KeyRequired(create_arena_app(gen), state))
    if cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=cors_origins, allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type", "X-API-Key"])
    app.add_middleware(BodyLimit, max_bytes=limits.max_body_bytes)
    return app

