"""The packaged SD 1.5 / SDXL config folders, made complete (with CLIP tokenizer files) on first use.

`from_single_file(config=<local dir>, local_files_only=True)` needs model_index.json, the
component configs and a loadable tokenizer; nothing may come from a hub.
"""

from __future__ import annotations

import gzip
import json
import shutil
from importlib import resources
from pathlib import Path

FAMILIES = ("sd15", "sdxl")
_VOCAB_GZ = "clip_bpe_simple_vocab_16e6.txt.gz"
_FORMAT = "1"  # bump when the materialised layout changes


def packaged_configs() -> Path:
    return Path(str(resources.files("imagegen") / "data" / "configs"))


def config_dir_for(family: str, home: Path | None = None) -> Path:
    """A complete local diffusers config folder for ``family`` (written once under ``home``)."""
    if family not in FAMILIES:
        raise ValueError(f"no packaged config for family {family!r}; known: {', '.join(FAMILIES)}")
    if home is None:
        from imagegen.settings import Settings

        home = Settings().home
    target = Path(home) / "configs" / family
    stamp = target / ".complete"
    if stamp.is_file() and stamp.read_text() == _FORMAT:
        return target
    source = packaged_configs()
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(source / family, partial)
    vocab, merges = clip_vocab(source / _VOCAB_GZ)
    for tokenizer in sorted(partial.glob("tokenizer*")):
        (tokenizer / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
        (tokenizer / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    (partial / ".complete").write_text(_FORMAT)
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    return target


def clip_vocab(gz_path: Path) -> tuple[dict[str, int], list[str]]:
    """CLIP's vocab and merges, built as OpenAI's SimpleTokenizer does (49408 entries)."""
    lines = gzip.open(gz_path).read().decode("utf-8").split("\n")
    merges = lines[1 : 49152 - 256 - 2 + 1]
    byte_chars = list(_bytes_to_unicode().values())
    tokens = byte_chars + [c + "</w>" for c in byte_chars]
    tokens += ["".join(m.split()) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    return {token: index for index, token in enumerate(tokens)}, merges


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte -> printable character map."""
    printable = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
                 + list(range(ord("®"), ord("ÿ") + 1)))
    chars = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, (chr(c) for c in chars), strict=True))
