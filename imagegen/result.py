"""`GenerateResult` and `GeneratedImage`: what a generation returns, and saving it.

Saving writes the A1111 "parameters" infotext where WebUI tools look for it: a PNG text
chunk, or the EXIF UserComment of a JPEG/WebP. The text format itself lives in
`imagegen.prompt.infotext`.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from PIL import Image

_EXIF_USER_COMMENT = 0x9286
_EXIF_IFD = 0x8769
_FORMATS = {"png": "PNG", "jpeg": "JPEG", "jpg": "JPEG", "webp": "WEBP"}


class GeneratedImage(BaseModel):
    """One image: encoded bytes plus the seed and infotext that reproduce it."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    data: bytes = Field(repr=False)
    format: str = "png"
    width: int
    height: int
    seed: int | None = None
    infotext: str = ""
    url: str | None = None

    @classmethod
    def from_pil(cls, image: Image.Image, *, format: str = "png", seed: int | None = None,
                 infotext: str = "") -> GeneratedImage:
        data = encode_image(image, format, infotext)
        return cls(data=data, format=format, width=image.width, height=image.height,
                   seed=seed, infotext=infotext)

    def pil(self) -> Image.Image:
        from PIL import Image

        image = Image.open(io.BytesIO(self.data))
        image.load()
        return image

    def save(self, path: str | Path, format: str | None = None) -> Path:
        """Write the image; the format follows the suffix (or ``format``), infotext included."""
        path = Path(path)
        fmt = (format or path.suffix.lstrip(".") or self.format).lower()
        if fmt not in _FORMATS:
            raise ValueError(f"cannot save as {fmt!r}: use one of png, jpeg, webp")
        if _FORMATS[fmt] == _FORMATS.get(self.format) and read_infotext(self.data) == (self.infotext or None):
            data = self.data
        else:
            data = encode_image(self.pil(), fmt, self.infotext)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path


class GenerateResult(BaseModel):
    """Everything one `generate` call produced, and what it cost."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    images: list[GeneratedImage] = Field(default_factory=list)
    provider: str = ""
    model: str = ""
    cost_usd: float = 0.0
    # "actual": what the provider bills, from its own counts (Replicate's prediction metrics);
    # "estimate": from the model card's price and the request, when those counts are missing.
    cost_source: Literal["actual", "estimate"] = "estimate"
    latency_s: float = 0.0
    load_s: float = 0.0  # time spent loading weights (local), 0 when warm
    gpu_seconds: float = 0.0
    warnings: list[str] = Field(default_factory=list)
    route: Any = None  # RouteDecision when the router chose the model
    raw: dict[str, Any] = Field(default_factory=dict)

    @property
    def infotext(self) -> str:
        return self.images[0].infotext if self.images else ""

    @property
    def cost_is_estimate(self) -> bool:
        return self.cost_source == "estimate"

    def save(self, directory: str | Path, stem: str = "image") -> list[Path]:
        """Save every image as ``<stem>-<seed>.<format>`` (or an index when there is no seed)."""
        directory = Path(directory)
        paths = []
        for index, image in enumerate(self.images):
            name = f"{stem}-{image.seed if image.seed is not None else index}.{image.format}"
            target = directory / name
            n = 1
            while target.exists():
                target = directory / f"{Path(name).stem}-{n}.{image.format}"
                n += 1
            paths.append(image.save(target))
        return paths


def encode_image(image: Image.Image, format: str, infotext: str = "") -> bytes:
    """Encode with the infotext where A1111 puts it (PNG text chunk, else EXIF UserComment)."""
    from PIL import PngImagePlugin

    fmt = _FORMATS[format.lower()]
    buffer = io.BytesIO()
    if fmt == "PNG":
        info = PngImagePlugin.PngInfo()
        if infotext:
            info.add_itxt("parameters", infotext) if not infotext.isascii() else info.add_text(
                "parameters", infotext)
        image.save(buffer, format="PNG", pnginfo=info)
    else:
        if image.mode not in ("RGB", "L"):
            image = image.convert("RGB")
        kwargs: dict[str, Any] = {"quality": 95}
        if infotext:
            exif = image.getexif()
            exif.get_ifd(_EXIF_IFD)[_EXIF_USER_COMMENT] = _user_comment(infotext)
            kwargs["exif"] = exif.tobytes()
        image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def read_infotext(source: bytes | str | Path) -> str | None:
    """The A1111 parameters text stored in an image (PNG chunk or EXIF UserComment), if any.

    Raises ``ImageReadError`` (naming the file) when the source cannot be read or is not an
    image; only the metadata is read, never the pixels, so a huge image costs nothing.
    """
    from .errors import ImageReadError

    if isinstance(source, (bytes, bytearray, memoryview)):
        data, what = bytes(source), "the image bytes"
    else:
        what = _shown(source)
        try:
            data = Path(source).read_bytes()
        except (OSError, ValueError) as exc:  # missing, a folder, name too long, a lone surrogate
            reason = getattr(exc, "strerror", None) or "not a name this system can open"
            raise ImageReadError(f"{what}: cannot read it ({reason})") from None
    if not data:
        raise ImageReadError(f"{what}: empty, not an image")
    try:
        return _stored_infotext(data)
    except Exception as exc:  # noqa: BLE001 - PIL's decoders raise anything on hostile bytes
        raise ImageReadError(f"{what}: not a readable PNG, JPEG or WebP image "
                             f"({type(exc).__name__})") from exc


def _stored_infotext(data: bytes) -> str | None:
    import warnings

    from PIL import Image

    with warnings.catch_warnings():
        # Pixels are never decoded (no bomb to fear), and corrupt EXIF is an answer, not a warning.
        warnings.simplefilter("ignore")
        with Image.open(io.BytesIO(data)) as image:
            text = image.info.get("parameters")
            if isinstance(text, str):
                return text
            raw = image.getexif().get_ifd(_EXIF_IFD).get(_EXIF_USER_COMMENT)
    if isinstance(raw, bytes):
        return _decode_user_comment(raw)
    if isinstance(raw, str):
        return raw
    return None


def _shown(source: Any) -> str:
    text = str(source)
    shown = text if text.isprintable() and text.encode("utf-8", "replace").decode() == text else ascii(text)
    return shown if len(shown) <= 120 else shown[:117] + "..."
def _user_comment(text: str) -> bytes:
    # piexif's "unicode" encoding, which A1111 writes: an 8-byte header then UTF-16 (big endian).
    return b"UNICODE\0" + text.encode("utf-16-be")


def _decode_user_comment(raw: bytes) -> str:
    header, body = raw[:8], raw[8:]
    if header == b"UNICODE\0":
        # Writers differ in byte order; a BOM or the zero bytes of ASCII tell which.
        if body[:2] in (b"\xff\xfe", b"\xfe\xff"):
            return body.decode("utf-16", errors="replace")
        if len(body) >= 2 and body[0] == 0 and body[1] != 0:
            return body.decode("utf-16-be", errors="replace")
        return body.decode("utf-16-le", errors="replace")
    return body.decode("utf-8", errors="replace")
