"""The A1111 sampler and schedule-type vocabulary (WebUI 1.10), and how legacy names split.

Source: AUTOMATIC1111 `modules/sd_samplers_kdiffusion.py`, `sd_samplers_timesteps.py`,
`sd_samplers_lcm.py`, `sd_schedulers.py` (1.10, checked 2026-11).
"""

from __future__ import annotations

import difflib

# label -> (aliases, default schedule type when "Automatic")
SAMPLERS: dict[str, tuple[tuple[str, ...], str]] = {
    "DPM++ 2M": (("k_dpmpp_2m",), "Karras"),
    "DPM++ SDE": (("k_dpmpp_sde",), "Karras"),
    "DPM++ 2M SDE": (("k_dpmpp_2m_sde",), "Exponential"),
    "DPM++ 2M SDE Heun": (("k_dpmpp_2m_sde_heun",), "Exponential"),
    "DPM++ 2S a": (("k_dpmpp_2s_a",), "Karras"),
    "DPM++ 3M SDE": (("k_dpmpp_3m_sde",), "Exponential"),
    "Euler a": (("k_euler_a", "k_euler_ancestral"), "Uniform"),
    "Euler": (("k_euler",), "Uniform"),
    "LMS": (("k_lms",), "Uniform"),
    "Heun": (("k_heun",), "Uniform"),
    "DPM2": (("k_dpm_2",), "Karras"),
    "DPM2 a": (("k_dpm_2_a",), "Karras"),
    "DPM fast": (("k_dpm_fast",), "Uniform"),
    "DPM adaptive": (("k_dpm_ad",), "Uniform"),
    "Restart": (("restart",), "Karras"),
    "DDIM": (("ddim",), "Uniform"),
    "DDIM CFG++": (("ddim_cfgpp",), "Uniform"),
    "PLMS": (("plms",), "Uniform"),
    "UniPC": (("unipc",), "Uniform"),
    "LCM": (("k_lcm",), "Uniform"),
}

SCHEDULE_TYPES: tuple[str, ...] = (
    "Automatic", "Uniform", "Karras", "Exponential", "Polyexponential", "SGM Uniform",
    "KL Optimal", "Align Your Steps", "Simple", "Normal", "DDIM", "Beta",
)

_SCHEDULE_ALIASES = {"sgmuniform": "SGM Uniform"}

_BY_LOWER: dict[str, str] = {}
for _label, (_aliases, _) in SAMPLERS.items():
    _BY_LOWER[_label.lower()] = _label
    for _alias in _aliases:
        _BY_LOWER[_alias.lower()] = _label


def _all_names() -> list[str]:
    """Every accepted spelling: labels plus the legacy combined "<sampler> <schedule>" names."""
    names = list(SAMPLERS)
    for label in SAMPLERS:
        names += [f"{label} {s}" for s in ("Karras", "Exponential")]
    return names


def normalize_schedule(name: str) -> str:
    key = name.strip().lower()
    for label in SCHEDULE_TYPES:
        if label.lower() == key:
            return label
    if key in _SCHEDULE_ALIASES:
        return _SCHEDULE_ALIASES[key]
    close = difflib.get_close_matches(name, SCHEDULE_TYPES, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise ValueError(f"unknown schedule type {name!r}{hint} Valid: {', '.join(SCHEDULE_TYPES)}")


def split_sampler(name: str) -> tuple[str, str | None]:
    """Split an A1111 sampler name into (label, schedule type or None for Automatic).

    Legacy names carry the schedule ("DPM++ 2M Karras" -> ("DPM++ 2M", "Karras")), as
    A1111's `get_sampler_and_scheduler` does.
    """
    key = " ".join(name.strip().split()).lower()
    if key in _BY_LOWER:
        return _BY_LOWER[key], None
    for schedule in SCHEDULE_TYPES:
        suffix = " " + schedule.lower()
        if key.endswith(suffix) and key[: -len(suffix)] in _BY_LOWER:
            return _BY_LOWER[key[: -len(suffix)]], schedule
    close = difflib.get_close_matches(name, _all_names(), n=4, cutoff=0.5)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise ValueError(f"unknown sampler {name!r}{hint} Valid samplers: {', '.join(SAMPLERS)}")


def resolve_sampler(sampler: str, scheduler: str | None = None) -> tuple[str, str]:
    """(label, concrete schedule type): "Automatic" becomes the sampler's own default."""
    label, legacy_schedule = split_sampler(sampler)
    schedule = normalize_schedule(scheduler) if scheduler else legacy_schedule or "Automatic"
    if schedule == "Automatic":
        schedule = SAMPLERS[label][1]
    return label, schedule
