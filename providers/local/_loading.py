"""Loading checkpoints offline (nothing may come from a hub); VAEs and ControlNets: `_components`."""

from __future__ import annotations

import time
from pathlib import Path

from imagegen.errors import ModelLoadError

from ._configs import config_dir_for
from ._families import checkpoint_family
from ._model import _PIPELINES, LoadedModel


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


