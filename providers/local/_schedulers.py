"""A1111 sampler + schedule type -> a diffusers scheduler built from the model's own config.

Sources: diffusers `docs/source/en/api/schedulers/overview.md` (A1111 mapping table) and the
diffusers 0.42 scheduler signatures; A1111 1.10 `sd_samplers_*.py` for defaults (2026-11).
Where diffusers has no exact port, the nearest scheduler is used and a warning says so.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from typing import Any

from imagegen.samplers import resolve_sampler


@dataclass(frozen=True)
class SamplerSpec:
    """How one A1111 sampler maps onto diffusers: class name, fixed init flags, and a note if inexact."""

    scheduler: str
    flags: dict[str, Any] = field(default_factory=dict)
    nearest: str = ""  # non-empty: diffusers has no exact port; says what is used instead
    timestep_sampler: bool = False  # A1111 "timesteps" implementations: no schedule types there


_DPMPP = "DPMSolverMultistepScheduler"
SAMPLER_SPECS: dict[str, SamplerSpec] = {
    "Euler": SamplerSpec("EulerDiscreteScheduler"),
    "Euler a": SamplerSpec("EulerAncestralDiscreteScheduler"),
    "LMS": SamplerSpec("LMSDiscreteScheduler"),
    "Heun": SamplerSpec("HeunDiscreteScheduler"),
    "DPM2": SamplerSpec("KDPM2DiscreteScheduler"),
    "DPM2 a": SamplerSpec("KDPM2AncestralDiscreteScheduler"),
    "DPM++ 2M": SamplerSpec(_DPMPP, {"algorithm_type": "dpmsolver++", "solver_order": 2}),
    "DPM++ 2M SDE": SamplerSpec(_DPMPP, {"algorithm_type": "sde-dpmsolver++", "solver_order": 2}),
    "DPM++ 2M SDE Heun": SamplerSpec(
        _DPMPP, {"algorithm_type": "sde-dpmsolver++", "solver_order": 2, "solver_type": "heun"}),
    "DPM++ 3M SDE": SamplerSpec(
        _DPMPP, {"algorithm_type": "sde-dpmsolver++", "solver_order": 3},
        nearest="DPM++ 3M SDE runs as the order-3 SDE DPM-Solver++ (close, not identical)"),
    "DPM++ SDE": SamplerSpec("DPMSolverSDEScheduler"),  # needs torchsde; see _fallback
    "DPM++ 2S a": SamplerSpec(
        "DPMSolverSinglestepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 2},
        nearest="DPM++ 2S a has no diffusers port; using the single-step DPM-Solver++ (not ancestral)"),
    "DPM fast": SamplerSpec(
        _DPMPP, {"algorithm_type": "dpmsolver++", "solver_order": 2},
        nearest="DPM fast has no diffusers port; using DPM++ 2M"),
    "DPM adaptive": SamplerSpec(
        _DPMPP, {"algorithm_type": "dpmsolver++", "solver_order": 2},
        nearest="DPM adaptive has no diffusers port; using DPM++ 2M with the requested step count"),
    "Restart": SamplerSpec(
        "HeunDiscreteScheduler", nearest="Restart has no diffusers port; using Heun"),
    "DDIM": SamplerSpec("DDIMScheduler", {"set_alpha_to_one": False}, timestep_sampler=True),
    "DDIM CFG++": SamplerSpec(
        "DDIMScheduler", {"set_alpha_to_one": False}, timestep_sampler=True,
        nearest="DDIM CFG++ has no diffusers port; using DDIM"),
    "PLMS": SamplerSpec("PNDMScheduler", {"skip_prk_steps": True}, timestep_sampler=True),
    "UniPC": SamplerSpec("UniPCMultistepScheduler", timestep_sampler=True),
    "LCM": SamplerSpec("LCMScheduler", timestep_sampler=True),
}

# Schedule type -> diffusers init flags (docs "Noise schedules and schedule types").
# A1111 "Uniform" is k-diffusion's linspace(999, 0, n) in t, which is diffusers' "linspace" spacing.
_SIGMA_FLAGS = ("use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas")
SCHEDULE_FLAGS: dict[str, dict[str, Any]] = {
    "Uniform": {"timestep_spacing": "linspace"},
    "Normal": {"timestep_spacing": "linspace"},
    "Karras": {"timestep_spacing": "linspace", "use_karras_sigmas": True},
    "Exponential": {"timestep_spacing": "linspace", "use_exponential_sigmas": True},
    "Beta": {"timestep_spacing": "linspace", "use_beta_sigmas": True},
    "SGM Uniform": {"timestep_spacing": "trailing"},
    "Simple": {"timestep_spacing": "trailing"},
    "DDIM": {"timestep_spacing": "leading", "steps_offset": 1},
}
# Schedule types diffusers lacks -> the nearest one it has.
SCHEDULE_NEAREST = {"Polyexponential": "Exponential", "KL Optimal": "Karras", "Align Your Steps": "Karras"}
# A1111's timestep samplers discretise like "DDIM uniform": range(0, 1000, 1000 // n) + 1.
_TIMESTEP_SAMPLER_FLAGS = {"timestep_spacing": "leading", "steps_offset": 1}


@dataclass
class SchedulerChoice:
    label: str  # the A1111 sampler label
    schedule: str  # the concrete schedule type
    class_name: str
    flags: dict[str, Any]
    warnings: list[str] = field(default_factory=list)

    def build(self, base_config: Any):
        """The scheduler, from the model's scheduler config with our flags on top."""
        import diffusers

        cls = getattr(diffusers, self.class_name)
        config = {k: v for k, v in dict(base_config).items() if k not in _SIGMA_FLAGS}
        return cls.from_config(config, **self.flags)


def choose_scheduler(sampler: str | None, schedule: str | None, default_sampler: str = "Euler") -> SchedulerChoice:
    """Map A1111 names to a diffusers class and flags. Unknown names raise ValueError listing valid ones."""
    label, concrete = resolve_sampler(sampler or default_sampler, schedule)
    spec = SAMPLER_SPECS[label]
    warnings = [spec.nearest] if spec.nearest else []
    class_name, flags = _fallback(spec, warnings)
    flags = dict(flags)
    if spec.timestep_sampler:
        if schedule and concrete not in ("Uniform", "DDIM", "Automatic") and class_name != "UniPCMultistepScheduler":
            warnings.append(f"schedule type {concrete!r} ignored: {label} uses its own timesteps, as in A1111")
            concrete = "Uniform"
        if concrete in ("Uniform", "DDIM"):
            flags.update(_TIMESTEP_SAMPLER_FLAGS)
            return SchedulerChoice(label, concrete, class_name, flags, warnings)
    if concrete in SCHEDULE_NEAREST:
        nearest = SCHEDULE_NEAREST[concrete]
        warnings.append(f"schedule type {concrete!r} has no diffusers equivalent; using {nearest!r}")
        concrete = nearest
    schedule_flags = dict(SCHEDULE_FLAGS[concrete])
    supported = _init_params(class_name)
    for key in [k for k in schedule_flags if k not in supported]:
        value = schedule_flags.pop(key)
        if key in _SIGMA_FLAGS and value:
            warnings.append(f"schedule type {concrete!r} is not available for {label}; using its default sigmas")
    flags.update(schedule_flags)
    return SchedulerChoice(label, concrete, class_name, flags, warnings)


def _fallback(spec: SamplerSpec, warnings: list[str]) -> tuple[str, dict[str, Any]]:
    if spec.scheduler == "DPMSolverSDEScheduler" and importlib.util.find_spec("torchsde") is None:
        warnings.append("DPM++ SDE needs the torchsde package; using the single-step DPM-Solver++ instead")
        return "DPMSolverSinglestepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 2}
    return spec.scheduler, spec.flags


# Which schedule flags each scheduler's __init__ takes (diffusers 0.42). A table, not
# inspect.signature, so that routing (`check`) never imports diffusers; a test compares it
# with the installed diffusers.
_SCHEDULE_FLAG_NAMES = frozenset({"steps_offset", "timestep_spacing", *_SIGMA_FLAGS})
_SPACING_ONLY = frozenset({"steps_offset", "timestep_spacing"})
SCHEDULE_FLAGS_TAKEN: dict[str, frozenset[str]] = {
    "DDIMScheduler": _SPACING_ONLY,
    "EulerAncestralDiscreteScheduler": _SPACING_ONLY,
    "LCMScheduler": _SPACING_ONLY,
    "PNDMScheduler": _SPACING_ONLY,
    "DPMSolverSinglestepScheduler": frozenset(_SIGMA_FLAGS),
}  # every other scheduler used here takes all of them


def _init_params(class_name: str) -> frozenset[str]:
    return SCHEDULE_FLAGS_TAKEN.get(class_name, _SCHEDULE_FLAG_NAMES)
