"""Procedural coloured-shape images with captions: the demo model's training data.

Every sample is drawn from a seeded ``random.Random``, so a seed gives the same images and
captions on any machine. A fixed set of (colour, shape, background) triples is held out of
training and used only to evaluate prompt adherence.
"""

from __future__ import annotations

import math
import random
import zlib
from dataclasses import dataclass

from PIL import Image, ImageDraw

IMAGE_SIZE = 64

# Reference RGB of each colour word; samples jitter around these.
PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 170, 50),
    "blue": (30, 60, 220),
    "yellow": (240, 220, 30),
    "purple": (140, 40, 180),
    "orange": (245, 140, 20),
    "white": (245, 245, 245),
    "black": (15, 15, 15),
}
COLOURS = tuple(PALETTE)
SHAPES = ("circle", "square", "triangle", "star", "cross", "ring")
SIZES = ("small", "medium", "large")  # "medium" is never written in captions
# Shape centre as a fraction of the image side; "centre" also accepts the spelling "center".
POSITIONS: dict[str, tuple[float, float]] = {
    "centre": (0.5, 0.5),
    "top left": (0.3, 0.3),
    "top right": (0.7, 0.3),
    "bottom left": (0.3, 0.7),
    "bottom right": (0.7, 0.7),
}
# Shape diameter as a fraction of the image side.
SIZE_FRACTION = {"small": 0.3, "medium": 0.45, "large": 0.62}

# Every word a caption can contain; the demo tokenizer gives each one a single token.
CAPTION_WORDS = tuple(
    sorted(
        set(COLOURS)
        | set(SHAPES)
        | {"small", "large", "big", "center"}
        | {w for p in POSITIONS for w in p.split()}
        | {"a", "an", "in", "the", "on", "background"}
    )
)

HELD_OUT_FRACTION = 0.1


@dataclass(frozen=True)
class ShapeScene:
    """What one image shows; ``caption`` says some or all of it."""

    colour: str
    shape: str
    background: str
    size: str
    position: str
    caption: str


def is_held_out(colour: str, shape: str, background: str) -> bool:
    """True for the (colour, shape, background) triples kept out of training (a stable hash)."""
    key = f"{colour}|{shape}|{background}".encode()
    return zlib.crc32(key) % 1000 < HELD_OUT_FRACTION * 1000


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def make_caption(colour, shape, background, size, position, *, say_size, say_position,
                 say_background, rng: random.Random | None = None) -> str:
    """Build a caption in the fixed grammar: ``a [size] colour shape [in the pos] [on a bg background]``."""
    rng = rng or random.Random(0)
    words = []
    if say_size and size != "medium":
        words.append("big" if size == "large" and rng.random() < 0.2 else size)
    words += [colour, shape]
    text = f"{_article(words[0])} {' '.join(words)}"
    if say_position:
        place = "center" if position == "centre" and rng.random() < 0.3 else position
        text += f" in the {place}"
    if say_background:
        text += f" on {_article(background)} {background} background"
    return text


def _jitter(rgb: tuple[int, int, int], rng: random.Random, amount: int = 12) -> tuple[int, ...]:
    return tuple(max(0, min(255, c + rng.randint(-amount, amount))) for c in rgb)


def _star_points(cx, cy, r_outer, r_inner, points=5):
    out = []
    for i in range(points * 2):
        r = r_outer if i % 2 == 0 else r_inner
        a = -math.pi / 2 + i * math.pi / points
        out.append((cx + r * math.cos(a), cy + r * math.sin(a)))
    return out


def draw_shape(draw: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, d: float,
               fill: tuple[int, ...], background: tuple[int, ...]) -> None:
    """Draw ``shape`` of diameter ``d`` centred at (cx, cy)."""
    r = d / 2
    box = (cx - r, cy - r, cx + r, cy + r)
    if shape == "circle":
        draw.ellipse(box, fill=fill)
    elif shape == "square":
        s = r * 0.85  # a square looks bigger than a circle of the same width
        draw.rectangle((cx - s, cy - s, cx + s, cy + s), fill=fill)
    elif shape == "triangle":
        draw.polygon([(cx, cy - r), (cx + r, cy + r * 0.8), (cx - r, cy + r * 0.8)], fill=fill)
    elif shape == "star":
        draw.polygon(_star_points(cx, cy + r * 0.08, r * 1.05, r * 0.45), fill=fill)
    elif shape == "cross":
        w = r * 0.36
        draw.rectangle((cx - r, cy - w, cx + r, cy + w), fill=fill)
        draw.rectangle((cx - w, cy - r, cx + w, cy + r), fill=fill)
    elif shape == "ring":
        draw.ellipse(box, fill=fill)
        h = r * 0.55
        draw.ellipse((cx - h, cy - h, cx + h, cy + h), fill=background)
    else:
        raise ValueError(f"unknown shape {shape!r}; expected one of {SHAPES}")


def render(scene: ShapeScene, rng: random.Random, size: int = IMAGE_SIZE, jitter: bool = True) -> Image.Image:
    """Render a scene at ``size`` px (drawn at 4x and downsampled, for smooth edges)."""
    scale = 4
    big = size * scale
    bg = _jitter(PALETTE[scene.background], rng) if jitter else PALETTE[scene.background]
    fg = _jitter(PALETTE[scene.colour], rng) if jitter else PALETTE[scene.colour]
    img = Image.new("RGB", (big, big), bg)
    fx, fy = POSITIONS[scene.position]
    d = SIZE_FRACTION[scene.size] * big * (rng.uniform(0.9, 1.1) if jitter else 1.0)
    shift = 0.04 * big if jitter else 0.0
    cx = fx * big + rng.uniform(-shift, shift)
    cy = fy * big + rng.uniform(-shift, shift)
    # Keep the whole shape inside the frame.
    margin = d / 2 + 0.02 * big
    cx = min(max(cx, margin), big - margin)
    cy = min(max(cy, margin), big - margin)
    draw_shape(ImageDraw.Draw(img), scene.shape, cx, cy, d, fg, bg)
    return img.resize((size, size), Image.Resampling.BOX)


def sample_scene(rng: random.Random, *, held_out: bool = False) -> ShapeScene:
    """Draw a random scene; ``held_out`` picks from the evaluation triples instead of the training ones."""
    while True:
        colour = rng.choice(COLOURS)
        shape = rng.choice(SHAPES)
        background = rng.choice([c for c in COLOURS if c != colour])
        if is_held_out(colour, shape, background) == held_out:
            break
    size = rng.choice(SIZES)
    position = rng.choice(tuple(POSITIONS))
    caption = make_caption(
        colour, shape, background, size, position,
        say_size=rng.random() < 0.7, say_position=rng.random() < 0.7,
        say_background=rng.random() < 0.8, rng=rng,
    )
    return ShapeScene(colour, shape, background, size, position, caption)


def training_batch(rng: random.Random, n: int) -> tuple[list[Image.Image], list[str]]:
    """``n`` training images and captions (never a held-out triple)."""
    scenes = [sample_scene(rng) for _ in range(n)]
    return [render(s, rng) for s in scenes], [s.caption for s in scenes]


def held_out_prompts(n: int = 120, seed: int = 1234) -> list[ShapeScene]:
    """``n`` evaluation scenes from held-out triples; each caption names colour, shape and background."""
    rng = random.Random(seed)
    scenes, seen = [], set()
    while len(scenes) < n:
        s = sample_scene(rng, held_out=True)
        caption = make_caption(
            s.colour, s.shape, s.background, s.size, s.position,
            say_size=rng.random() < 0.5, say_position=rng.random() < 0.5, say_background=True, rng=rng,
        )
        if caption in seen:
            continue
        seen.add(caption)
        scenes.append(ShapeScene(s.colour, s.shape, s.background, s.size, s.position, caption))
    return scenes
