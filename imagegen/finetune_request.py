"""`FineTuneRequest`: what a LoRA fine-tune needs, validated before anything is uploaded or paid,
and the trainer's price table the cost estimate uses."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# Trainer and version: the version most public code passes (2025-04, replicate-python #419;
# research note on Replicate §7.3). The API may run the newest trainer whichever is named.
DEFAULT_TRAINER = "ostris/flux-dev-lora-trainer"
DEFAULT_TRAINER_VERSION = "b6af14222e6bd9be257cbc1ea4afda3cd0503e1133083b9d1de0364d8568e6ef"
OPTIMIZERS = ("prodigy", "adam8bit", "adamw8bit", "lion8bit", "adam", "adamw", "lion",
              "adagrad", "adafactor")  # flux-fine-tuner train.py @3dd14e3 (2025-06)

# USD per second by hardware SKU: replicate.com/pricing (research note §10, snapshot date unknown).
HARDWARE_USD_PER_SECOND: dict[str, float] = {
    "cpu": 0.000100, "gpu-t4": 0.000225, "gpu-a40-small": 0.000575, "gpu-a40-large": 0.000725,
    "gpu-l40s": 0.000975, "gpu-a100-large": 0.001400, "gpu-h100": 0.001525,
    "gpu-h100-2x": 0.003050, "gpu-h100-4x": 0.006100, "gpu-h100-8x": 0.012200,
}
# "Flux fine-tunes run on H100s" (replicate.com/pricing). Run time per step is UNCONFIRMED:
# third-party claims span 2-20 min for 1000 steps; the estimate takes the top of that range
# (60 s setup + 1.14 s/step: 1000 steps ≈ 20 min ≈ $1.83) so a budget check errs high.
TRAINER_HARDWARE = {DEFAULT_TRAINER: "gpu-h100"}
ESTIMATE_SETUP_S = 60.0
ESTIMATE_SECONDS_PER_STEP = 1.14

_NAME = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_SECRET_NAME = re.compile(r"token|api_key|secret|password", re.IGNORECASE)
REDACTED = "**********"


class FineTuneRequest(BaseModel):
    """A LoRA fine-tune: a dataset, a trigger word, where the new version goes, trainer inputs.

    ``images``: a folder, a list of image paths, or an existing ``.zip``. ``captions``: maps
    an image's file name or stem to its caption (default: sidecar ``.txt`` files).
    ``destination``: ``"owner/name"``, created (``visibility``, ``hardware``) when missing
    and ``create_destination`` is true. Trainer inputs and ranges follow
    ostris/flux-dev-lora-trainer; ``extra_inputs`` passes any other trainer input as is.
    """

    model_config = ConfigDict(extra="forbid")

    images: Path | list[Path]
    captions: dict[str, str] | None = None
    trigger_word: str = Field("TOK", min_length=1, max_length=64)
    destination: str
    create_destination: bool = True
    visibility: Literal["public", "private"] = "private"
    hardware: str = "gpu-t4"  # the destination's listed hardware; trained Flux versions run on H100
    description: str | None = None
    trainer: str = DEFAULT_TRAINER
    trainer_version: str | None = None
    steps: int = Field(1000, ge=3, le=6000)
    lora_rank: int = Field(16, ge=1, le=128)
    learning_rate: float = Field(4e-4, gt=0, le=1)
    batch_size: int = Field(1, ge=1, le=64)
    resolution: str = "512,768,1024"
    autocaption: bool = True
    autocaption_prefix: str | None = None
    autocaption_suffix: str | None = None
    caption_dropout_rate: float = Field(0.05, ge=0, le=1)
    optimizer: Literal[OPTIMIZERS] = "adamw8bit"  # type: ignore[valid-type]
    extra_inputs: dict[str, Any] = Field(default_factory=dict)

    @field_validator("images", mode="before")
    @classmethod
    def _images_exist(cls, value: Any) -> Any:
        paths = [value] if isinstance(value, (str, Path)) else list(value)
        missing = [str(p) for p in paths if not Path(p).exists()]
        if missing:
            raise ValueError(f"not found: {', '.join(missing)}")
        if not isinstance(value, (str, Path)) and not paths:
            raise ValueError("the list of image paths is empty")
        return value

    @field_validator("trigger_word")
    @classmethod
    def _one_token(cls, value: str) -> str:
        if not value.strip() or any(ch.isspace() for ch in value):
            raise ValueError("must be one word without spaces (e.g. 'TOK')")
        return value

    @field_validator("destination")
    @classmethod
    def _owner_name(cls, value: str) -> str:
        if not re.fullmatch(f"{_NAME}/{_NAME}", value):
            raise ValueError(f"{value!r} is not 'owner/name' (letters, digits, '-', '_', '.')")
        return value

    @field_validator("trainer")
    @classmethod
    def _trainer_name(cls, value: str) -> str:
        if not re.fullmatch(f"{_NAME}/{_NAME}(:[0-9a-f]{{64}})?", value):
            raise ValueError(f"{value!r} is not 'owner/name' or 'owner/name:<64-hex version>'")
        return value

    @field_validator("trainer_version")
    @classmethod
    def _hex_version(cls, value: str | None) -> str | None:
        if value is not None and not _HEX64.match(value):
            raise ValueError("must be a 64-character lowercase hex version id")
        return value

    @field_validator("hardware")
    @classmethod
    def _known_hardware(cls, value: str) -> str:
        if value not in HARDWARE_USD_PER_SECOND:
            raise ValueError(f"{value!r} is not a Replicate hardware SKU "
                             f"({', '.join(HARDWARE_USD_PER_SECOND)})")
        return value

    @field_validator("resolution", mode="before")
    @classmethod
    def _resolution_list(cls, value: Any) -> Any:
        if isinstance(value, int):
            value = [value]
        if isinstance(value, (list, tuple)):
            value = ",".join(str(v) for v in value)
        parts = [p.strip() for p in str(value).split(",")]
        if not parts or not all(p.isdigit() and 256 <= int(p) <= 2048 for p in parts):
            raise ValueError(f"{value!r}: give comma-separated sizes from 256 to 2048 (e.g. '512,768,1024')")
        return ",".join(parts)

    @model_validator(mode="after")
    def _resolve_trainer(self) -> FineTuneRequest:
        if ":" in self.trainer:
            name, version = self.trainer.split(":", 1)
            if self.trainer_version not in (None, version):
                raise ValueError("trainer_version contradicts the version in trainer")
            self.trainer, self.trainer_version = name, version
        if self.trainer_version is None:
            if self.trainer != DEFAULT_TRAINER:
                raise ValueError(f"trainer_version is required for trainer {self.trainer!r}")
            self.trainer_version = DEFAULT_TRAINER_VERSION
        clashes = set(self.extra_inputs) & (set(_NAMED_INPUTS) | {"input_images"})
        if clashes:
            raise ValueError(f"extra_inputs repeats named fields {sorted(clashes)}: set those fields instead")
        return self

    @property
    def trainer_ref(self) -> str:
        return f"{self.trainer}:{self.trainer_version}"

    def training_input(self, input_images: str, *, redact: bool = False) -> dict[str, Any]:
        """The trainer's ``input``: every named setting, explicit, so the record says what ran.
        ``redact``: secret inputs (tokens, keys) replaced by a marker, for storing."""
        values = {name: getattr(self, name) for name in _NAMED_INPUTS}
        values = {k: v for k, v in values.items() if v is not None}
        extra = {k: REDACTED if redact and k in self.secret_inputs() else v for k, v in self.extra_inputs.items()}
        return {"input_images": input_images, **values, **extra}

    def secret_inputs(self) -> dict[str, Any]:
        """Trainer inputs that hold credentials (``hf_token``, ``wandb_api_key``, ...)."""
        return {k: v for k, v in self.extra_inputs.items() if _SECRET_NAME.search(k)}

    def __repr_args__(self):  # secret inputs never appear in a repr
        for name, value in super().__repr_args__():
            if name == "extra_inputs":
                value = {k: REDACTED if _SECRET_NAME.search(k) else v for k, v in value.items()}
            yield name, value

    def estimate_cost_usd(self) -> float:
        price = HARDWARE_USD_PER_SECOND[TRAINER_HARDWARE.get(self.trainer, "gpu-h100")]
        return round((ESTIMATE_SETUP_S + ESTIMATE_SECONDS_PER_STEP * self.steps) * price, 4)


_NAMED_INPUTS = ("trigger_word", "steps", "lora_rank", "learning_rate", "batch_size", "resolution",
                 "autocaption", "autocaption_prefix", "autocaption_suffix", "caption_dropout_rate",
                 "optimizer")
