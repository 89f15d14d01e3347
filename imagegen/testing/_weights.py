"""The ``trained_model.tar`` an emulated LoRA training produces: a real, tiny safetensors LoRA.

Layout as the flux-dev-lora-trainer's tar (research note §7.3):
``output/flux_train_replicate/lora.safetensors`` plus ``config.yaml``. Tensor names follow the
diffusers Flux LoRA naming; the inner width is shrunk to 64 so the file stays a few KB. The
safetensors bytes are written directly (8-byte header size, JSON header, raw little-endian
data), so neither numpy nor safetensors is needed to emulate a training.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
import struct
import tarfile

LORA_PATH = "output/flux_train_replicate/lora.safetensors"
CONFIG_PATH = "output/flux_train_replicate/config.yaml"
_LAYERS = ("transformer.single_transformer_blocks.0.attn.to_q",
           "transformer.single_transformer_blocks.0.attn.to_k")
_WIDTH = 64


def safetensors_bytes(tensors: dict[str, tuple[tuple[int, ...], list[float]]],
                      metadata: dict[str, str]) -> bytes:
    """Serialize float16 tensors, given as (shape, flat values), in the safetensors format."""
    header: dict[str, object] = {"__metadata__": metadata}
    data = bytearray()
    for name, (shape, values) in tensors.items():
        raw = struct.pack(f"<{len(values)}e", *values)
        header[name] = {"dtype": "F16", "shape": list(shape),
                        "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)  # the format pads the header to 8 bytes
    return struct.pack("<Q", len(head)) + head + bytes(data)


def lora_safetensors(seed_text: str, rank: int, trigger_word: str) -> bytes:
    rng = random.Random(hashlib.sha256(seed_text.encode()).hexdigest())
    rank = max(1, min(int(rank), 16))
    tensors: dict[str, tuple[tuple[int, ...], list[float]]] = {}
    for layer in _LAYERS:
        down = [round(rng.gauss(0.0, 1.0), 3) for _ in range(rank * _WIDTH)]
        tensors[f"{layer}.lora_A.weight"] = ((rank, _WIDTH), down)
        tensors[f"{layer}.lora_B.weight"] = ((_WIDTH, rank), [0.0] * (_WIDTH * rank))
    return safetensors_bytes(tensors, {"format": "pt", "trigger_word": trigger_word})


def trained_model_tar(seed_text: str, effective_input: dict) -> bytes:
    lora = lora_safetensors(seed_text, effective_input.get("lora_rank", 16),
                            str(effective_input.get("trigger_word", "TOK")))
    config = (
        "job: extension\n"
        "config:\n"
        "  name: flux_train_replicate\n"
        f"  trigger_word: {effective_input.get('trigger_word', 'TOK')}\n"
        f"  steps: {effective_input.get('steps', 1000)}\n"
        f"  lora_rank: {effective_input.get('lora_rank', 16)}\n"
    ).encode()
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data in ((LORA_PATH, lora), (CONFIG_PATH, config)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 0  # same input, same bytes
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()
