"""Choosing the device and dtype, CPU threads for tiny models, and giving memory back when a model is dropped."""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

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


# Below this many UNet weights a model is "tiny" (the demo model, test models).
_TINY_UNET_PARAMS = 20_000_000


_TINY: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # denoiser -> tiny? (counted once)


def _is_tiny(denoiser: Any) -> bool:
    if denoiser not in _TINY:
        _TINY[denoiser] = sum(p.numel() for p in denoiser.parameters()) <= _TINY_UNET_PARAMS
    return _TINY[denoiser]


@contextmanager
def cpu_threads_for(pipe: Any, device: str) -> Iterator[None]:
    """Run tiny models on one CPU thread. Their thousands of small ops gain nothing from
    intra-op threads, and on a busy CPU each op's thread barrier made the demo model ~50x
    slower (0.7 s vs 50 s for 20 steps, measured on 2 cores with another job running)."""
    import torch

    if device != "cpu" or not _is_tiny(getattr(pipe, "unet", None) or pipe.transformer):
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
