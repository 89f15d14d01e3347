"""Small deterministic images for emulated predictions: same prompt and seed, same bytes.

The image keeps the requested aspect ratio but is scaled down so its long side is at most
``MAX_SIDE`` pixels; the requested size is written into the file's metadata.
"""

from __future__ import annotations

import functools
import hashlib
import io

MAX_SIDE = 64

_PIL_FORMATS = {"png": "PNG", "jpg": "JPEG", "webp": "WEBP"}
MIME_TYPES = {"png": "image/png", "jpg": "image/jpeg", "webp": "image/webp"}


def small_size(width: int, height: int, max_side: int = MAX_SIDE) -> tuple[int, int]:
    """Scale (width, height) down so the long side is ``max_side``, keeping the ratio."""
    scale = max_side / max(width, height)
    return (max(1, round(width * scale)), max(1, round(height * scale)))


@functools.lru_cache(maxsize=512)
def render_image(
    prompt: str,
    seed: int,
    index: int,
    requested: tuple[int, int],
    fmt: str,
    quality: int = 80,
) -> bytes:
    """Encode a pattern derived from (prompt, seed, index) as ``fmt`` (png, jpg or webp).

    Cached: the bytes depend only on the arguments, and a rerun of the same batch is common.
    """
    from PIL import Image, PngImagePlugin

    digest = hashlib.sha256(f"{prompt}\x00{seed}\x00{index}".encode()).digest()
    width, height = small_size(*requested)
    image = Image.frombytes("RGB", (width, height), _pattern(digest, width, height))

    requested_text = f"{requested[0]}x{requested[1]}"
    out = io.BytesIO()
    pil_format = _PIL_FORMATS[fmt]
    if pil_format == "PNG":
        info = PngImagePlugin.PngInfo()
        info.add_text("requested_size", requested_text)
        info.add_text("prompt", prompt)
        info.add_text("seed", str(seed))
        image.save(out, "PNG", pnginfo=info)
    elif pil_format == "JPEG":
        image.save(out, "JPEG", quality=max(1, min(quality, 95)),
                   comment=f"requested_size={requested_text}".encode())
    else:
        exif = Image.Exif()
        exif[0x010E] = f"requested_size={requested_text}"  # ImageDescription
        image.save(out, "WEBP", quality=quality, exif=exif.tobytes())
    return out.getvalue()


# _XOR[k] maps every byte b to b ^ k, so a run of pixels is XORed with one bytes.translate.
_XOR = [bytes(b ^ k for b in range(256)) for k in range(64)]


def _pattern(digest: bytes, width: int, height: int) -> bytes:
    """RGB bytes of two colour gradients chosen by the digest, XORed with a 4x4 block grid
    from it, so a change of seed changes many pixels, not one.

    Pixel (x, y) is ``int(c0 * (1 - t) + c1 * t) ^ (block & 0x3F)`` with
    ``t = (x + y) / (width + height - 2)``; the gradient depends only on x + y, so it is
    computed once per diagonal and each row is sliced from it (milliseconds per image
    otherwise, which a hundred concurrent jobs would queue on).
    """
    c0, c1 = digest[0:3], digest[3:6]
    span = max(1, width + height - 2)
    gradient = bytearray()
    for d in range(width + height - 1):
        t = d / span
        gradient.extend(int(c0[c] * (1 - t) + c1[c] * t) for c in range(3))
    gradient = bytes(gradient)
    # Column runs [x0, x1) that share a block column (4 * x // width).
    runs: list[tuple[int, int, int]] = []
    for x in range(width):
        column = 4 * x // width
        if runs and runs[-1][2] == column:
            runs[-1] = (runs[-1][0], x + 1, column)
        else:
            runs.append((x, x + 1, column))
    rows = []
    for y in range(height):
        block_row = 4 * (4 * y // height)
        for x0, x1, column in runs:
            mask = digest[6 + (block_row + column) % 26] & 0x3F
            rows.append(gradient[3 * (x0 + y):3 * (x1 + y)].translate(_XOR[mask]))
    return b"".join(rows)


def requested_size_of(data: bytes) -> tuple[int, int] | None:
    """Read back the requested size an emulated image was rendered for."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        text = image.info.get("requested_size")
        if text is None and "comment" in image.info:
            text = image.info["comment"].decode().partition("=")[2]
        if text is None:
            text = str(image.getexif().get(0x010E, "")).partition("=")[2]
    if not text:
        return None
    width, _, height = text.partition("x")
    return (int(width), int(height))
