"""Trained LoRA weights in the kohya_ss / A1111 layout, with kohya's ``ss_*`` metadata.

PEFT names a layer ``down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q`` with
``lora_A`` / ``lora_B`` matrices; kohya names the same layer
``lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q`` with ``lora_down`` /
``lora_up`` and an ``alpha`` scalar (scale = alpha / rank). A1111/Forge, ComfyUI and diffusers'
``load_lora_weights`` all read this layout (A1111 maps the diffusers-style block names itself).
Text encoders: ``lora_te_`` (SD 1.x), ``lora_te1_`` / ``lora_te2_`` (SDXL's two encoders).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

# component name in the pipeline -> kohya prefix, per family
PREFIXES = {
    "sd15": {"unet": "lora_unet_", "text_encoder": "lora_te_"},
    "sdxl": {"unet": "lora_unet_", "text_encoder": "lora_te1_", "text_encoder_2": "lora_te2_"},
}
BASE_MODEL_VERSION = {"sd15": "sd_v1", "sdxl": "sdxl_base_v1-0"}
BASE_PATH_KEY = "imagegen_base_model"  # our own metadata: the base the LoRA was trained on


def to_kohya(layers: dict[str, dict[str, Any]], family: str, alpha: float) -> dict[str, Any]:
    """``{component: peft state dict}`` (``get_peft_model_state_dict``) -> kohya tensors."""
    import torch

    prefixes = PREFIXES[family]
    out: dict[str, Any] = {}
    for component, state in layers.items():
        prefix = prefixes[component]
        for key, value in state.items():
            module, kind = key.rsplit(".lora_", 1)  # "...to_q", "A.weight"
            if component != "unet" and not module.startswith("text_model."):
                module = "text_model." + module  # transformers 5 drops it; kohya files have it
            name = prefix + module.replace(".", "_")
            side = "down" if kind.startswith("A") else "up"
            out[f"{name}.lora_{side}.weight"] = value.detach().to("cpu", torch.float32).contiguous()
            if side == "down":
                out[f"{name}.alpha"] = torch.tensor(float(alpha))
    return out


def save_kohya(path: Path, tensors: dict[str, Any], metadata: dict[str, str]) -> Path:
    """Write atomically (a reader never sees half a file); adds ``sshs_model_hash``."""
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    save_file(tensors, str(partial), metadata={k: str(v) for k, v in metadata.items()})
    meta = dict(metadata)
    meta["sshs_model_hash"] = addnet_hash_of(partial)  # kohya: sha256 of the tensor bytes
    save_file(tensors, str(partial), metadata={k: str(v) for k, v in meta.items()})
    partial.replace(path)
    return path


def addnet_hash_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        header = int.from_bytes(handle.read(8), "little")
        handle.seek(8 + header)
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def model_hash(path: Path) -> str:
    """sha256 of the base checkpoint file, or of a diffusers folder's weight files in order
    (what ``ss_new_sd_model_hash`` records: the LoRA says which base it was made on)."""
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*")
                                                 if p.suffix in (".safetensors", ".bin") and p.is_file())
    for file in files:
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def tag_frequency(captions_by_folder: dict[str, list[str]]) -> dict[str, dict[str, int]]:
    """kohya's ``ss_tag_frequency``: per dataset folder, how often each comma-separated tag occurs."""
    out: dict[str, dict[str, int]] = {}
    for folder, captions in captions_by_folder.items():
        counts: dict[str, int] = {}
        for caption in captions:
            for tag in (t.strip() for t in caption.split(",")):
                if tag:
                    counts[tag] = counts.get(tag, 0) + 1
        out[folder] = counts
    return out


def read_metadata(path: Path) -> dict[str, str]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        return dict(handle.metadata() or {})


def trained_base(path: Path) -> Path | None:
    """The base checkpoint a LoRA we trained names (``imagegen_base_model``), if it still exists."""
    try:
        base = read_metadata(path).get(BASE_PATH_KEY)
    except Exception:  # not a safetensors file we can read: not ours
        return None
    return Path(base) if base and Path(base).exists() else None


def metadata_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)
