"""A parsed request as the emulator's endpoints see it, and the route table's entry type."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from imagegen.testing._faults import FaultPlan
from imagegen.testing._http import Reply, bad_request

if TYPE_CHECKING:
    from imagegen.testing._fake import FakeReplicate


@dataclass
class Call:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes
    params: dict[str, str]
    fault: FaultPlan = field(default_factory=FaultPlan)

    def json(self) -> Any:
        if not self.body:
            return {}
        try:
            return json.loads(self.body)
        except ValueError:
            raise bad_request("Request body is not valid JSON") from None


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern
    handler: Callable[[FakeReplicate, Call], Reply]
    is_create: bool = False
    auth: bool = True


def body_dict(call: Call) -> dict:
    body = call.json()
    if not isinstance(body, dict):
        raise bad_request("Request body must be a JSON object")
    return body


def route(method: str, pattern: str, handler: Callable, **kw: Any) -> Route:
    """A route for ``pattern``, where ``{name}`` matches one path segment."""
    regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern)
    return Route(method, re.compile(f"^{regex}$"), handler, **kw)
