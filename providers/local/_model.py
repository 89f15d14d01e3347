"""A loaded checkpoint kept warm: its pipelines, LoRA adapters, VAE override and memory switches.

One loaded checkpoint serves txt2img, img2img, inpaint and ControlNet through `from_pipe`
(shared weights); LoRAs are PEFT adapters switched by weight, never a reload of the base.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imagegen.errors import ModelLoadError

from ._components import load_vae
from ._embeddings import Embeddings

# (family, kind, with ControlNet) -> diffusers pipeline class name
_PIPELINES = {
    ("sd15", "txt2img", False): "StableDiffusionPipeline",
    ("sd15", "img2img", False): "StableDiffusionImg2ImgPipeline",
    ("sd15", "inpaint", False): "StableDiffusionInpaintPipeline",
    ("sd15", "txt2img", True): "StableDiffusionControlNetPipeline",
    ("sd15", "img2img", True): "StableDiffusionControlNetImg2ImgPipeline",
    ("sd15", "inpaint", True): "StableDiffusionControlNetInpaintPipeline",
    ("sdxl", "txt2img", False): "StableDiffusionXLPipeline",
    ("sdxl", "img2img", False): "StableDiffusionXLImg2ImgPipeline",
    ("sdxl", "inpaint", False): "StableDiffusionXLInpaintPipeline",
    ("sdxl", "txt2img", True): "StableDiffusionXLControlNetPipeline",
    ("sdxl", "img2img", True): "StableDiffusionXLControlNetImg2ImgPipeline",
    ("sdxl", "inpaint", True): "StableDiffusionXLControlNetInpaintPipeline",
}


@dataclass
class LoadedModel:
    """A warm checkpoint: the base pipeline, its `from_pipe` variants, and adapter state."""

    path: Path
    family: str
    device: str
    dtype: str
    cpu_offload: bool
    base: Any
    config_dir: Path | None
    load_s: float
    variants: dict[tuple, Any] = field(default_factory=dict)
    adapters: dict[str, str] = field(default_factory=dict)  # LoRA file -> adapter name
    baked_vae: Any = None
    vae_source: str | None = None
    memory: dict[str, bool] = field(default_factory=dict)
    offload: str = "none"  # none | model | sequential (flow families; SD uses cpu_offload)
    quantize: str | None = None  # fp8 | nf4 when applied at load
    scheduler_config: dict = field(default_factory=dict)  # the checkpoint's own, before any swap
    file_hash: str | None = None  # A1111 "Model hash" (sha256[:10]), computed on first need
    embeddings: Embeddings = field(default_factory=Embeddings)  # textual inversions added so far

    def pipeline(self, kind: str, controlnets: tuple = ()) -> Any:
        """The pipeline for txt2img / img2img / inpaint, with ControlNet models if given."""
        import diffusers

        from ._families import is_flow
        from ._flow_plan import PIPELINES

        key = (kind, tuple(id(c) for c in controlnets))
        if kind == "txt2img" and not controlnets:
            return self.base
        if key not in self.variants:
            name = PIPELINES[(self.family, kind)] if is_flow(self.family) else \
                _PIPELINES[(self.family, kind, bool(controlnets))]
            if name == type(self.base).__name__:
                return self.base
            cls = getattr(diffusers, name)
            extra = {}
            if controlnets:
                extra["controlnet"] = controlnets[0] if len(controlnets) == 1 else list(controlnets)
            pipe = cls.from_pipe(self.base, **extra)
            pipe.set_progress_bar_config(disable=True)
            if self.cpu_offload or self.offload == "model":
                pipe.enable_model_cpu_offload(device=self.device)
            elif self.offload == "sequential":
                pipe.enable_sequential_cpu_offload(device=self.device)
            self.variants[key] = pipe
        return self.variants[key]

    def set_loras(self, loras: list[tuple[Path, float]]) -> None:
        """Activate exactly these LoRA files with these weights; load each file once. A LoRA
        made for another architecture is refused with both named."""
        from ._families import ARCH, ARCH_NAMES, lora_family, lora_fits

        pipe = self.base
        for path, _ in loras:
            if str(path) not in self.adapters:
                made_for = lora_family(path)
                if not lora_fits(made_for, self.family):
                    arch = ARCH.get(self.family, self.family)
                    raise ModelLoadError(
                        f"LoRA {path.name} is for {ARCH_NAMES.get(made_for or '', made_for)}, but the model "
                        f"{self.path.name} is {ARCH_NAMES.get(arch, arch)}: it cannot load there")
                name = f"lora_{len(self.adapters)}"
                try:
                    pipe.load_lora_weights(str(path), adapter_name=name)
                except Exception as exc:
                    raise ModelLoadError(f"cannot load LoRA {path}: {exc}") from None
                self.adapters[str(path)] = name
        if not self.adapters:
            return
        if not loras:
            pipe.disable_lora()
            return
        pipe.enable_lora()
        pipe.set_adapters([self.adapters[str(p)] for p, _ in loras], adapter_weights=[w for _, w in loras])

    def set_vae(self, source: Path | None) -> None:
        """Swap the VAE on every pipeline (None: the checkpoint's own)."""
        key = str(source) if source else None
        if key == self.vae_source:
            return
        if self.baked_vae is None:
            self.baked_vae = self.base.vae
        vae = self.baked_vae if source is None else load_vae(source, self)
        for pipe in [self.base, *self.variants.values()]:
            pipe.register_modules(vae=vae)
        self.vae_source = key

    def apply_memory(self, pipe: Any, options: dict[str, bool]) -> None:
        """Attention slicing and VAE tiling/slicing, switched only when they change.

        State is kept per module: the UNet is shared by all pipelines, a VAE override brings its own.
        """
        denoiser = getattr(pipe, "unet", None) or pipe.transformer
        switches = {
            "attention_slicing": (denoiser, pipe.enable_attention_slicing, pipe.disable_attention_slicing),
            "vae_tiling": (pipe.vae, pipe.vae.enable_tiling, pipe.vae.disable_tiling),
            "vae_slicing": (pipe.vae, pipe.vae.enable_slicing, pipe.vae.disable_slicing),
        }
        for option, (module, on, off) in switches.items():
            key = f"{option}:{id(module)}"
            wanted = bool(options.get(option, False))
            if self.memory.get(key, False) != wanted:
                (on if wanted else off)()
                self.memory[key] = wanted


