"""Loading flow-match models (FLUX.1, FLUX.2, SD 3.5) offline: a diffusers folder, or a single
transformer-only `.safetensors` (as Flux weights are distributed) with every other component from
a base folder: `provider_options["local"]["base"]`, else a folder of the same family in the
models dir. The family comes from the weights (see `_families`), never from the file name.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from imagegen.errors import ConfigError, ModelLoadError

from ._families import ARCH, ARCH_NAMES, checkpoint_family
from ._files import find_checkpoints, resolve_checkpoint
from ._flow_plan import PIPELINES
from ._model import LoadedModel

TRANSFORMERS = {"flux1": "FluxTransformer2DModel", "flux2": "Flux2Transformer2DModel",
                "flux2-klein": "Flux2Transformer2DModel", "sd3": "SD3Transformer2DModel"}
# What fp8/NF4 quantize, per architecture: the transformer, and FLUX.1/SD3's T5 (the next largest).
_QUANTIZED = {"flux1": ["transformer", "text_encoder_2"], "sd3": ["transformer", "text_encoder_3"],
              "flux2": ["transformer", "text_encoder"], "flux2-klein": ["transformer"]}


def find_base(family: str, base: str | None, models_dir: Path | None) -> Path:
    """The diffusers folder that lends a single-file transformer its text encoders, VAE and scheduler."""
    arch = ARCH[family]
    if base is not None:
        path = resolve_checkpoint(base, models_dir)
        if path is None or not path.is_dir():
            raise ConfigError(f"provider_options['local']['base']: {base!r} is not a diffusers folder "
                              f"(a path, or a folder name in {models_dir or 'IMAGEGEN_MODELS_DIR (not set)'})")
        found = checkpoint_family(path)
        if ARCH.get(found) != arch:
            raise ModelLoadError(f"base {path.name} is {ARCH_NAMES.get(ARCH.get(found, ''), found)}, but the "
                                 f"transformer is {ARCH_NAMES[arch]}")
        return path
    folders = [(name, fam) for name, fam in find_checkpoints(models_dir) if ARCH.get(fam) == arch]
    for name, _ in sorted(folders, key=lambda item: item[1] != family):  # the same family first
        path = resolve_checkpoint(name, models_dir)
        if path is not None and path.is_dir():
            return path
    raise ModelLoadError(
        f"a single-file {ARCH_NAMES[arch]} transformer needs a base diffusers folder for its text encoders "
        f"and VAE: set provider_options['local']['base'] or put one in {models_dir or 'IMAGEGEN_MODELS_DIR'}")


def resolve_family(path: Path, base: Path | None) -> str:
    """The family of ``path``; for a single file, refined by its base folder (Kontext and klein
    base have the same tensors as dev and klein: only the base folder tells them apart)."""
    family = checkpoint_family(path)
    if path.is_file() and base is not None:
        base_family = checkpoint_family(base)
        if ARCH.get(base_family) == ARCH.get(family):
            return base_family
    return family


def load_flow(path: Path, device: str, dtype: str, *, offload: str = "none", quantize: str | None = None,
              base: Path | None = None) -> LoadedModel:
    """Load a flow-match model. ModelLoadError names the path; ``base`` is needed for a single file."""
    import diffusers
    import torch

    from ._loading import quiet_libraries

    if not path.exists():
        raise ModelLoadError(f"checkpoint not found: {path}")
    quiet_libraries()
    family = resolve_family(path, base)
    cls = getattr(diffusers, PIPELINES[(family, "txt2img")], None)
    if cls is None:
        raise ModelLoadError(f"{path}: this diffusers ({diffusers.__version__}) has no "
                             f"{PIPELINES[(family, 'txt2img')]}")
    torch_dtype = getattr(torch, dtype)
    started = time.perf_counter()
    extra: dict[str, Any] = {}
    if quantize == "nf4" or (quantize == "fp8" and _has("torchao")):
        extra["quantization_config"] = quantization_config(quantize, ARCH[family], torch_dtype)
    try:
        if path.is_dir():
            pipe = cls.from_pretrained(str(path), dtype=torch_dtype, local_files_only=True, **extra)
        else:
            if base is None:
                raise ModelLoadError(f"{path}: a single-file transformer needs a base folder")
            transformer_cls = getattr(diffusers, TRANSFORMERS[ARCH[family]])
            transformer = transformer_cls.from_single_file(str(path), config=str(base), subfolder="transformer",
                                                           dtype=torch_dtype, local_files_only=True)
            pipe = cls.from_pretrained(str(base), transformer=transformer, dtype=torch_dtype, local_files_only=True,
                                       **extra)
    except ModelLoadError:
        raise
    except Exception as exc:
        raise ModelLoadError(f"cannot load {path}: {type(exc).__name__}: {exc}") from None
    if quantize == "fp8" and "quantization_config" not in extra:
        # No torchao: diffusers' own layerwise casting stores the weights in fp8, computes in dtype.
        pipe.transformer.enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn, compute_dtype=torch_dtype)
    if offload == "model":
        pipe.enable_model_cpu_offload(device=device)
    elif offload == "sequential":
        pipe.enable_sequential_cpu_offload(device=device)
    else:
        pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    return LoadedModel(path=path, family=family, device=device, dtype=dtype, cpu_offload=False, base=pipe,
                       config_dir=base, load_s=time.perf_counter() - started, offload=offload, quantize=quantize,
                       scheduler_config=dict(pipe.scheduler.config))


def quantization_config(kind: str, arch: str, dtype: Any) -> Any:
    """A diffusers PipelineQuantizationConfig: NF4 through bitsandbytes, fp8 through torchao."""
    from diffusers import PipelineQuantizationConfig

    components = _QUANTIZED[arch]
    if kind == "nf4":
        return PipelineQuantizationConfig(
            quant_backend="bitsandbytes_4bit", components_to_quantize=components,
            quant_kwargs={"load_in_4bit": True, "bnb_4bit_quant_type": "nf4", "bnb_4bit_compute_dtype": dtype})
    return PipelineQuantizationConfig(quant_backend="torchao", components_to_quantize=components[:1],
                                      quant_kwargs={"quant_type": "float8wo_e4m3"})


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


_SIZES: dict[tuple, int] = {}  # (path, mtime, base) -> bytes: folders are walked once, not per request


def weights_bytes(path: Path, base: Path | None = None) -> int:
    """Bytes of weights a load reads: the folder's files, or the single file plus the base's non-transformer parts."""
    key = (str(path), path.stat().st_mtime_ns, str(base))
    if key not in _SIZES:
        _SIZES[key] = _weights_bytes(path, base)
    return _SIZES[key]


def _weights_bytes(path: Path, base: Path | None) -> int:
    if path.is_dir():
        return sum(f.stat().st_size for f in path.rglob("*") if f.suffix in (".safetensors", ".bin", ".gguf"))
    total = path.stat().st_size
    if base is not None:
        total += sum(f.stat().st_size for f in base.rglob("*")
                     if f.suffix in (".safetensors", ".bin") and "transformer" not in f.parts)
    return total


def transformer_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    key = (str(path / "transformer"), path.stat().st_mtime_ns, None)
    if key not in _SIZES:
        _SIZES[key] = sum(f.stat().st_size for f in (path / "transformer").glob("*") if f.suffix in (".safetensors", ".bin"))
    return _SIZES[key]
