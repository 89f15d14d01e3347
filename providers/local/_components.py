"""Loading the parts that plug into a loaded checkpoint, offline: a VAE override, ControlNets."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from imagegen.errors import ModelLoadError

from ._configs import config_dir_for

if TYPE_CHECKING:
    from ._model import LoadedModel


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
