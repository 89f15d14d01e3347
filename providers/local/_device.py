"""Choosing the device and dtype, and giving memory back when a model is dropped."""

from __future__ import annotations

from imagegen.errors import ConfigError


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



def free_memory() -> None:
    import gc
    import sys

    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()
