"""Finding local model files by path or by name in IMAGEGEN_MODELS_DIR, and A1111's file hashes.

Folder names follow A1111's `models/` layout (Stable-diffusion, Lora, VAE, ControlNet) plus the
common lowercase alternatives.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

from imagegen.errors import ModelLoadError

log = logging.getLogger(__name__)

CHECKPOINT_DIRS = ("Stable-diffusion", "checkpoints", ".")
LORA_DIRS = ("Lora", "loras", "LoRA", "lora")
VAE_DIRS = ("VAE", "vae")
CONTROLNET_DIRS = ("ControlNet", "controlnet")
WEIGHT_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin")
BAKED_VAE_NAMES = ("None", "Automatic")  # A1111 "SD VAE" values meaning the checkpoint's own


def looks_like_path(ref: str) -> bool:
    return "/" in ref or os.sep in ref or ref.startswith(("~", ".")) or ref.endswith(WEIGHT_SUFFIXES)


def _find(ref: str, models_dir: Path | None, folders: tuple[str, ...], what: str,
          want_dir_marker: str | None) -> Path | None:
    if looks_like_path(ref):
        path = Path(ref).expanduser()
        if path.exists():
            return path
        if models_dir is not None and not path.is_absolute():
            for folder in folders:
                if (models_dir / folder / path).exists():
                    return models_dir / folder / path
        raise ModelLoadError(f"{what} not found: {path}")
    if models_dir is None:
        return None
    for folder in folders:
        base = models_dir / folder
        candidates = [base / ref] + [base / f"{ref}{suffix}" for suffix in WEIGHT_SUFFIXES]
        for candidate in candidates:
            if candidate.is_file() or (candidate.is_dir() and (want_dir_marker is None
                                                               or (candidate / want_dir_marker).is_file())):
                return candidate
    return None


def resolve_checkpoint(ref: str, models_dir: Path | None) -> Path | None:
    """A checkpoint path from a path or a name; None for an unknown name, ModelLoadError for a missing path."""
    return _find(ref, models_dir, CHECKPOINT_DIRS, "checkpoint", "model_index.json")


def _required(ref: str, models_dir: Path | None, folders: tuple[str, ...], what: str,
              marker: str | None) -> Path:
    path = _find(ref, models_dir, folders, what, marker)
    if path is None:
        where = ", ".join(str(models_dir / f) for f in folders) if models_dir else "no IMAGEGEN_MODELS_DIR set"
        raise ModelLoadError(f"{what} {ref!r} not found (looked in {where})")
    return path


def resolve_lora(ref: str, models_dir: Path | None) -> Path:
    return _required(ref, models_dir, LORA_DIRS, "LoRA", None)


def resolve_vae(ref: str | None, models_dir: Path | None) -> Path | None:
    if ref is None or ref in BAKED_VAE_NAMES:
        return None
    return _required(ref, models_dir, VAE_DIRS, "VAE", "config.json")


def resolve_controlnet(ref: str, models_dir: Path | None) -> Path:
    return _required(ref, models_dir, CONTROLNET_DIRS, "ControlNet model", "config.json")


def find_checkpoints(models_dir: Path | None) -> list[tuple[str, str]]:
    """(name, family) of every readable SD checkpoint in the models dir."""
    from ._families import checkpoint_family

    if models_dir is None or not models_dir.is_dir():
        return []
    found: dict[str, str] = {}
    for folder in CHECKPOINT_DIRS:
        base = models_dir / folder
        if not base.is_dir():
            continue
        for entry in sorted(base.iterdir()):
            is_file = entry.is_file() and entry.suffix in (".safetensors", ".ckpt")
            if not (is_file or (entry.is_dir() and (entry / "model_index.json").is_file())):
                continue
            name = entry.stem if is_file else entry.name
            if name in found:
                continue
            key = (str(entry), entry.stat().st_mtime_ns)
            if key not in _FAMILY_CACHE:
                try:
                    _FAMILY_CACHE[key] = checkpoint_family(entry)
                except ModelLoadError as exc:
                    log.warning("skipping %s: %s", entry, exc)
                    _FAMILY_CACHE[key] = None
            if _FAMILY_CACHE[key] is not None:
                found[name] = _FAMILY_CACHE[key]
    return sorted(found.items())


_FAMILY_CACHE: dict[tuple[str, int], str | None] = {}  # listing reads each file's header once


def file_hash(path: Path) -> str:
    """sha256 of the whole file (A1111 "Model hash"/"VAE hash" are its first 10 hex digits)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def addnet_hash(path: Path) -> str:
    """kohya "addnet" hash A1111 writes in `Lora hashes`: sha256 of a .safetensors file after its header."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        if path.suffix == ".safetensors":
            header = int.from_bytes(handle.read(8), "little")
            handle.seek(8 + header)
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
