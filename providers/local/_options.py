"""`provider_options["local"]`: the keys the local adapter takes, checked by name and type."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from imagegen.errors import ConfigError

if TYPE_CHECKING:
    from imagegen.request import GenerateRequest

OPTIONS = {  # provider_options["local"] keys -> expected type
    "attention_slicing": bool, "vae_tiling": bool, "vae_slicing": bool, "cpu_offload": bool,
    "dtype": str, "config": str,
    # flow-match models (FLUX.1, FLUX.2, SD 3.5): see _memory and _flow_plan
    "offload": str, "quantize": str, "base": str, "true_cfg_scale": (int, float),
}
DTYPES = ("float16", "bfloat16", "float32")


def options(request: GenerateRequest) -> dict[str, Any]:
    """provider_options["local"], checked: an unknown key or a wrong type names the key."""
    raw = request.provider_options.get("local", {}) or {}
    for key, value in raw.items():
        if key not in OPTIONS:
            raise ConfigError(f"unknown provider_options['local'] key {key!r}; valid keys: {', '.join(OPTIONS)}")
        if not isinstance(value, OPTIONS[key]) or isinstance(value, bool) and OPTIONS[key] is not bool:
            kind = "number" if isinstance(OPTIONS[key], tuple) else OPTIONS[key].__name__
            raise ConfigError(f"provider_options['local'][{key!r}] must be a {kind}, got {value!r}")
    if "dtype" in raw and raw["dtype"] not in DTYPES:
        raise ConfigError(f"provider_options['local']['dtype'] must be one of {', '.join(DTYPES)}")
    if "config" in raw and not (Path(raw["config"]) / "model_index.json").is_file():
        raise ConfigError(f"provider_options['local']['config']: {raw['config']} has no model_index.json")
    return dict(raw)
