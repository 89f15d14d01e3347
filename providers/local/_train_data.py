"""The local trainer's dataset: images and captions from the job's zip, kohya repeats,
aspect-ratio buckets, and a step order that depends only on (seed, epoch).

Every random choice of a step (which images, caption shuffle and dropout, flips, noise) comes
from generators seeded by the seed and the step number, so a run resumed from a checkpoint
takes exactly the steps an uninterrupted run takes.
"""

from __future__ import annotations

import hashlib
import io
import math
import random
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from imagegen.finetune._dataset import IMAGE_FORMATS, REPEATS_FOLDER


@dataclass
class Item:
    name: str  # the image's name in the dataset zip
    image: Any  # PIL image, RGB
    caption: str
    repeats: int
    folder: str  # the dataset folder it came from (kohya's tag-frequency key)


def load_items(zip_path: Path, source: str | None, trigger_word: str,
               repeats: dict[str, tuple[int, str]] | None = None) -> tuple[list[Item], list[str]]:
    """Images and captions from the dataset zip; repeats from the source's ``<n>_<name>``
    folders, matched by content (the zip is flat), or as `repeats_by_digest` recorded them
    when the job started. Uncaptioned images train on the trigger word."""
    from PIL import Image

    warnings: list[str] = []
    if repeats is None:
        repeats = repeats_by_digest(Path(source) if source else None)
    default_folder = Path(source).name if source else "dataset"
    items: list[Item] = []
    with zipfile.ZipFile(zip_path) as archive:
        names = set(archive.namelist())
        for name in sorted(names):
            path = PurePosixPath(name)
            if path.suffix.lower() not in IMAGE_FORMATS:
                continue
            data = archive.read(name)
            caption_name = str(path.with_suffix(".txt"))
            caption = archive.read(caption_name).decode().strip() if caption_name in names else ""
            count, folder = repeats.get(hashlib.sha256(data).hexdigest(), (1, default_folder))
            image = Image.open(io.BytesIO(data)).convert("RGB")
            items.append(Item(name, image, caption or trigger_word, count, folder))
    return items, warnings


def repeats_by_digest(source: Path | None) -> dict[str, tuple[int, str]]:
    """sha256 of each image in a ``<n>_<name>`` folder -> (n, folder name)."""
    found: dict[str, tuple[int, str]] = {}
    if source is None or not source.is_dir():
        return found
    for folder in sorted(source.iterdir()):
        match = REPEATS_FOLDER.match(folder.name)
        if not (folder.is_dir() and match):
            continue
        for file in folder.iterdir():
            if file.suffix.lower() in IMAGE_FORMATS and file.is_file():
                found[hashlib.sha256(file.read_bytes()).hexdigest()] = (int(match[1]), folder.name)
    return found


# -- buckets --------------------------------------------------------------------------------

def make_buckets(resolution: int, min_reso: int, max_reso: int, step: int) -> list[tuple[int, int]]:
    """kohya's bucket list: sizes of about ``resolution²`` pixels, sides multiples of ``step``."""
    area = resolution * resolution
    buckets = {(resolution // step * step,) * 2}
    width = min_reso
    while width <= max_reso:
        height = min(max_reso, (area // width) // step * step)
        if height >= min_reso:
            buckets.add((width, height))
            buckets.add((height, width))
        width += step
    return sorted(buckets)


def bucket_for(size: tuple[int, int], buckets: list[tuple[int, int]]) -> tuple[int, int]:
    ratio = math.log(size[0] / size[1])
    return min(buckets, key=lambda b: (abs(math.log(b[0] / b[1]) - ratio), -b[0] * b[1]))


def fit(image: Any, size: tuple[int, int]) -> Any:
    """Resize to cover ``size`` (width, height) and centre-crop: uint8 HWC, done once per image."""
    import numpy as np
    from PIL import Image

    width, height = size
    scale = max(width / image.width, height / image.height)
    resized = image.resize((max(width, round(image.width * scale)), max(height, round(image.height * scale))),
                           Image.Resampling.BICUBIC)
    left, top = (resized.width - width) // 2, (resized.height - height) // 2
    return np.asarray(resized.crop((left, top, left + width, top + height)), dtype=np.uint8)


def to_tensor(pixels: Any, flip: bool) -> Any:
    """A fitted image, optionally mirrored, as [-1, 1] float CHW."""
    import torch

    tensor = torch.from_numpy(pixels.copy()).permute(2, 0, 1).float().div_(127.5).sub_(1.0)
    return tensor.flip(2) if flip else tensor


# -- the order of steps -----------------------------------------------------------------------

def epoch_batches(items: list[Item], buckets_of: list[tuple[int, int]], batch_size: int, seed: int,
                  epoch: int) -> list[list[int]]:
    """The batches of one epoch: every image ``repeats`` times, batched within its bucket."""
    rng = random.Random(seed * 7919 + epoch)
    expanded = [index for index, item in enumerate(items) for _ in range(item.repeats)]
    rng.shuffle(expanded)
    groups: dict[tuple[int, int], list[int]] = {}
    for index in expanded:
        groups.setdefault(buckets_of[index], []).append(index)
    batches = [group[i:i + batch_size] for _, group in sorted(groups.items())
               for i in range(0, len(group), batch_size)]
    rng.shuffle(batches)
    return batches


def caption_for(caption: str, rng: random.Random, *, shuffle: bool, keep_tokens: int,
                dropout: float) -> str:
    """kohya's caption handling: drop it with probability ``dropout``; shuffle the
    comma-separated tags after the first ``keep_tokens``."""
    if dropout and rng.random() < dropout:
        return ""
    if not shuffle:
        return caption
    tags = [t.strip() for t in caption.split(",")]
    kept, rest = tags[:keep_tokens], tags[keep_tokens:]
    rng.shuffle(rest)
    return ", ".join(t for t in kept + rest if t)
