"""Textual-inversion embeddings, the A1111 way.

A word in the prompt that names a file in ``IMAGEGEN_MODELS_DIR/embeddings`` (A1111's
`embeddings/` folder) stands for that file's vectors: ``EasyNegative`` in a negative prompt works
as it does in the WebUI. Matching ignores case, as A1111's does (CLIP lowercases). Each embedding
is added to the tokenizer(s) once per loaded model as ``<ti-name>``, ``<ti-name>_1``… (diffusers'
multi-vector naming) and is never split across 75-token chunks (sd_local.md §5.2).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imagegen.errors import ModelLoadError

EMBEDDING_DIRS = ("embeddings", "Embeddings")
EMBEDDING_SUFFIXES = (".safetensors", ".pt", ".bin")


def find_embeddings(models_dir: Path | None) -> dict[str, Path]:
    """Lower-cased name -> file of every embedding in the models dir (first folder wins)."""
    found: dict[str, Path] = {}
    if models_dir is None:
        return found
    for folder in EMBEDDING_DIRS:
        base = models_dir / folder
        if base.is_dir():
            for path in sorted(base.rglob("*")):
                if path.suffix in EMBEDDING_SUFFIXES and path.is_file():
                    found.setdefault(path.stem.lower(), path)
    return found


def _word_pattern(name: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![\w]){re.escape(name)}(?![\w])", re.IGNORECASE)


def mentioned(found: dict[str, Path], *texts: str) -> dict[str, Path]:
    """The embeddings whose name appears as a word in any of ``texts``."""
    return {name: path for name, path in found.items() if any(_word_pattern(name).search(t) for t in texts)}


def read_vectors(path: Path) -> dict[str, Any]:
    """The vectors (n, width) in an embedding file, keyed by text encoder: ``clip_l``, ``clip_g``.

    Reads A1111 ``.pt`` (``string_to_param``), ``.safetensors`` (``emb_params``), SDXL
    (``clip_l`` + ``clip_g``) and diffusers' one-tensor files."""
    import torch

    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelLoadError(f"cannot read embedding {path}: {exc}") from None
    if "string_to_param" in state:
        state = {"clip_l": state["string_to_param"]["*"]}
    elif "emb_params" in state:
        state = {"clip_l": state["emb_params"]}
    elif len(state) == 1:
        state = {"clip_l": next(iter(state.values()))}
    vectors = {key: value for key, value in state.items() if key in ("clip_l", "clip_g")}
    if not vectors or not all(isinstance(v, torch.Tensor) for v in vectors.values()):
        raise ModelLoadError(f"{path} is not a textual-inversion embedding (keys: {sorted(state)[:6]})")
    return {key: (v[None] if v.ndim == 1 else v).detach().float() for key, v in vectors.items()}


def token_for(name: str) -> str:
    return f"<ti-{name}>"


@dataclass
class Embeddings:
    """Embeddings added to one loaded model's tokenizer(s) and text encoder(s)."""

    vectors: dict[str, int] = field(default_factory=dict)  # name -> vector count
    skipped: dict[str, str] = field(default_factory=dict)  # name -> why it cannot be used here

    def load(self, pipe: Any, wanted: dict[str, Path], warnings: list[str]) -> None:
        """Add the ``wanted`` embeddings not yet loaded; one that does not fit the model is skipped
        with a warning (A1111 skips it too) and its name stays plain prompt text."""
        for name, path in wanted.items():
            if name not in self.vectors and name not in self.skipped:
                self._add(pipe, name, path)
            if name in self.skipped:
                warnings.append(f"embedding {path.name} not used: {self.skipped[name]}")

    def _add(self, pipe: Any, name: str, path: Path) -> None:
        vectors = read_vectors(path)
        targets = [("clip_l", pipe.tokenizer, pipe.text_encoder)]
        if getattr(pipe, "text_encoder_2", None) is not None:
            targets.append(("clip_g", pipe.tokenizer_2, pipe.text_encoder_2))
        for key, _, encoder in targets:
            width = encoder.get_input_embeddings().weight.shape[1]
            if key not in vectors:
                self.skipped[name] = f"it has no {key} vectors (made for another model family)"
                return
            if vectors[key].shape[1] != width:
                self.skipped[name] = (f"its vectors are {vectors[key].shape[1]} wide, this model's "
                                      f"text encoder takes {width}")
                return
        counts = {vectors[key].shape[0] for key, _, _ in targets}
        if len(counts) != 1:
            self.skipped[name] = "its text encoders have different vector counts"
            return
        for key, tokenizer, encoder in targets:
            pipe.load_textual_inversion({name: vectors[key]}, token=token_for(name),
                                        tokenizer=tokenizer, text_encoder=encoder)
        self.vectors[name] = counts.pop()

    def expand(self, text: str) -> str:
        """Replace each loaded embedding's name with its token run."""
        for name, count in self.vectors.items():
            token = token_for(name)
            run = " ".join([token] + [f"{token}_{i}" for i in range(1, count)])
            text = _word_pattern(name).sub(run, text)
        return text

    def runs(self, tokenizer: Any) -> dict[int, int]:
        """First token id -> run length, for keeping each run inside one chunk."""
        return {tokenizer.convert_tokens_to_ids(token_for(name)): count for name, count in self.vectors.items()}
