"""Hires-fix upscalers with A1111 names: latent modes, Pillow resizes, ESRGAN-family via spandrel.

Latent modes and names: A1111 1.10 `shared.latent_upscale_modes`; image upscalers run at their
native scale, then a Lanczos resize to the exact target (A1111 `images.resize_image`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from imagegen.errors import ConfigError, ModelLoadError

# name -> (torch interpolate mode, antialias)
LATENT_MODES: dict[str, tuple[str, bool]] = {
    "Latent": ("bilinear", False),
    "Latent (antialiased)": ("bilinear", True),
    "Latent (bicubic)": ("bicubic", False),
    "Latent (bicubic antialiased)": ("bicubic", True),
    "Latent (nearest)": ("nearest", False),
    "Latent (nearest-exact)": ("nearest-exact", False),
}
PIL_UPSCALERS = ("None", "Lanczos", "Nearest")
# A1111's built-in model upscalers -> the file names it downloads (user files go by file stem).
NAMED_MODEL_FILES = {
    "R-ESRGAN 4x+": "RealESRGAN_x4plus.pth",
    "R-ESRGAN 4x+ Anime6B": "RealESRGAN_x4plus_anime_6B.pth",
    "ESRGAN_4x": "ESRGAN_x4.pth",
}
MODEL_DIRS = ("ESRGAN", "RealESRGAN", "upscale_models")
MODEL_SUFFIXES = (".pth", ".safetensors", ".pt", ".ckpt")


def is_latent(name: str) -> bool:
    return name in LATENT_MODES


def target_size(width: int, height: int, scale: float, resize_w: int | None, resize_h: int | None) -> tuple[int, int]:
    """A1111 `calculate_target_resolution`: scale, or a resize with a missing side from the aspect ratio."""
    if not resize_w and not resize_h:
        return int(width * scale) // 8 * 8, int(height * scale) // 8 * 8
    if not resize_h:
        resize_h = resize_w * height // width
    if not resize_w:
        resize_w = resize_h * width // height
    return resize_w // 8 * 8, resize_h // 8 * 8


def upscale_latents(latents: Any, name: str, width: int, height: int, vae_scale: int) -> Any:
    import torch.nn.functional as F

    mode, antialias = LATENT_MODES[name]
    return F.interpolate(latents, size=(height // vae_scale, width // vae_scale), mode=mode, antialias=antialias)


def find_model_upscaler(name: str, models_dir: Path | None) -> Path:
    """The file for an ESRGAN-family upscaler name (A1111 built-in name or a file stem)."""
    wanted = [NAMED_MODEL_FILES.get(name, name)]
    if models_dir is not None:
        for folder in MODEL_DIRS:
            for stem in wanted:
                base = models_dir / folder / stem
                for candidate in [base, *(base.with_name(base.name + s) for s in MODEL_SUFFIXES)]:
                    if candidate.is_file():
                        return candidate
    valid = ", ".join([*LATENT_MODES, *PIL_UPSCALERS])
    where = f"{models_dir}/{{{','.join(MODEL_DIRS)}}}" if models_dir else "IMAGEGEN_MODELS_DIR/ESRGAN"
    raise ConfigError(f"unknown hires upscaler {name!r}: not built in ({valid}) and no model file in {where}")


def upscale_images(images: list, name: str, width: int, height: int, models_dir: Path | None,
                   device: str, cache: dict) -> list:
    from PIL import Image

    if name in ("None", "Lanczos"):
        return [im.resize((width, height), Image.LANCZOS) for im in images]
    if name == "Nearest":
        return [im.resize((width, height), Image.NEAREST) for im in images]
    path = find_model_upscaler(name, models_dir)
    model = cache.get(str(path)) or _load_spandrel(path, device)
    cache[str(path)] = model
    return [_run_model(model, im).resize((width, height), Image.LANCZOS) for im in images]


def _load_spandrel(path: Path, device: str) -> Any:
    try:
        import spandrel
    except ImportError:
        raise ConfigError("ESRGAN-family upscalers need the 'upscale' extra: pip install 'imagegen[upscale]'") from None
    try:
        return spandrel.ModelLoader(device=device).load_from_file(str(path)).eval()
    except Exception as exc:
        raise ModelLoadError(f"cannot load upscaler {path}: {exc}") from None


def _run_model(model: Any, image: Any) -> Any:
    """Whole-image pass in RGB order (spandrel's convention; A1111 feeds BGR, a historical quirk)."""
    import numpy as np
    import torch
    from PIL import Image

    array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    tensor = torch.from_numpy(array).permute(2, 0, 1)[None]
    parameter = next(model.model.parameters())
    with torch.no_grad():
        out = model(tensor.to(parameter.device, parameter.dtype)).float().clamp(0, 1)
    pixels = (out[0].permute(1, 2, 0).cpu().numpy() * 255.0).round().astype("uint8")
    return Image.fromarray(pixels)
