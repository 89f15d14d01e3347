"""Small deterministic images for emulated predictions: same prompt and seed, same bytes.

The image keeps the requested aspect ratio but is scaled down so its long side is at most
``MAX_SIDE`` pixels; the requested size is written into the file's metadata.
"""

from __future__ import annotations

import hashlib
import io

MAX_SIDE = 64

_PIL_FORMATS = {"png": "PNG", "jpg": "JPEG", "webp": "WEBP"}
MIME_TYPES = {"png": "image/png", "jpg": "image/jpeg", "webp": "image/webp"}


def small_size(width: int, height: int, max_side: int = MAX_SIDE) -> tuple[int, int]:
    """Scale (width, height) down so the long side is ``max_side``, keeping the ratio."""
    scale = max_side / max(width, height)
    return (max(1, round(width * scale)), max(1, round(height * scale)))


def render_image(
    prompt: str,
    seed: int,
    index: int,
    requested: tuple[int, int],
    fmt: str,
    quality: int = 80,
) -> bytes:
    """Encode a pattern derived from (prompt, seed, index) as ``fmt`` (png, jpg or webp)."""
    from PIL import Image, PngImagePlugin

    digest = hashlib.sha256(f"{prompt}\x00{seed}\x00{index}".encode()).digest()
    width, height = small_size(*requested)
    image = Image.new("RGB", (width, height))
    # Two colour gradients chosen by the digest, plus a 4x4 block grid from it, so a change
    # of seed changes many pixels, not one.
    c0, c1 = digest[0:3], digest[3:6]
    pixels = []
    for y in range(height):
        for x in range(width):
            t = (x + y) / max(1, width + height - 2)
            block = digest[6 + (4 * (4 * y // height) + 4 * x // width) % 26]
            pixels.append(tuple(
                int(c0[c] * (1 - t) + c1[c] * t) ^ (block & 0x3F) for c in range(3)
            ))
    image.putdata(pixels)

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
