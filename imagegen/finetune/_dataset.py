"""A fine-tune dataset: find the images and their captions, check them before anything is
uploaded or paid for, and pack them into the zip a trainer reads (captions beside images).

Sources: a folder, a list of image paths, or an existing zip; captions come from sidecar
``.txt`` files (``photo.jpg`` + ``photo.txt``) or a mapping. Every problem is collected, so
one `FineTuneError` names every bad file at once.
"""

from __future__ import annotations

import hashlib
import io
import re
import unicodedata
import zipfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from imagegen.errors import FineTuneError

# What the common LoRA trainers read from a dataset zip (the Flux fine-tuner's train.py @3dd14e3,
# 2025-06): jpg/jpeg/png/webp images, an optional caption ``<stem>.txt`` beside each one.
IMAGE_FORMATS: dict[str, str] = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WEBP"}
CAPTION_SUFFIX = ".txt"
MIN_SIDE_PX = 256  # below this an image is an error: the trainer's smallest bucket is 512
RECOMMENDED_SIDE_PX = 512  # below this, a warning: it gets upscaled for the 512 bucket
RECOMMENDED_COUNT = 10  # "≥10 images recommended" (research note on cloud trainers §7.3)
_ZIP_ENTRY_OVERHEAD = 128  # local header + central directory entry, generous
REPEATS_FOLDER = re.compile(r"^(\d+)_(.+)$")  # kohya_ss: "<repeats>_<name>" subfolders
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed, so the same dataset always zips to the same bytes


@dataclass(frozen=True)
class DatasetImage:
    """One checked image: where it came from, its name in the zip, and its caption."""

    source: str  # a path, or "archive.zip!member" for an image inside a zip
    arcname: str  # the safe name it gets in the zip
    caption: str | None
    format: str
    width: int
    height: int
    size_bytes: int
    sha256: str
    read: Callable[[], bytes] = field(repr=False, compare=False)


@dataclass
class Dataset:
    """Checked images, ready to zip. ``warnings`` hold what is allowed but not advisable."""

    source: str
    images: list[DatasetImage]
    warnings: list[str] = field(default_factory=list)

    @property
    def manifest(self) -> dict[str, str | None]:
        """Zip name -> caption, in zip order."""
        return {image.arcname: image.caption for image in self.images}

    @property
    def digest(self) -> str:
        """Identifies the content: the same images and captions give the same digest."""
        h = hashlib.sha256()
        for image in self.images:
            h.update(f"{image.arcname}\0{image.sha256}\0{image.caption or ''}\n".encode())
        return h.hexdigest()

    @property
    def estimated_zip_bytes(self) -> int:
        total = 22  # end of central directory
        for image in self.images:
            total += image.size_bytes + _ZIP_ENTRY_OVERHEAD + 2 * len(image.arcname)
            if image.caption is not None:
                total += len(image.caption.encode()) + _ZIP_ENTRY_OVERHEAD + 2 * len(image.arcname)
        return total

    def write_zip(self, path: Path | str, *, max_bytes: int | None = None) -> Path:
        """Write the zip (images stored, captions deflated); refuse one over ``max_bytes``
        (the trainer's upload limit)."""
        path = Path(path)
        if path.suffix.lower() != ".zip":
            raise FineTuneError(f"{path}: the dataset archive must end in .zip; trainers check the suffix")
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        with zipfile.ZipFile(partial, "w") as archive:
            for image in self.images:
                data = image.read()
                if hashlib.sha256(data).hexdigest() != image.sha256:
                    partial.unlink(missing_ok=True)
                    raise FineTuneError(f"{image.source} changed after it was checked; check the dataset again")
                archive.writestr(_entry(image.arcname, zipfile.ZIP_STORED), data)
                if image.caption is not None:
                    caption_name = str(PurePosixPath(image.arcname).with_suffix(CAPTION_SUFFIX))
                    archive.writestr(_entry(caption_name, zipfile.ZIP_DEFLATED), image.caption.encode())
        size = partial.stat().st_size
        if max_bytes is not None and size > max_bytes:
            partial.unlink()
            raise FineTuneError(f"dataset zip is {_mib(size)}; the trainer takes at most "
                                f"{_mib(max_bytes)}: use fewer or smaller images")
        partial.replace(path)
        return path


def load_dataset(images: Path | str | Iterable[Path | str],
                 captions: Mapping[str, str] | None = None, *,
                 max_zip_bytes: int | None = None) -> Dataset:
    """Find and check a dataset; raise `FineTuneError` listing every problem found.

    ``captions`` maps an image's file name, stem or path to its caption; it wins over a
    sidecar ``.txt`` (a warning says so). ``max_zip_bytes``: the trainer's upload limit.
    """
    problems: list[str] = []
    warnings: list[str] = []
    found = _Found()
    if isinstance(images, (str, Path)):
        source = Path(images)
        if source.is_dir():
            _scan_folder(source, found, problems, warnings)
        elif source.suffix.lower() == ".zip" and source.is_file():
            _scan_zip(source, found, problems, warnings)
        elif source.is_file():
            _scan_paths([source], found, problems)
        else:
            raise FineTuneError(f"images: {source} is not a folder, a .zip file or an image file")
        label = str(source)
    else:
        paths = [Path(p) for p in images]
        _scan_paths(paths, found, problems)
        label = f"{len(paths)} image paths"

    checked, keys = [], []
    for entry in found.images:
        image = _check_image(entry, problems, warnings)
        if image is not None:
            checked.append(image)
            keys.append(entry.key)
    _apply_captions(checked, keys, found.sidecars, captions or {}, problems, warnings)
    _find_duplicates(checked, problems)
    if not found.images:
        problems.append(f"{label}: no images found (allowed: {', '.join(IMAGE_FORMATS)})")
    elif len(found.images) < RECOMMENDED_COUNT:
        warnings.append(f"only {len(found.images)} images; {RECOMMENDED_COUNT} or more are recommended")
    dataset = Dataset(source=label, images=_with_safe_names(checked), warnings=warnings)
    if max_zip_bytes is not None and dataset.estimated_zip_bytes > max_zip_bytes:
        problems.append(f"dataset is about {_mib(dataset.estimated_zip_bytes)}; the trainer "
                        f"takes at most {_mib(max_zip_bytes)}")
    if problems:
        raise FineTuneError(f"dataset {label} has {len(problems)} problem(s)", problems)
    return dataset


# -- finding files ------------------------------------------------------------------------

@dataclass
class _Entry:
    label: str  # how problems name the file
    key: str  # relative path without suffix: a sidecar caption has the same key
    name: str  # file name
    read: Callable[[], bytes]


@dataclass
class _Found:
    images: list[_Entry] = field(default_factory=list)
    sidecars: dict[str, _Entry] = field(default_factory=dict)  # key -> caption file


def _sort_entry(found: _Found, entry: _Entry, problems: list[str]) -> None:
    suffix = PurePosixPath(entry.name).suffix.lower()
    if suffix == CAPTION_SUFFIX:
        found.sidecars[entry.key] = entry
    elif suffix in IMAGE_FORMATS:
        found.images.append(entry)
    else:
        problems.append(f"{entry.label}: not an image format the trainer reads "
                        f"(allowed: {', '.join(IMAGE_FORMATS)})")


def _hidden(name: str) -> bool:
    return name.startswith(".") or name == "__MACOSX" or name.lower() == "thumbs.db"


def _scan_folder(folder: Path, found: _Found, problems: list[str], warnings: list[str]) -> None:
    for path in sorted(folder.iterdir()):
        if _hidden(path.name):
            continue
        if path.is_dir():
            if REPEATS_FOLDER.match(path.name):  # kohya's "10_name": its images, repeated 10 times
                for inner in sorted(path.iterdir()):
                    if inner.is_file() and not _hidden(inner.name):
                        key = f"{path.name}/{inner.stem}"
                        _sort_entry(found, _Entry(str(inner), key, inner.name, inner.read_bytes), problems)
                continue
            warnings.append(f"{path}: subfolder ignored (only files directly in {folder} and in "
                            f"kohya-style '<repeats>_<name>' folders are used)")
            continue
        _sort_entry(found, _Entry(str(path), path.stem, path.name, path.read_bytes), problems)


def _scan_paths(paths: list[Path], found: _Found, problems: list[str]) -> None:
    for path in paths:
        if not path.is_file():
            problems.append(f"{path}: file not found")
            continue
        key = str(path.with_suffix(""))
        _sort_entry(found, _Entry(str(path), key, path.name, path.read_bytes), problems)
        sidecar = path.with_suffix(CAPTION_SUFFIX)
        if path.suffix.lower() != CAPTION_SUFFIX and sidecar.is_file() and key not in found.sidecars:
            found.sidecars[key] = _Entry(str(sidecar), key, sidecar.name, sidecar.read_bytes)


def _scan_zip(path: Path, found: _Found, problems: list[str], warnings: list[str]) -> None:
    try:
        archive = zipfile.ZipFile(path)
        infos = archive.infolist()
    except (zipfile.BadZipFile, OSError) as exc:
        problems.append(f"{path}: not a readable zip file ({exc})")
        return
    for info in sorted(infos, key=lambda i: i.filename):
        member = PurePosixPath(info.filename)
        if info.is_dir() or any(_hidden(part) for part in member.parts):
            continue
        entry = _Entry(f"{path}!{info.filename}", str(member.with_suffix("")), member.name,
                       _zip_reader(path, info.filename))
        _sort_entry(found, entry, problems)


def _zip_reader(path: Path, member: str) -> Callable[[], bytes]:
    def read() -> bytes:
        with zipfile.ZipFile(path) as archive:
            return archive.read(member)
    return read


# -- checks -------------------------------------------------------------------------------

def _check_image(entry: _Entry, problems: list[str], warnings: list[str]) -> DatasetImage | None:
    from PIL import Image

    try:
        data = entry.read()
    except (OSError, zipfile.BadZipFile, RuntimeError) as exc:
        problems.append(f"{entry.label}: cannot be read ({exc})")
        return None
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()  # decodes everything, so a truncated file is caught here
            fmt, (width, height) = img.format, img.size
    except Exception as exc:  # PIL raises many types for broken files; all mean "unreadable"
        problems.append(f"{entry.label}: not a readable image ({type(exc).__name__}: {exc})")
        return None
    allowed = sorted(set(IMAGE_FORMATS.values()))
    if fmt not in allowed:
        problems.append(f"{entry.label}: holds {fmt} data; the trainer reads {', '.join(allowed)}")
        return None
    shortest = min(width, height)
    if shortest < MIN_SIDE_PX:
        problems.append(f"{entry.label}: {width}x{height} is too small (shortest side under {MIN_SIDE_PX} px)")
        return None
    if shortest < RECOMMENDED_SIDE_PX:
        warnings.append(f"{entry.label}: {width}x{height} is small (shortest side under "
                        f"{RECOMMENDED_SIDE_PX} px); it will be upscaled")
    return DatasetImage(source=entry.label, arcname=entry.name, caption=None, format=fmt,
                        width=width, height=height, size_bytes=len(data),
                        sha256=hashlib.sha256(data).hexdigest(), read=entry.read)


def _apply_captions(images: list[DatasetImage], keys: list[str], sidecars: dict[str, _Entry],
                    mapping: Mapping[str, str], problems: list[str], warnings: list[str]) -> None:
    """Sidecar captions by matching key, then the mapping; every unmatched caption is a problem."""
    by_key: dict[str, list[int]] = {}
    for index, key in enumerate(keys):
        by_key.setdefault(key, []).append(index)
    captions: dict[int, str] = {}
    for key, entry in sidecars.items():
        try:
            text = entry.read().decode("utf-8").strip()
        except (UnicodeDecodeError, OSError) as exc:
            problems.append(f"{entry.label}: caption is not readable UTF-8 text ({exc})")
            continue
        matched = by_key.get(key)
        if not matched:
            problems.append(f"{entry.label}: caption matches no image (expected an image named "
                            f"{PurePosixPath(entry.name).stem}{{{','.join(IMAGE_FORMATS)}}} beside it)")
            continue
        for index in matched:
            captions[index] = text
    for name, text in mapping.items():
        matched = [i for i, image in enumerate(images) if _caption_key_matches(str(name), image)]
        if not matched:
            problems.append(f"captions[{name!r}]: matches no image")
            continue
        for index in matched:
            if index in captions:
                warnings.append(f"{images[index].source}: caption from the captions mapping replaces its .txt file")
            captions[index] = str(text).strip()
    for index, text in captions.items():
        images[index] = _replace(images[index], caption=text or None)


def _caption_key_matches(name: str, image: DatasetImage) -> bool:
    member = image.source.split("!", 1)[1] if "!" in image.source else image.source
    path = PurePosixPath(member.replace("\\", "/"))
    return name in (path.name, path.stem, member, str(path.with_suffix("")), image.arcname)


def _find_duplicates(images: list[DatasetImage], problems: list[str]) -> None:
    groups: dict[str, list[str]] = {}
    for image in images:
        groups.setdefault(image.sha256, []).append(image.source)
    for digest, sources in groups.items():
        if len(sources) > 1:
            problems.append(f"{', '.join(sources)}: the same image (sha256 {digest[:12]}…); keep one")


# -- names --------------------------------------------------------------------------------

def safe_stem(stem: str) -> str:
    """ASCII letters, digits, ``._-`` only: names survive every unzip tool and the trainer."""
    ascii_text = unicodedata.normalize("NFKD", stem).encode("ascii", "ignore").decode()
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", ascii_text).strip("._-")
    return cleaned[:100] or "image"


def _with_safe_names(images: list[DatasetImage]) -> list[DatasetImage]:
    """Flat, unique (case-insensitively), safe names; the suffix is kept, lower-cased."""
    taken: set[str] = set()
    renamed = []
    for image in images:
        path = PurePosixPath(image.arcname)
        stem, suffix = safe_stem(path.stem), path.suffix.lower()
        candidate, n = stem, 1
        while candidate.lower() in taken:
            n += 1
            candidate = f"{stem}_{n}"
        taken.add(candidate.lower())
        renamed.append(_replace(image, arcname=candidate + suffix))
    return renamed


def _replace(image: DatasetImage, **changes: Any) -> DatasetImage:
    from dataclasses import replace

    return replace(image, **changes)


def _entry(name: str, compression: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
    info.compress_type = compression
    info.external_attr = 0o644 << 16
    return info


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MiB"
