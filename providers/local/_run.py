"""One local generation: seeds, prompt plan, sampler, first pass, hires fix, encoding.

Seeds follow A1111: image k of the job uses seed + k, drawn from its own CPU generator, so an
image is the same whatever the batch size. With a variation seed every image keeps the seed and
image k blends in the noise of variation seed + k. Step counts follow A1111 for img2img and
hires fix.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..base import Progress
from ._prompt import PromptEncoder, PromptPlan
from ._schedulers import SchedulerChoice
from ._upscale import is_latent, target_size, upscale_images, upscale_latents


@dataclass
class RunSpec:
    """Everything a run needs, already resolved by the provider."""

    prompt: str  # extra-network tags removed
    negative: str
    width: int
    height: int
    steps: int
    cfg: float
    seeds: list[int]  # one per image, whole job
    batch_size: int
    scheduler: SchedulerChoice
    clip_skip: int | None = None
    init_image: Any = None  # PIL
    mask_image: Any = None  # PIL
    denoising_strength: float = 0.75
    control_nets: list = field(default_factory=list)  # loaded ControlNet models, one per unit
    control_images: list = field(default_factory=list)
    control_weights: list = field(default_factory=list)
    control_starts: list = field(default_factory=list)
    control_ends: list = field(default_factory=list)
    hires: Any = None  # HiresFix
    models_dir: Any = None
    subseeds: list[int] = field(default_factory=list)  # variation seeds, one per image (txt2img)
    subseed_strength: float = 0.0


@dataclass
class RunOutput:
    images: list  # PIL, one per seed
    gpu_seconds: float
    first_pass_steps: int
    hires_steps: int = 0
    hires_size: tuple[int, int] | None = None
    warnings: list[str] = field(default_factory=list)


def img2img_schedule(steps: int, denoise: float) -> tuple[int, float, int]:
    """(num_inference_steps, strength, steps run) reproducing A1111 img2img (`t_enc + 1` steps)."""
    t_enc = int(min(denoise, 0.999) * steps)
    return steps, (t_enc + 1) / steps, t_enc + 1


def hires_schedule(hires_steps: int, denoise: float) -> tuple[int, float, int]:
    """A1111 hires pass with explicit steps: total = int(steps / denoise); run exactly `steps`."""
    total = int(hires_steps / min(denoise, 0.999))
    return total, min(1.0, hires_steps / total + 1e-6), hires_steps


class Run:
    def __init__(self, model: Any, spec: RunSpec, progress: Callable | None = None,
                 upscaler_cache: dict | None = None):
        self.model = model
        self.spec = spec
        self.progress = progress
        self.upscaler_cache = upscaler_cache if upscaler_cache is not None else {}
        self.gpu_seconds = 0.0
        self.warnings: list[str] = []

    def execute(self) -> RunOutput:
        spec = self.spec
        images: list = []
        first_steps = hires_steps = 0
        hires_size = None
        for start in range(0, len(spec.seeds), spec.batch_size):
            seeds = spec.seeds[start : start + spec.batch_size]
            out, first_steps = self._first_pass(seeds, start)
            if spec.hires is not None:
                out, hires_steps, hires_size = self._hires_pass(out, seeds, start)
            images.extend(out)
        return RunOutput(images, self.gpu_seconds, first_steps, hires_steps, hires_size, self.warnings)

    # -- passes ---------------------------------------------------------------------

    def _first_pass(self, seeds: list[int], offset: int) -> tuple[list, int]:
        spec = self.spec
        controls = bool(spec.control_images)
        if spec.mask_image is not None:
            kind = "inpaint"
        elif spec.init_image is not None:
            kind = "img2img"
        else:
            kind = "txt2img"
        pipe = self.model.pipeline(kind, self.controlnets) if controls else self.model.pipeline(kind)
        kwargs: dict[str, Any] = {}
        steps_run = spec.steps
        if kind == "txt2img":
            kwargs.update(width=spec.width, height=spec.height, num_inference_steps=spec.steps)
        else:
            total, strength, steps_run = img2img_schedule(spec.steps, spec.denoising_strength)
            kwargs.update(image=[spec.init_image] * len(seeds), strength=strength, num_inference_steps=total)
            if kind == "inpaint":
                kwargs.update(mask_image=[spec.mask_image] * len(seeds), width=spec.width, height=spec.height)
        if controls:
            kwargs.update(self._control_kwargs(kind, (spec.width, spec.height)))
        want_latents = spec.hires is not None and is_latent(spec.hires.upscaler)
        variation = kind == "txt2img" and bool(spec.subseeds)
        out = self._call(pipe, seeds, offset, steps_run, kwargs, "latent" if want_latents else "pil",
                         variation=variation)
        return out, steps_run

    def _hires_pass(self, first: Any, seeds: list[int], offset: int) -> tuple[list, int, tuple[int, int]]:
        spec, hires = self.spec, self.spec.hires
        width, height = target_size(spec.width, spec.height, hires.scale, hires.resize_width, hires.resize_height)
        if hires.resize_width and hires.resize_height and offset == 0 and \
                abs(hires.resize_width / hires.resize_height - spec.width / spec.height) > 0.01:
            self.warnings.append("hires resize to a different aspect ratio stretches the image (no crop)")
        if is_latent(hires.upscaler):
            image = upscale_latents(first, hires.upscaler, width, height, self.model.base.vae_scale_factor)
        else:
            image = upscale_images(first, hires.upscaler, width, height, spec.models_dir, self.model.device,
                                   self.upscaler_cache)
        steps = hires.steps or spec.steps
        total, strength, steps_run = hires_schedule(steps, hires.denoising_strength)
        controls = bool(spec.control_images)
        pipe = self.model.pipeline("img2img", self.controlnets) if controls else self.model.pipeline("img2img")
        kwargs: dict[str, Any] = {"image": image, "strength": strength, "num_inference_steps": total}
        if controls:
            kwargs.update(self._control_kwargs("img2img", (width, height)))
        out = self._call(pipe, seeds, offset, steps_run, kwargs, "pil", hires_steps=steps_run, stage="hires")
        return out, steps_run, (width, height)

    # -- shared ---------------------------------------------------------------------

    @property
    def controlnets(self) -> tuple:
        return tuple(self.spec.control_nets)

    def _control_kwargs(self, kind: str, size: tuple[int, int]) -> dict[str, Any]:
        from PIL import Image

        spec = self.spec
        images = [im.convert("RGB").resize(size, Image.LANCZOS) for im in spec.control_images]
        one = len(images) == 1
        key = "image" if kind == "txt2img" else "control_image"
        return {
            key: images[0] if one else images,  # one image per unit; diffusers repeats it over the batch
            "controlnet_conditioning_scale": spec.control_weights[0] if one else list(spec.control_weights),
            "control_guidance_start": spec.control_starts[0] if one else list(spec.control_starts),
            "control_guidance_end": spec.control_ends[0] if one else list(spec.control_ends),
        }

    def _call(self, pipe: Any, seeds: list[int], offset: int, steps_run: int, kwargs: dict[str, Any],
              output_type: str, hires_steps: int | None = None, stage: str = "step",
              variation: bool = False) -> Any:
        import torch

        spec = self.spec
        pipe.scheduler = spec.scheduler.build(self.model.scheduler_config)
        encoder = PromptEncoder(pipe, spec.clip_skip, self.model.embeddings)
        dtype = getattr(torch, self.model.dtype)  # `pipe.unet.dtype` walks every parameter
        if hires_steps is None:
            plan = PromptPlan(encoder, spec.prompt, spec.negative, steps_run, len(seeds), dtype=dtype)
        else:
            plan = PromptPlan(encoder, spec.prompt, spec.negative, spec.steps, len(seeds), dtype=dtype,
                              hires_steps=hires_steps)
        generators = [torch.Generator("cpu").manual_seed(seed) for seed in seeds]
        if variation:
            subseeds = spec.subseeds[offset : offset + len(seeds)]
            kwargs = {**kwargs, "latents": self._variation_noise(pipe, generators, subseeds, dtype)}
        tensors = ["latents"]
        if plan.scheduled:
            tensors += ["prompt_embeds"] + (["add_text_embeds"] if plan.segments[0].pooled is not None else [])
        order = getattr(pipe.scheduler, "order", 1)
        progress = self.progress

        def on_step_end(pipeline: Any, index: int, timestep: Any, tensors_in: dict) -> dict:
            # Second-order schedulers call the UNet twice per step: report whole steps only.
            if progress is not None and ((index + 1) % order == 0 or index + 1 == pipeline.num_timesteps):
                total = (pipeline.num_timesteps + order - 1) // order
                progress(Progress(stage=stage, step=min(index // order + 1, total), total=total,
                                  image_index=offset))
            if plan.scheduled:
                return plan.step_tensors(pipeline, (index + 1) // order + 1)
            return {}

        started = time.perf_counter()
        try:
            result = pipe(**plan.pipeline_kwargs(), guidance_scale=spec.cfg, generator=generators,
                          output_type=output_type, callback_on_step_end=on_step_end,
                          callback_on_step_end_tensor_inputs=tensors, **kwargs)
        finally:
            self.gpu_seconds += time.perf_counter() - started
        return result.images

    def _variation_noise(self, pipe: Any, generators: list, subseeds: list[int], dtype: Any) -> Any:
        """A1111's variation: slerp from each image's own noise toward its variation seed's. The
        own noise is the draw diffusers would make, from the same generator, which then goes on
        to the sampler (ancestral noise) as it would without a variation."""
        import torch

        spec = self.spec
        scale = pipe.vae_scale_factor
        shape = (pipe.unet.config.in_channels, spec.height // scale, spec.width // scale)
        noises = []
        for generator, subseed in zip(generators, subseeds, strict=True):
            noise = torch.randn(shape, generator=generator, dtype=dtype)
            subnoise = torch.randn(shape, generator=torch.Generator("cpu").manual_seed(subseed), dtype=dtype)
            noises.append(slerp(spec.subseed_strength, noise, subnoise))
        return torch.stack(noises).to(self.model.device)


def slerp(val: float, low: Any, high: Any) -> Any:
    """A1111's `slerp` (modules/rng.py), including its near-parallel fallback, for (C, H, W) noise."""
    import torch

    low_norm = low / torch.norm(low, dim=1, keepdim=True)
    high_norm = high / torch.norm(high, dim=1, keepdim=True)
    dot = (low_norm * high_norm).sum(1)
    if dot.mean() > 0.9995:
        return low * val + high * (1 - val)
    omega = torch.acos(dot)
    so = torch.sin(omega)
    return (torch.sin((1.0 - val) * omega) / so).unsqueeze(1) * low + (torch.sin(val * omega) / so).unsqueeze(1) * high
