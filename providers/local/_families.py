"""Which model family a checkpoint or a LoRA is, read from its weights (keys and shapes), never
from its file name.

Families: "sd15", "sdxl" (UNet checkpoints), and the flow-match transformers "flux-dev",
"flux-schnell", "flux-kontext", "flux2-klein", "flux2-klein-base", "flux2-dev" and "sd3".
FLUX.1 [dev] and [schnell] differ by the guidance embedder that only dev has; Kontext has the
same tensors as dev, so a single Kontext file is told apart only by the base folder it is paired
with (see `_loading`); klein and klein-base likewise.
"""

from __future__ import annotations

import json
from pathlib import Path

from imagegen.errors import ModelLoadError

FLOW_FAMILIES = ("flux-dev", "flux-schnell", "flux-kontext", "flux2-klein", "flux2-klein-base", "flux2-dev", "sd3")
# A family's architecture: what its LoRAs and single-file transformers must match.
ARCH = {"sd15": "sd15", "sdxl": "sdxl", "demo": "sd15", "flux-dev": "flux1", "flux-schnell": "flux1",
        "flux-kontext": "flux1", "flux2-klein": "flux2-klein", "flux2-klein-base": "flux2-klein",
        "flux2-dev": "flux2", "sd3": "sd3"}
ARCH_NAMES = {"sd15": "Stable Diffusion 1.x", "sdxl": "SDXL", "flux1": "FLUX.1", "flux2-klein": "FLUX.2 [klein]",
              "flux2": "FLUX.2 [dev]", "sd3": "Stable Diffusion 3.x"}
_FOLDER_CLASSES = {  # model_index.json _class_name -> family (FLUX.1 dev/schnell: by the transformer config)
    "FluxKontextPipeline": "flux-kontext", "FluxKontextInpaintPipeline": "flux-kontext",
    "Flux2Pipeline": "flux2-dev", "StableDiffusion3Pipeline": "sd3", "StableDiffusion3Img2ImgPipeline": "sd3",
    "StableDiffusion3InpaintPipeline": "sd3",
}
_FLUX1_FOLDERS = ("FluxPipeline", "FluxImg2ImgPipeline", "FluxInpaintPipeline")
_KLEIN_FOLDERS = ("Flux2KleinPipeline", "Flux2KleinInpaintPipeline")


def is_flow(family: str) -> bool:
    return family in FLOW_FAMILIES


def checkpoint_family(path: Path) -> str:
    """The family of a diffusers folder or a single-file checkpoint; ModelLoadError otherwise."""
    if path.is_dir():
        return _folder_family(path)
    keys = _checkpoint_keys(path)
    flow = transformer_family(keys, path)
    if flow is not None:
        return flow
    if any(k.startswith("conditioner.embedders.1.") for k in keys):
        return "sdxl"
    if any(k.startswith("cond_stage_model.model.") for k in keys):
        raise ModelLoadError(f"{path}: Stable Diffusion 2.x checkpoints are not supported")
    if any(k.startswith("model.diffusion_model.") for k in keys):
        return "sd15"
    raise ModelLoadError(f"{path}: not a Stable Diffusion checkpoint (no model.diffusion_model.* weights)")


def _folder_family(path: Path) -> str:
    index = path / "model_index.json"
    if not index.is_file():
        raise ModelLoadError(f"{path} is a folder without model_index.json (not a diffusers model)")
    try:
        data = json.loads(index.read_text())
        name = data["_class_name"]
    except (ValueError, KeyError) as exc:
        raise ModelLoadError(f"{index} is unreadable: {exc}") from None
    if name in _FOLDER_CLASSES:
        return _FOLDER_CLASSES[name]
    if name in _KLEIN_FOLDERS:
        return "flux2-klein" if data.get("is_distilled", False) else "flux2-klein-base"
    if name in _FLUX1_FOLDERS:
        config = _json(path / "transformer" / "config.json")
        if config.get("in_channels", 64) != 4 * _json(path / "vae" / "config.json").get("latent_channels", 16):
            raise ModelLoadError(f"{path}: FLUX.1 Fill/Depth/Canny transformers (extra input channels) are not "
                                 "supported")
        return "flux-dev" if config.get("guidance_embeds", False) else "flux-schnell"
    if "Flux" in name or "StableDiffusion3" in name:
        raise ModelLoadError(f"{path}: {name} folders are not supported")
    return "sdxl" if "XL" in name else "sd15"


def _json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot read {path}: {exc}") from None


def transformer_family(keys: list[str], path: Path | None = None) -> str | None:
    """The flow-match family of a transformer's weights, in BFL/SAI or diffusers naming (optionally
    under ComfyUI's "model.diffusion_model." prefix); None when they are not one."""
    prefix = "model.diffusion_model."
    names = {k[len(prefix):] if k.startswith(prefix) else k for k in keys}
    if "single_stream_modulation.lin.weight" in names or "single_stream_modulation.linear.weight" in names:
        guided = "guidance_in.in_layer.weight" in names or any(k.startswith("time_guidance_embed.guidance_embedder.")
                                                              for k in names)
        return "flux2-dev" if guided else "flux2-klein"
    bfl_flux = "double_blocks.0.img_attn.norm.key_norm.scale" in names
    diffusers_flux = "x_embedder.weight" in names and "single_transformer_blocks.0.attn.to_q.weight" in names
    if bfl_flux or diffusers_flux:
        if path is not None:
            inputs = _shape(path, keys, ("img_in.weight", "x_embedder.weight"), prefix)
            if inputs is not None and inputs[-1] in (384, 128):
                raise ModelLoadError(f"{path}: FLUX.1 Fill/Depth transformers are not supported")
        guided = "guidance_in.in_layer.weight" in names or any(k.startswith("time_text_embed.guidance_embedder.")
                                                              for k in names)
        return "flux-dev" if guided else "flux-schnell"
    if "joint_blocks.0.context_block.adaLN_modulation.1.bias" in names or (
            "pos_embed.pos_embed" in names and "transformer_blocks.0.attn.add_q_proj.weight" in names):
        return "sd3"
    return None


def _shape(path: Path, keys: list[str], names: tuple[str, ...], prefix: str) -> tuple[int, ...] | None:
    if path.suffix != ".safetensors":
        return None
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        for name in names:
            for key in (name, prefix + name):
                if key in keys:
                    return tuple(handle.get_slice(key).get_shape())
    return None


def lora_family(path: Path) -> str | None:
    """The architecture a LoRA file is for, from its keys in any of the common layouts
    (diffusers/peft, kohya, ai-toolkit, XLabs): "sd15", "sdxl", "sd3", "flux1", "flux2" (any
    FLUX.2), "flux" (FLUX.1 or FLUX.2: diffusers-named attention layers exist in both), or None
    when the keys say nothing recognisable (the loader then decides)."""
    text = "\n".join(_checkpoint_keys(path))
    if "to_qkv_mlp_proj" in text or "stream_modulation" in text:
        return "flux2"
    if any(s in text for s in ("double_blocks.", "single_blocks.", "lora_unet_double_blocks_",
                               "lora_unet_single_blocks_")):
        return "flux1"  # BFL naming (kohya, XLabs, ai-toolkit's original layout)
    if "single_transformer_blocks" in text:
        return "flux"
    if "joint_blocks" in text or "transformer_blocks" in text and "add_q_proj" in text and "unet" not in text:
        return "sd3"
    if any(s in text for s in ("lora_te2_", "text_encoder_2.", "lora_unet_input_blocks_4_1_transformer_blocks_1",
                               "attentions.0.transformer_blocks.1.", "lora_unet_down_blocks_2_attentions_0_transformer_blocks_1")):
        return "sdxl"
    if any(s in text for s in ("lora_unet_", "unet.", "lora_te_", "down_blocks.", "up_blocks.")):
        return "sd15"
    return None


_LORA_MARKERS = (".lora_A.", ".lora_B.", ".lora_down.", ".lora_up.", "lora_unet_", "lora_te", "_lora1.", "_lora2.",
                 ".processor.proj_lora.")


def is_lora_file(path: Path) -> bool:
    """Whether a weights file holds a LoRA (any common layout) rather than a model."""
    if not path.is_file() or path.suffix != ".safetensors":
        return False
    return any(marker in key for key in _checkpoint_keys(path)[:64] for marker in _LORA_MARKERS)


def lora_fits(lora: str | None, family: str) -> bool:
    """Whether a LoRA of architecture ``lora`` (see `lora_family`) can load on a ``family`` model."""
    arch = ARCH.get(family, family)
    if lora is None or lora == arch:
        return True
    if lora == "flux":
        return arch in ("flux1", "flux2", "flux2-klein")
    if lora == "flux2":
        return arch in ("flux2", "flux2-klein")
    return False


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


