"""Memory modes for the large flow-match models, chosen from free memory and overridable in
`provider_options["local"]`:

- `offload`: "none" (all on the GPU), "model" (`enable_model_cpu_offload`: one component on the
  GPU at a time), "sequential" (`enable_sequential_cpu_offload`: layer by layer; slowest, least
  memory), or "auto" (default): the first that fits the free GPU memory. `cpu_offload=True` is
  "model" (the SD option).
- `vae_tiling` / `vae_slicing`: `pipe.vae.enable_tiling()` / `.enable_slicing()`; by default on
  when the model is offloaded (memory is short) or the image is over 4 MP.
- `quantize`: "fp8" or "nf4" weights (transformer, and the T5 for NF4). Needs CUDA; NF4 needs
  bitsandbytes, fp8 uses torchao when present and diffusers' fp8 layerwise casting otherwise
  (`pip install "imagegen[quant]"` installs both).

On the CPU and MPS there is nothing to offload to: offload and quantization are ignored with a
warning; the VAE switches apply everywhere.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from typing import Any

from imagegen.errors import ConfigError

OFFLOAD_MODES = ("auto", "none", "model", "sequential")
QUANTIZE_MODES = ("none", "fp8", "nf4")
_HEADROOM = 1.2  # weights x this, plus activations, must fit
_GIB = 1 << 30


@dataclass
class MemoryPlan:
    offload: str = "none"
    vae_tiling: bool = False
    vae_slicing: bool = False
    quantize: str | None = None
    reason: str = ""  # why auto chose what it chose (for raw / logs)
    warnings: list[str] = field(default_factory=list)

    def switches(self) -> dict[str, bool]:
        return {"vae_tiling": self.vae_tiling, "vae_slicing": self.vae_slicing}


def free_gpu_bytes(device: str) -> int | None:
    """Free memory on the CUDA device (None elsewhere)."""
    if device != "cuda":
        return None
    import torch

    free, _ = torch.cuda.mem_get_info()
    return int(free)


def activation_bytes(width: int, height: int, batch: int, dtype_bytes: int) -> int:
    """A rough peak for activations and the VAE decode: ~1.5 GiB per megapixel-image at 16 bits
    (measured Flux dev decode peaks are 1.2-1.6 GiB at 1 MP), never under 1 GiB."""
    megapixels = width * height / 1e6
    return max(_GIB, int(1.5 * _GIB * megapixels * batch * dtype_bytes / 2))


def choose_memory(opts: dict[str, Any], device: str, *, weights: int, largest: int, width: int, height: int,
                  batch: int, dtype: str, free: int | None = None) -> MemoryPlan:
    """The memory plan for one load + run: explicit options win, "auto" fits the free memory.

    ``weights``: bytes of all weights; ``largest``: bytes of the largest component (the transformer),
    which is what must fit at once under model offload.
    """
    plan = MemoryPlan()
    offload = opts.get("offload", "model" if opts.get("cpu_offload") else "auto")
    if offload not in OFFLOAD_MODES:
        raise ConfigError(f"provider_options['local']['offload'] must be one of {', '.join(OFFLOAD_MODES)}")
    quantize = opts.get("quantize", "none")
    if quantize not in QUANTIZE_MODES:
        raise ConfigError(f"provider_options['local']['quantize'] must be one of {', '.join(QUANTIZE_MODES)}")

    if device != "cuda":
        if offload in ("model", "sequential"):
            plan.warnings.append(f"offload={offload!r} ignored: the model already runs in {device} memory")
        if quantize != "none":
            plan.warnings.append(f"quantize={quantize!r} ignored: fp8/NF4 weights need a CUDA GPU")
        offload = "none"
    elif quantize != "none":
        missing = _missing_backend(quantize)
        if missing:
            raise ConfigError(f"quantize={quantize!r} needs {missing} (pip install 'imagegen[quant]')")
        plan.quantize = quantize
        scale = 0.5 if quantize == "fp8" else 0.3  # bytes per bf16 weight kept, roughly
        weights = int(weights - largest + largest * scale)
        largest = int(largest * scale)

    dtype_bytes = 4 if dtype == "float32" else 2
    act = activation_bytes(width, height, batch, dtype_bytes)
    if offload == "auto":
        free = free_gpu_bytes(device) if free is None else free
        if free is None:
            offload, plan.reason = "none", f"{device}: nothing to offload to"
        elif weights * _HEADROOM + act <= free:
            offload, plan.reason = "none", f"{_gib(weights)} of weights fit in {_gib(free)} free"
        elif largest * _HEADROOM + act <= free:
            offload, plan.reason = "model", f"{_gib(weights)} of weights exceed {_gib(free)} free; the largest part fits"
        else:
            offload, plan.reason = "sequential", f"even the largest part ({_gib(largest)}) exceeds {_gib(free)} free"
    plan.offload = offload

    tight = offload != "none" or width * height > 4_000_000
    plan.vae_tiling = bool(opts.get("vae_tiling", tight and device == "cuda"))
    plan.vae_slicing = bool(opts.get("vae_slicing", tight and batch > 1 and device == "cuda"))
    return plan


def _missing_backend(quantize: str) -> str | None:
    if quantize == "nf4" and importlib.util.find_spec("bitsandbytes") is None:
        return "bitsandbytes"
    return None


def _gib(value: int) -> str:
    return f"{value / _GIB:.1f} GiB"
