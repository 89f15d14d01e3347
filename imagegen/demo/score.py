"""Automatic prompt-adherence scoring for coloured-shape images.

Colours are read by nearest palette entry: the background is the commonest colour on the
image border, the foreground the commonest other colour. The shape is the reference silhouette
(drawn by ``shapes.draw_shape``) with the highest IoU against the foreground's bounding-box crop.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw

from imagegen.demo.shapes import COLOURS, PALETTE, SHAPES, draw_shape

_PALETTE_RGB = np.array([PALETTE[c] for c in COLOURS], dtype=np.float32)
_CROP = 24  # silhouettes are compared at this resolution
_MIN_FOREGROUND_PIXELS = 12


@dataclass(frozen=True)
class ImageReading:
    """What the scorer sees in one image; ``None`` where it sees nothing."""

    background: str | None
    colour: str | None
    shape: str | None


def colour_classes(image: Image.Image) -> np.ndarray:
    """Index into ``COLOURS`` of the nearest palette colour, per pixel (H x W)."""
    rgb = np.asarray(image.convert("RGB"), dtype=np.float32)
    dist = ((rgb[:, :, None, :] - _PALETTE_RGB[None, None]) ** 2).sum(-1)
    return dist.argmin(-1)


def _crop_to_box(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    crop = mask[ys.min(): ys.max() + 1, xs.min(): xs.max() + 1]
    img = Image.fromarray((crop * 255).astype(np.uint8)).resize((_CROP, _CROP), Image.Resampling.BILINEAR)
    return np.asarray(img) > 127


@lru_cache(maxsize=1)
def _templates() -> dict[str, np.ndarray]:
    out = {}
    for shape in SHAPES:
        img = Image.new("L", (256, 256), 0)
        draw_shape(ImageDraw.Draw(img), shape, 128, 128, 200, fill=255, background=0)
        out[shape] = _crop_to_box(np.asarray(img) > 127)
    return out


def classify_shape(mask: np.ndarray) -> str | None:
    """The reference shape whose silhouette best overlaps ``mask`` (a boolean H x W array)."""
    if mask.sum() < _MIN_FOREGROUND_PIXELS:
        return None
    crop = _crop_to_box(mask)
    scores = {s: (crop & t).sum() / max(1, (crop | t).sum()) for s, t in _templates().items()}
    return max(scores, key=scores.get)


def read_image(image: Image.Image) -> ImageReading:
    """Background colour, foreground colour and shape seen in a generated image."""
    classes = colour_classes(image)
    border = np.concatenate([classes[:2].ravel(), classes[-2:].ravel(), classes[:, :2].ravel(), classes[:, -2:].ravel()])
    bg = int(np.bincount(border, minlength=len(COLOURS)).argmax())
    others = classes[classes != bg]
    if others.size < _MIN_FOREGROUND_PIXELS:
        return ImageReading(COLOURS[bg], None, None)
    fg = int(np.bincount(others, minlength=len(COLOURS)).argmax())
    return ImageReading(COLOURS[bg], COLOURS[fg], classify_shape(classes == fg))
