"""A1111 sampler and schedule names -> diffusers schedulers (sd_local.md §3.3-3.4)."""

from __future__ import annotations

import pytest

pytest.importorskip("diffusers")

from imagegen.providers.local._schedulers import choose_scheduler  # noqa: E402

from imagegen.samplers import SAMPLERS  # noqa: E402


@pytest.mark.parametrize(("sampler", "schedule", "cls", "flags"), [
    ("DPM++ 2M", None, "DPMSolverMultistepScheduler", {"use_karras_sigmas": True, "algorithm_type": "dpmsolver++"}),
    ("DPM++ 2M Karras", None, "DPMSolverMultistepScheduler", {"use_karras_sigmas": True}),
    ("DPM++ 2M", "Uniform", "DPMSolverMultistepScheduler", {"timestep_spacing": "linspace"}),
    ("DPM++ 2M SDE", None, "DPMSolverMultistepScheduler",
     {"algorithm_type": "sde-dpmsolver++", "use_exponential_sigmas": True}),
    ("DPM++ 2M SDE Heun", None, "DPMSolverMultistepScheduler", {"solver_type": "heun"}),
    ("Euler a", None, "EulerAncestralDiscreteScheduler", {"timestep_spacing": "linspace"}),
    ("Euler", "SGM Uniform", "EulerDiscreteScheduler", {"timestep_spacing": "trailing"}),
    ("Euler", "Beta", "EulerDiscreteScheduler", {"use_beta_sigmas": True}),
    ("LMS Karras", None, "LMSDiscreteScheduler", {"use_karras_sigmas": True}),
    ("DPM2 a", None, "KDPM2AncestralDiscreteScheduler", {"use_karras_sigmas": True}),
    ("DDIM", None, "DDIMScheduler", {"timestep_spacing": "leading", "steps_offset": 1}),
    ("PLMS", None, "PNDMScheduler", {"skip_prk_steps": True}),
    ("UniPC", None, "UniPCMultistepScheduler", {}),
    ("LCM", None, "LCMScheduler", {}),
])
def test_sampler_maps_to_the_documented_diffusers_scheduler(sampler, schedule, cls, flags):
    choice = choose_scheduler(sampler, schedule)
    assert choice.class_name == cls
    assert flags.items() <= choice.flags.items()
    assert not choice.warnings


@pytest.mark.parametrize("sampler", ["DPM fast", "DPM adaptive", "Restart", "DDIM CFG++", "DPM++ 2S a", "DPM++ 3M SDE"])
def test_samplers_without_a_diffusers_port_use_the_nearest_with_a_warning(sampler):
    choice = choose_scheduler(sampler, None)
    assert choice.warnings and sampler in choice.warnings[0]


def test_every_a1111_sampler_builds_a_scheduler():
    base = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear", "num_train_timesteps": 1000}
    for sampler in SAMPLERS:
        scheduler = choose_scheduler(sampler, None).build(base)
        scheduler.set_timesteps(5)
        assert len(scheduler.timesteps) >= 5


def test_schedule_types_diffusers_lacks_warn_and_use_the_nearest():
    choice = choose_scheduler("Euler", "Align Your Steps")
    assert choice.flags.get("use_karras_sigmas") and "Align Your Steps" in choice.warnings[0]


def test_schedule_type_on_a_timestep_sampler_is_ignored_with_a_warning():
    choice = choose_scheduler("DDIM", "Karras")
    assert "use_karras_sigmas" not in choice.flags and choice.warnings


def test_unknown_sampler_lists_valid_ones():
    with pytest.raises(ValueError, match="Valid samplers: DPM\\+\\+ 2M"):
        choose_scheduler("Eular b", None)


def test_the_model_config_sigma_flags_do_not_leak_into_another_schedule():
    scheduler = choose_scheduler("Euler", None).build({"use_karras_sigmas": True})
    assert not scheduler.config.use_karras_sigmas


def test_schedule_flag_table_matches_the_installed_diffusers():
    import inspect

    import diffusers
    from imagegen.providers.local._schedulers import _SCHEDULE_FLAG_NAMES, SAMPLER_SPECS, _init_params

    classes = {spec.scheduler for spec in SAMPLER_SPECS.values()} | {"DPMSolverSinglestepScheduler"}
    for name in classes:
        taken = set(inspect.signature(getattr(diffusers, name).__init__).parameters)
        assert _init_params(name) == _SCHEDULE_FLAG_NAMES & taken, name


def test_routing_a_local_card_does_not_import_diffusers(tmp_path):
    import subprocess
    import sys

    code = ("import sys\nfrom imagegen.providers.local._schedulers import choose_scheduler\n"
            "choose_scheduler('DPM++ 2M', 'Karras'); choose_scheduler('Euler a', 'Karras')\n"
            "print('diffusers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr
