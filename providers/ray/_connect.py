"""Ray addresses and connecting to them, with a timeout: ``ray.init`` on an unreachable address
can retry for a long time, and a plain ``host:port`` (a GCS address) can hang it."""

from __future__ import annotations

import re
import threading
from typing import Any

from imagegen.errors import ConfigError, ProviderError

INSTALL_HINT = "the ray provider needs Ray: pip install 'imagegen[ray]'"
_HOST_PORT = re.compile(r"^[\w.\-\[\]:]+:\d+$")


def normalize_address(address: str) -> str | None:
    """The address to hand ``ray.init``: ``"auto"``, ``"ray://host:port"``, or None for
    ``"local"`` (start a Ray instance in this process). A bare ``host:port`` is refused."""
    address = address.strip()
    if address == "local":
        return None
    if address == "auto" or address.startswith("ray://"):
        return address
    if _HOST_PORT.match(address):
        raise ConfigError(
            f"IMAGEGEN_RAY_ADDRESS={address!r} looks like a cluster's GCS address; use "
            f"'ray://<head>:10001' (Ray Client) from outside the cluster, or 'auto' on one of its nodes")
    raise ConfigError(f"IMAGEGEN_RAY_ADDRESS={address!r}: expected 'auto', 'local' or 'ray://host:port'")


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError(INSTALL_HINT) from None
    return ray


def connect(address: str, timeout_s: float = 20.0) -> Any:
    """The ``ray`` module, connected to ``address`` (an existing connection is reused).

    Raises `ConfigError` when Ray is missing or the address is malformed, `ProviderError`
    (scope "provider") when the cluster cannot be reached within ``timeout_s``."""
    target = normalize_address(address)
    ray = import_ray()
    if ray.is_initialized():
        return ray
    outcome: dict[str, BaseException] = {}
    done = threading.Event()

    def init() -> None:
        try:
            kwargs: dict[str, Any] = {"ignore_reinit_error": True, "log_to_driver": False}
            if target is None:
                kwargs["include_dashboard"] = False
            ray.init(target, **kwargs)
        except BaseException as exc:  # reported to the caller below
            outcome["error"] = exc
        done.set()
        if target is None and "error" not in outcome:
            # The processes of a Ray started here die with the thread that started them (Linux
            # parent-death signal): this thread stays parked for the life of the process.
            threading.Event().wait()

    if target is None and threading.current_thread() is threading.main_thread():
        init()  # starting locally cannot hang on the network; the main thread outlives Ray
    else:
        threading.Thread(target=init, name="imagegen-ray", daemon=True).start()
        done.wait(timeout_s if target is not None else max(timeout_s, 120.0))
    if not done.is_set():
        raise ProviderError(f"could not reach Ray at {address!r} within {timeout_s:g} s",
                            provider="ray", scope="provider")
    if "error" in outcome:
        first_line = (str(outcome["error"]).strip().splitlines() or [type(outcome["error"]).__name__])[0]
        raise ProviderError(f"could not connect to Ray at {address!r}: {first_line}",
                            provider="ray", scope="provider")
    return ray
