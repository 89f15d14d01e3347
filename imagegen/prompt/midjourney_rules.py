"""Rules between Midjourney parameters: what each model version accepts, and which
parameters need or exclude others (docs.midjourney.com compatibility tables; V7 from
third-party summaries, 2025-2026)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import PromptSyntaxError
from . import midjourney_params as mp

Fail = Callable[[str, str], PromptSyntaxError]


def check_rules(given: dict[str, Any], written: dict[str, str], fail: Fail, *, has_text: bool,
                has_images: bool) -> list[str]:
    """Raise ``fail(field, message)`` for the first rule ``given`` breaks; return warnings for
    what Midjourney accepts but ignores.

    ``given`` maps MidjourneyParams fields to values; ``written`` maps them to the name used.
    """
    version, niji = given.get("version"), given.get("niji")
    if version and niji:
        raise fail("niji", "--niji and --v choose different models; give only one")
    model = "v" + version if version else "niji" + niji if niji else None
    label = f"--v {version}" if version else f"--niji {niji}" if niji else ""

    if model:
        for field_name in given:
            name = written[field_name]
            spec = mp.BY_NAME[mp.SPELLINGS.get(name, name)]
            if spec.models is not None and model not in spec.models:
                hint = " (V7 replaced it with --oref)" if spec.name in ("cref", "cw") and model == "v7" else ""
                raise fail(field_name, f"--{name} does not work with {label}{hint}; it works with "
                           f"{_model_list(spec.models)}")
    warnings = _check_dependencies(given, fail, has_text, has_images)
    _check_version_values(given, fail, model, label)
    return warnings


def _check_dependencies(given: dict[str, Any], fail: Fail, has_text: bool, has_images: bool) -> list[str]:
    warnings = []
    for child, parent in (("cw", "cref"), ("sw", "sref"), ("sv", "sref"), ("ow", "oref")):
        if child in given and parent not in given:
            raise fail(child, f"--{child} adjusts --{parent}, which is missing")
    if "image_weight" in given and not has_images:  # Midjourney runs the job and ignores it
        warnings.append(f"--iw {given['image_weight']:g} has no effect: the prompt starts with no image prompt")
    if "sref" in given and not has_text:
        raise fail("sref", "--sref needs text in the prompt, not only images")
    if given.get("quality") == 4 and "oref" in given:
        raise fail("quality", "--q 4 cannot be combined with --oref")
    if "repeat" in given and given.get("speed") == "relax":
        raise fail("repeat", "--repeat runs only in Fast or Turbo mode, not with --relax")
    return warnings


def _check_version_values(given: dict[str, Any], fail: Fail, model: str | None, label: str) -> None:
    quality = given.get("quality")
    if quality is not None:
        allowed = mp.QUALITY_BY_MODEL.get(model, mp.QUALITY_ANY) if model else mp.QUALITY_ANY
        if quality not in allowed:
            shown = ", ".join(f"{q:g}" for q in allowed)
            raise fail("quality", f"--q {quality:g} is not allowed{' with ' + label if label else ''}; "
                       f"use one of {shown}")
    weird = given.get("weird")
    if weird is not None and model and weird > mp.WEIRD_MAX_BY_MODEL.get(model, 3000):
        raise fail("weird", f"--weird goes up to {mp.WEIRD_MAX_BY_MODEL[model]} with {label}, got {weird}")
    image_weight = given.get("image_weight")
    if image_weight is not None and model:
        high = mp.IW_MAX_BY_MODEL.get(model, mp.IW_MAX_OTHER)
        if image_weight > high:
            raise fail("image_weight", f"--iw goes up to {high:g} with {label}, got {image_weight:g}")
    sv = given.get("sv")
    if sv is not None and model and sv > mp.SV_MAX_BY_MODEL.get(model, 6):
        raise fail("sv", f"--sv goes up to {mp.SV_MAX_BY_MODEL[model]} with {label}, got {sv}")
    aspect = given.get("aspect")
    if aspect is not None:
        w, h = (int(side) for side in aspect.split(":"))
        high = mp.ASPECT_MAX_BY_MODEL.get(model, mp.ASPECT_MAX) if model else mp.ASPECT_MAX
        if max(w, h) / min(w, h) > high:
            raise fail("aspect", f"--ar {aspect} is too elongated{' for ' + label if label else ''}; "
                       f"the long side may be at most {high:g} times the short one")
    style = given.get("style")
    if style is not None:
        _check_style(style, fail, model, label)


def _check_style(style: str, fail: Fail, model: str | None, label: str) -> None:
    if style == "raw":
        if model and model not in mp.STYLE_RAW_MODELS:
            raise fail("style", f"--style raw does not work with {label}; it works with "
                       f"{_model_list(mp.STYLE_RAW_MODELS)}")
    elif style in mp.STYLE_NIJI5:
        if model != "niji5":
            raise fail("style", f"--style {style} is a niji 5 style; add --niji 5")
    elif style in mp.STYLE_V4:
        if model != "v4":
            raise fail("style", f"--style {style} is a version 4 style; add --v 4")


def _model_list(models: frozenset[str]) -> str:
    def key(model: str) -> tuple[int, float]:
        return (model.startswith("niji"), float(model.lstrip("vnij")))

    return ", ".join(("--niji " + m[4:]) if m.startswith("niji") else ("--v " + m[1:])
                     for m in sorted(models, key=key))
