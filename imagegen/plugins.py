"""Finding providers: every adapter, built-in or third-party, registers under the
`imagegen.providers` entry-point group as a class (or factory) taking `settings`."""

from __future__ import annotations

import logging
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from imagegen.providers.base import Provider

    from .settings import Settings

ENTRY_POINT_GROUP = "imagegen.providers"
log = logging.getLogger("imagegen")


def load_providers(settings: Settings) -> dict[str, Provider]:
    """Instantiate every registered provider; one that fails to load is logged and skipped."""
    found: dict[str, Provider] = {}
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        try:
            factory = entry.load()
            provider = factory(settings)
        except Exception as exc:  # a broken plugin must not break the others
            log.warning("provider plugin %r failed to load: %s", entry.name, exc)
            continue
        found[provider.name] = provider
    return found
