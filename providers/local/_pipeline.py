"""Loading local checkpoints offline, choosing device/dtype, and keeping them warm.

One loaded checkpoint serves txt2img, img2img, inpaint and ControlNet through `from_pipe`
(shared weights); LoRAs are PEFT adapters switched by weight, never a reload of the base.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imagegen.errors import ConfigError, ModelLoadError

from ._configs import config_dir_for
from ._embeddings import Embeddings

log = logging.getLogger(__name__)

CHECKPOINT_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".bin")

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


def pick_device(setting: str = "auto") -> tuple[str, str]:
    """(device, dtype name): CUDA fp16, then MPS fp16, then CPU fp32."""
    import torch

    mps = getattr(torch.backends, "mps", None)
    has_mps = bool(mps and mps.is_available())
    if setting == "auto":
        setting = "cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu"
    elif setting == "cuda" and not torch.cuda.is_available():
        raise ConfigError("IMAGEGEN_DEVICE=cuda but no CUDA device is available")
    elif setting == "mps" and not has_mps:
        raise ConfigError("IMAGEGEN_DEVICE=mps but MPS is not available")
    return setting, "float32" if setting == "cpu" else "float16"


def checkpoint_family(path: Path) -> str:
    """"sd15" or "sdxl" for a diffusers folder or a single-file checkpoint; ModelLoadError otherwise."""
    if path.is_dir():
        index = path / "model_index.json"
        if not index.is_file():
            raise ModelLoadError(f"{path} is a folder without model_index.json (not a diffusers model)")
        try:
            name = json.loads(index.read_text())["_class_name"]
        except (ValueError, KeyError) as exc:
            raise ModelLoadError(f"{index} is unreadable: {exc}") from None
        return "sdxl" if "XL" in name else "sd15"
    keys = _checkpoint_keys(path)
    if any(k.startswith("conditioner.embedders.1.") for k in keys):
        return "sdxl"
    if any(k.startswith("cond_stage_model.model.") for k in keys):
        raise ModelLoadError(f"{path}: Stable Diffusion 2.x checkpoints are not supported")
    if any(k.startswith("model.diffusion_model.") for k in keys):
        return "sd15"
    raise ModelLoadError(f"{path}: not a Stable Diffusion checkpoint (no model.diffusion_model.* weights)")


def _checkpoint_keys(path: Path) -> list[str]:
    try:
        if path.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as handle:
                return list(handle.keys())
        import torch

        state = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
        return list(state.get("state_dict", state).keys())
    except Exception as exc:  # any parse failure means a corrupt or foreign file
        raise ModelLoadError(f"cannot read checkpoint {path}: {exc}") from None


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
    scheduler_config: dict = field(default_factory=dict)  # the checkpoint's own, before any swap
    file_hash: str | None = None  # A1111 "Model hash" (sha256[:10]), computed on first need
    embeddings: Embeddings = field(default_factory=Embeddings)  # textual inversions added so far

    def pipeline(self, kind: str, controlnets: tuple = ()) -> Any:
        """The pipeline for txt2img / img2img / inpaint, with ControlNet models if given."""
        import diffusers

        key = (kind, tuple(id(c) for c in controlnets))
        if kind == "txt2img" and not controlnets:
            return self.base
        if key not in self.variants:
            cls = getattr(diffusers, _PIPELINES[(self.family, kind, bool(controlnets))])
            extra = {}
            if controlnets:
                extra["controlnet"] = controlnets[0] if len(controlnets) == 1 else list(controlnets)
            pipe = cls.from_pipe(self.base, **extra)
            pipe.set_progress_bar_config(disable=True)
            if self.cpu_offload:
                pipe.enable_model_cpu_offload(device=self.device)
            self.variants[key] = pipe
        return self.variants[key]

    def set_loras(self, loras: list[tuple[Path, float]]) -> None:
        """Activate exactly these LoRA files with these weights; load each file once."""
        pipe = self.base
        for path, _ in loras:
            if str(path) not in self.adapters:
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
        switches = {
            "attention_slicing": (pipe.unet, pipe.enable_attention_slicing, pipe.disable_attention_slicing),
            "vae_tiling": (pipe.vae, pipe.vae.enable_tiling, pipe.vae.disable_tiling),
            "vae_slicing": (pipe.vae, pipe.vae.enable_slicing, pipe.vae.disable_slicing),
        }
        for option, (module, on, off) in switches.items():
            key = f"{option}:{id(module)}"
            wanted = bool(options.get(option, False))
            if self.memory.get(key, False) != wanted:
                (on if wanted else off)()
                self.memory[key] = wanted


def load_vae(source: Path, model: LoadedModel) -> Any:
    import torch
    from diffusers import AutoencoderKL

    dtype = getattr(torch, model.dtype)
    if not source.exists():
        raise ModelLoadError(f"VAE not found: {source}")
    try:
        if source.is_dir():
            vae = AutoencoderKL.from_pretrained(str(source), dtype=dtype, local_files_only=True)
        else:
            # The VAE config of the loaded model: its own folder, the given config, or the packaged one.
            config = model.config_dir or (model.path if model.path.is_dir() else config_dir_for(model.family))
            vae = AutoencoderKL.from_single_file(str(source), config=str(config), subfolder="vae",
                                                 local_files_only=True, dtype=dtype)
    except Exception as exc:
        raise ModelLoadError(f"cannot load VAE {source}: {exc}") from None
    return vae if model.cpu_offload else vae.to(model.device)


def load_controlnet(source: Path, model: LoadedModel) -> Any:
    import torch
    from diffusers import ControlNetModel

    dtype = getattr(torch, model.dtype)
    if not source.exists():
        raise ModelLoadError(f"ControlNet model not found: {source}")
    try:
        if source.is_dir():
            net = ControlNetModel.from_pretrained(str(source), dtype=dtype, local_files_only=True)
        else:
            config = source.with_suffix("")  # a sibling folder with config.json, e.g. control_x/
            if not (config / "config.json").is_file():
                raise ModelLoadError(f"single-file ControlNet {source} needs its config folder {config}/config.json")
            net = ControlNetModel.from_single_file(str(source), config=str(config), local_files_only=True,
                                                   dtype=dtype)
    except ModelLoadError:
        raise
    except Exception as exc:
        raise ModelLoadError(f"cannot load ControlNet {source}: {exc}") from None
    return net if model.cpu_offload else net.to(model.device)


def quiet_libraries() -> None:
    """Silence diffusers/transformers load chatter and progress bars: our Progress events
    (and the CLI's bar) report steps, and their warnings here are about optional backends."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    for library in (diffusers_logging, transformers_logging):
        library.set_verbosity_error()
        library.disable_progress_bar()


def load_checkpoint(path: Path, device: str, dtype: str, *, cpu_offload: bool = False,
                    config: Path | None = None) -> LoadedModel:
    """Load a diffusers folder or single-file checkpoint, offline. ModelLoadError names the path."""
    import diffusers
    import torch

    if not path.exists():
        raise ModelLoadError(f"checkpoint not found: {path}")
    quiet_libraries()
    family = checkpoint_family(path)
    cls = getattr(diffusers, _PIPELINES[(family, "txt2img", False)])
    torch_dtype = getattr(torch, dtype)
    started = time.perf_counter()
    try:
        if path.is_dir():
            extra = {"safety_checker": None, "requires_safety_checker": False} if family == "sd15" else {}
            pipe = cls.from_pretrained(str(path), dtype=torch_dtype, local_files_only=True, **extra)
        else:
            config = config or config_dir_for(family)
            pipe = cls.from_single_file(str(path), config=str(config), local_files_only=True,
                                        dtype=torch_dtype)
    except Exception as exc:
        raise ModelLoadError(f"cannot load {path}: {type(exc).__name__}: {exc}") from None
    if cpu_offload:
        pipe.enable_model_cpu_offload(device=device)
    else:
        pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    return LoadedModel(path=path, family=family, device=device, dtype=dtype, cpu_offload=cpu_offload,
                       base=pipe, config_dir=config, load_s=time.perf_counter() - started,
                       scheduler_config=dict(pipe.scheduler.config))


class PipelineCache:
    """Keeps the last checkpoint warm (one at a time: SD weights are large)."""

    def __init__(self) -> None:
        self.model: LoadedModel | None = None
        self._key: tuple | None = None
        self.controlnets: dict[str, Any] = {}
        self.loads = 0  # how many checkpoint loads happened (observable warm-cache behaviour)

    def get(self, path: Path, device: str, dtype: str, *, cpu_offload: bool = False,
            config: Path | None = None) -> tuple[LoadedModel, float]:
        """(model, seconds spent loading now; 0.0 when it was warm)."""
        key = (path.resolve(), device, dtype, cpu_offload, config)
        if self.model is not None and self._key == key:
            return self.model, 0.0
        self.clear()
        self.model = load_checkpoint(path, device, dtype, cpu_offload=cpu_offload, config=config)
        self._key = key
        self.loads += 1
        return self.model, self.model.load_s

    def controlnet(self, source: Path, model: LoadedModel) -> Any:
        key = f"{source.resolve()}|{model.device}|{model.dtype}"
        if key not in self.controlnets:
            self.controlnets[key] = load_controlnet(source, model)
        return self.controlnets[key]

    def clear(self) -> None:
        self.model = None
        self._key = None
        self.controlnets.clear()
        _free_memory()


def _free_memory() -> None:
    import gc
    import sys

    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()
