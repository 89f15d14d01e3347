"""The embedded demo model: a tiny Stable Diffusion-format pipeline trained on coloured shapes.

It ships inside the package (``imagegen/models/demo``) so a first run works offline with no
checkpoint, token or GPU. ``scripts/train_demo.py`` rebuilds it from ``shapes.py``.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

# Settings the model was trained and evaluated at (benchmarks/eval_demo.py).
DEMO_NATIVE_SIZE = 64
DEMO_RECOMMENDED = {"width": 64, "height": 64, "steps": 20, "cfg_scale": 7.0}


def demo_model_path() -> Path:
    """Folder of the packaged demo pipeline (diffusers ``StableDiffusionPipeline`` layout)."""
    return Path(str(resources.files("imagegen").joinpath("models", "demo")))
