"""The Midjourney parameter table: names, aliases, value kinds, ranges and the model versions
each parameter needs, as data.

Source: docs.midjourney.com (v6.1-era copy in twardoch/midjargon `docs/midjourney-docs.md`)
for v1-v6.1 and niji; V7 facts from third-party summaries (2025-2026). Checked 2026-11.
"""

from __future__ import annotations

from dataclasses import dataclass

# Model keys: "v" + version or "niji" + version.
VERSIONS = ("1", "2", "3", "4", "5", "5.1", "5.2", "6", "6.1", "7")
VERSION_ALIASES = {"5.0": "5", "6.0": "6", "7.0": "7"}
NIJI_VERSIONS = ("4", "5", "6")
NIJI_DEFAULT = "6"  # what a bare `--niji` selects


def _models(*keys: str) -> frozenset[str]:
    return frozenset(keys)


V6_FAMILY = _models("v6", "v6.1", "niji6")
V7 = _models("v7")


@dataclass(frozen=True)
class ParamSpec:
    """One parameter. ``kind`` says how its value tokens are read; ``models`` where it works."""

    name: str  # canonical name, used when rendering
    kind: str  # int | float | ratio | flag | words | refs | urls | url | codes | choice | version | niji
    field: str  # attribute of MidjourneyParams
    aliases: tuple[str, ...] = ()
    low: float = 0  # range of int and float values
    high: float = 0
    choices: tuple[str, ...] = ()
    models: frozenset[str] | None = None  # None: every version


PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec("ar", "ratio", "aspect", aliases=("aspect",)),
    ParamSpec("c", "int", "chaos", aliases=("chaos",), low=0, high=100),
    ParamSpec("no", "words", "negative"),
    ParamSpec("q", "float", "quality", aliases=("quality",), low=0.25, high=4),
    ParamSpec("r", "int", "repeat", aliases=("repeat",), low=2, high=40),
    ParamSpec("seed", "int", "seed", low=0, high=4294967295),
    ParamSpec("stop", "int", "stop", low=10, high=100),
    ParamSpec("style", "choice", "style"),
    ParamSpec("raw", "flag", "style", models=_models("v5.1", "v5.2", "v6", "v6.1", "niji6", "v7")),
    ParamSpec("s", "int", "stylize", aliases=("stylize",), low=0, high=1000),
    ParamSpec("tile", "flag", "tile",
              models=_models("v1", "v2", "v3", "v5", "v5.1", "v5.2", "v6", "v6.1", "v7", "niji5", "niji6")),
    # `--w` once meant width; since v5 it is the alias of --weird.
    ParamSpec("weird", "int", "weird", aliases=("w",), low=0, high=3000,
              models=_models("v5", "v5.1", "v5.2", "v6", "v6.1", "v7", "niji5", "niji6")),
    ParamSpec("iw", "float", "image_weight", low=0, high=3),
    ParamSpec("cref", "urls", "cref", models=V6_FAMILY),
    ParamSpec("cw", "int", "cw", low=0, high=100, models=V6_FAMILY),
    ParamSpec("sref", "refs", "sref", models=V6_FAMILY | V7),
    ParamSpec("sw", "int", "sw", low=0, high=1000, models=V6_FAMILY | V7),
    ParamSpec("sv", "int", "sv", low=1, high=6, models=V6_FAMILY | V7),
    ParamSpec("p", "codes", "personalize", aliases=("personalize",), models=V6_FAMILY | V7),
    ParamSpec("v", "version", "version", aliases=("version",)),
    ParamSpec("niji", "niji", "niji"),
    ParamSpec("draft", "flag", "draft", models=V7),
    ParamSpec("exp", "int", "exp", low=0, high=100, models=V7),
    ParamSpec("fast", "flag", "speed"),
    ParamSpec("relax", "flag", "speed"),
    ParamSpec("turbo", "flag", "speed"),
    ParamSpec("oref", "url", "oref", models=V7),
    ParamSpec("ow", "int", "ow", low=1, high=1000, models=V7),
    ParamSpec("video", "flag", "video", models=_models("v5.2", "v6", "niji5", "niji6")),
    ParamSpec("motion", "choice", "motion", choices=("low", "high")),
    ParamSpec("loop", "flag", "loop"),
)

BY_NAME: dict[str, ParamSpec] = {}
for _spec in PARAMS:
    BY_NAME[_spec.name] = _spec
    for _alias in _spec.aliases:
        BY_NAME[_alias] = _spec

# Other spellings Midjourney accepts, read as the parameter named: V7's web app writes
# personalization codes as `--profile CODE`, one flag per code.
SPELLINGS: dict[str, str] = {"profile": "p"}

# Retired parameters and what replaced them (docs.midjourney.com "Legacy parameters").
DEPRECATED: dict[str, str] = {
    "width": "--ar (aspect ratio)",
    "height": "--ar (aspect ratio)",
    "h": "--ar (aspect ratio)",
    "hd": "--v (current model versions)",
    "test": "--v (current model versions)",
    "testp": "--v (current model versions)",
    "creative": "--chaos",
    "uplight": "the Upscale (Subtle) button",
    "upbeta": "the Upscale (Subtle) button",
    "upanime": "the Upscale buttons",
    "sameseed": "--seed",
    "vibe": "--v (current model versions)",
    "hq": "--q",
    "newclip": "--v (current model versions)",
    "nostretch": "--v (current model versions)",
    "old": "--v (current model versions)",
}

# Values that depend on the model version.
QUALITY_BY_MODEL: dict[str, tuple[float, ...]] = {
    "v1": (0.25, 0.5, 1, 2), "v2": (0.25, 0.5, 1, 2), "v3": (0.25, 0.5, 1, 2),
    "v4": (0.25, 0.5, 1), "v5": (0.25, 0.5, 1), "v5.1": (0.25, 0.5, 1), "v5.2": (0.25, 0.5, 1),
    "v6": (0.25, 0.5, 1), "v6.1": (0.25, 0.5, 1, 2),
    "v7": (0.5, 1, 2, 4),  # .5 is reported by some sources only; accepted
    "niji4": (0.25, 0.5, 1), "niji5": (0.25, 0.5, 1), "niji6": (0.25, 0.5, 1),
}
QUALITY_ANY = (0.25, 0.5, 1, 2, 4)
WEIRD_MAX_BY_MODEL = {"v5": 1000, "v5.1": 1000, "v5.2": 1000, "niji5": 1000}
IW_MAX_BY_MODEL = {"v6": 3.0, "v6.1": 3.0, "v7": 3.0}  # others: 2
IW_MAX_OTHER = 2.0
SV_MAX_BY_MODEL = {"v6": 4, "v6.1": 4, "niji6": 4}  # v7: 1-6
# Ratio limit as max(long side / short side); v4 and earlier were narrower.
ASPECT_MAX = 14.0
ASPECT_MAX_BY_MODEL = {"v1": 2.5, "v2": 2.5, "v3": 2.5, "v4": 2.0}

STYLE_RAW_MODELS = _models("v5.1", "v5.2", "v6", "v6.1", "niji6", "v7")
STYLE_NIJI5 = ("cute", "expressive", "original", "scenic")
STYLE_V4 = ("4a", "4b", "4c")
STYLE_RANDOM = ("random", "random-16", "random-32", "random-64", "random-128")

IMAGE_EXTENSIONS = (".png", ".gif", ".jpg", ".jpeg", ".webp")
