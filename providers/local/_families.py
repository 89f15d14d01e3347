"""Which model family a checkpoint is, read from its weights (keys and shapes), never from its name."""

from __future__ import annotations

import json
from pathlib import Path

from imagegen.errors import ModelLoadError


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


