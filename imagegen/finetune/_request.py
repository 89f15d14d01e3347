"""`FineTuneRequest`: what a LoRA fine-tune needs, validated before anything is uploaded or paid.

The request is provider-neutral: ``trainer`` names which provider trains (``"auto"``: the one
the ``base`` model belongs to, else the first installed trainer that accepts the request), and
each trainer checks the settings only it knows (hardware names, trainer versions, dataset size
limits) in its ``estimate``. Secret trainer inputs (tokens, keys) never appear in a repr or in
an error message, and the job store never keeps them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

OPTIMIZERS = ("prodigy", "adam8bit", "adamw8bit", "lion8bit", "adam", "adamw", "lion",
              "adagrad", "adafactor")  # what the common Flux LoRA trainers accept (2025-06)

_NAME = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_PROVIDER = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")
_SECRET_NAME = re.compile(r"token|api_?key|secret|password|credential", re.IGNORECASE)
# Values that are credentials whatever their key: Hugging Face, API-token and OpenAI-style prefixes.
_SECRET_VALUE = re.compile(r"\b(?:hf_[A-Za-z0-9]{16,}|r8_[A-Za-z0-9]{16,}|sk-[A-Za-z0-9_-]{16,})")
REDACTED = "**********"

# Inputs every LoRA trainer understands; a trainer passes them on in its own vocabulary.
NAMED_INPUTS = ("trigger_word", "steps", "lora_rank", "learning_rate", "batch_size", "resolution",
                "autocaption", "autocaption_prefix", "autocaption_suffix", "caption_dropout_rate",
                "optimizer")


LOCAL_OPTIMIZERS = ("AdamW", "AdamW8bit", "Prodigy")
LR_SCHEDULERS = ("constant", "constant_with_warmup", "linear", "cosine", "cosine_with_restarts", "polynomial")
MIXED_PRECISION = ("no", "fp16", "bf16")
_KOHYA_OPTIMIZERS = {"adamw": "AdamW", "adamw8bit": "AdamW8bit", "prodigy": "Prodigy"}


class LocalTrainOptions(BaseModel):
    """The local trainer's settings, in kohya_ss (sd-scripts) vocabulary. ``None``: taken from
    the request's common field (``network_dim`` from ``lora_rank``, ``unet_lr`` from
    ``learning_rate``, ``max_train_steps`` from ``steps``, ``train_batch_size`` from
    ``batch_size``) or the base model (``resolution``: its native size)."""

    model_config = ConfigDict(extra="forbid")

    network_dim: int | None = Field(None, ge=1, le=256)
    network_alpha: float | None = Field(None, gt=0, le=1024)  # None: network_dim (scale 1)
    unet_lr: float | None = Field(None, gt=0, le=1)
    text_encoder_lr: float = Field(0.0, ge=0, le=1)  # 0: the text encoders are not trained
    optimizer: Literal[LOCAL_OPTIMIZERS] | None = None  # type: ignore[valid-type]  # None: AdamW
    lr_scheduler: Literal[LR_SCHEDULERS] = "constant"  # type: ignore[valid-type]
    lr_warmup_steps: int = Field(0, ge=0)
    max_train_steps: int | None = Field(None, ge=1, le=100_000)
    max_train_epochs: int | None = Field(None, ge=1, le=10_000)  # wins over max_train_steps
    train_batch_size: int | None = Field(None, ge=1, le=64)
    resolution: int | None = Field(None, ge=64, le=4096, multiple_of=8)
    enable_bucket: bool = False
    min_bucket_reso: int = Field(256, ge=32, le=4096, multiple_of=8)
    max_bucket_reso: int = Field(1024, ge=32, le=4096, multiple_of=8)
    bucket_reso_steps: int = Field(64, ge=8, le=256, multiple_of=8)
    caption_extension: str = ".txt"
    shuffle_caption: bool = False
    keep_tokens: int = Field(0, ge=0, le=75)
    caption_dropout_rate: float | None = Field(None, ge=0, le=1)  # None: the request's
    flip_aug: bool = False
    mixed_precision: Literal[MIXED_PRECISION] = "no"  # type: ignore[valid-type]
    gradient_checkpointing: bool = False
    cache_latents: bool = False
    seed: int = Field(42, ge=0, le=2**32 - 1)
    save_every_n_steps: int | None = Field(None, ge=1)  # checkpoints (resume after a crash)
    sample_every_n_steps: int | None = Field(None, ge=1)
    sample_prompts: list[str] = Field(default_factory=list)
    sample_steps: int = Field(20, ge=1, le=150)
    gpu_hour_usd: float | None = Field(None, ge=0)  # None: IMAGEGEN_LOCAL_GPU_HOUR_USD, else 0
    output_name: str | None = Field(None, min_length=1, max_length=100)  # the LoRA's name in Lora/

    @field_validator("caption_extension")
    @classmethod
    def _dot_suffix(cls, value: str) -> str:
        if value != ".txt":
            raise ValueError("only '.txt' captions are read (the dataset checks pair them with images)")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> LocalTrainOptions:
        if self.min_bucket_reso > self.max_bucket_reso:
            raise ValueError("min_bucket_reso is larger than max_bucket_reso")
        if self.sample_every_n_steps and not self.sample_prompts:
            raise ValueError("sample_every_n_steps needs sample_prompts")
        return self


class FineTuneRequest(BaseModel):
    """A LoRA fine-tune: a dataset, a trigger word, which trainer, where the result goes.

    ``images``: a folder, a list of image paths, or an existing ``.zip``. ``captions``: maps
    an image's file name or stem to its caption (default: sidecar ``.txt`` files).
    ``trainer``: the name of the provider that trains (``"local"``, ...) or ``"auto"``.
    ``base``: the model to train on, as a model reference (``"local:sd15"``); ``None``: the
    trainer's default. ``destination``: ``"owner/name"`` of the model a cloud trainer pushes
    to (created when missing and ``create_destination`` is true, with ``visibility`` and
    ``hardware``). ``trainer_model`` / ``trainer_version``: the training model a cloud
    trainer runs (``None``: its default). ``extra_inputs`` go to the trainer as they are.
    """

    model_config = ConfigDict(extra="forbid")

    images: Path | list[Path]
    captions: dict[str, str] | None = None
    trigger_word: str = Field("TOK", min_length=1, max_length=64)
    trainer: str = "auto"
    base: str | None = None
    destination: str | None = None
    create_destination: bool = True
    visibility: Literal["public", "private"] = "private"
    hardware: str | None = None  # the destination's listed hardware; None: the trainer's default
    description: str | None = None
    trainer_model: str | None = None
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
    max_hours: float | None = Field(None, gt=0)  # "auto" skips a trainer estimated to take longer
    local: LocalTrainOptions | None = None  # kohya_ss settings for the local trainer

    # -- secrets never reach an error message ---------------------------------------------

    def __init__(self, /, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise masked_validation_error(exc, data) from None

    @classmethod
    def model_validate(cls, obj: Any, *args: Any, **kwargs: Any) -> FineTuneRequest:
        try:
            return super().model_validate(obj, *args, **kwargs)
        except ValidationError as exc:
            raise masked_validation_error(exc, obj) from None

    @classmethod
    def model_validate_json(cls, json_data: Any, *args: Any, **kwargs: Any) -> FineTuneRequest:
        try:
            return super().model_validate_json(json_data, *args, **kwargs)
        except ValidationError as exc:
            import json

            try:
                data = json.loads(json_data)
            except ValueError:
                data = None
            raise masked_validation_error(exc, data) from None

    def __repr_args__(self):  # secret inputs never appear in a repr
        for name, value in super().__repr_args__():
            if name == "extra_inputs":
                value = mask_secrets(value)
            yield name, value

    # -- fields ---------------------------------------------------------------------------

    @model_validator(mode="before")
    @classmethod
    def _trainer_model_in_trainer(cls, data: Any) -> Any:
        """``trainer="owner/name[:version]"`` (the older spelling) means that training model."""
        if isinstance(data, dict) and "/" in str(data.get("trainer") or ""):
            data = dict(data)
            if data.get("trainer_model") not in (None, data["trainer"]):
                raise ValueError("trainer names a training model and so does trainer_model: give one")
            data["trainer_model"], data["trainer"] = data.pop("trainer"), "auto"
        return data

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

    @field_validator("trainer")
    @classmethod
    def _provider_name(cls, value: str) -> str:
        if not _PROVIDER.match(value):
            raise ValueError(f"{value!r} is not a provider name ('auto', 'local', ...)")
        return value

    @field_validator("base")
    @classmethod
    def _model_reference(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must be a model reference such as 'local:sd15', or None")
        return value

    @field_validator("destination")
    @classmethod
    def _owner_name(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(f"{_NAME}/{_NAME}", value):
            raise ValueError(f"{value!r} is not 'owner/name' (letters, digits, '-', '_', '.')")
        return value

    @field_validator("trainer_model")
    @classmethod
    def _trainer_model_name(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(f"{_NAME}/{_NAME}(:[0-9a-f]{{64}})?", value):
            raise ValueError(f"{value!r} is not 'owner/name' or 'owner/name:<64-hex version>'")
        return value

    @field_validator("trainer_version")
    @classmethod
    def _hex_version(cls, value: str | None) -> str | None:
        if value is not None and not _HEX64.match(value):
            raise ValueError("must be a 64-character lowercase hex version id")
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
    def _consistent(self) -> FineTuneRequest:
        if self.trainer_model and ":" in self.trainer_model:
            name, version = self.trainer_model.split(":", 1)
            if self.trainer_version not in (None, version):
                raise ValueError("trainer_version contradicts the version in trainer_model")
            self.trainer_model, self.trainer_version = name, version
        return self

    @model_validator(mode="after")
    def _optimizer_for_local(self) -> FineTuneRequest:
        """An explicitly chosen ``optimizer`` also chooses the local trainer's (kohya names),
        so a local run never silently trains with another one."""
        if "optimizer" in self.model_fields_set and self.optimizer in _KOHYA_OPTIMIZERS:
            local = self.local or LocalTrainOptions.model_validate({})
            if local.optimizer is None:
                self.local = local.model_copy(update={"optimizer": _KOHYA_OPTIMIZERS[self.optimizer]})
        return self

    @field_validator("extra_inputs")
    @classmethod
    def _no_named_inputs(cls, value: dict[str, Any]) -> dict[str, Any]:
        clashes = set(value) & (set(NAMED_INPUTS) | {"input_images"})
        if clashes:
            raise ValueError(f"repeats named fields {sorted(clashes)}: set those fields instead")
        return value

    # -- what trainers read ---------------------------------------------------------------

    @property
    def base_provider(self) -> str | None:
        """The provider named by ``base`` (``"local"`` for ``"local:sd15"``), if any."""
        if self.base and ":" in self.base:
            return self.base.split(":", 1)[0]
        return None

    def named_inputs(self) -> dict[str, Any]:
        """Every common training setting that is set, explicit, so the record says what ran."""
        values = {name: getattr(self, name) for name in NAMED_INPUTS}
        return {k: v for k, v in values.items() if v is not None}

    def secret_inputs(self) -> dict[str, Any]:
        """Trainer inputs that hold credentials (``hf_token``, ``wandb_api_key``, ...)."""
        return {k: v for k, v in self.extra_inputs.items() if is_secret(k, v)}

    def stored_json(self) -> str:
        """The request as the job store keeps it: secret inputs replaced by a marker."""
        data = self.model_dump(mode="json")
        data["extra_inputs"] = mask_secrets(data.get("extra_inputs") or {})
        import json

        return json.dumps(data)


# -- masking ----------------------------------------------------------------------------------

def is_secret(name: Any, value: Any = None) -> bool:
    """A credential by its name (``*token*``, ``*api_key*``, ...) or by its look."""
    return bool(_SECRET_NAME.search(str(name))) or (isinstance(value, str) and bool(_SECRET_VALUE.search(value)))


def mask_secrets(value: Any) -> Any:
    """``value`` with every secret-looking entry (by key or by look) replaced by `REDACTED`."""
    if isinstance(value, dict):
        return {k: REDACTED if is_secret(k, v) and v not in (None, "") else mask_secrets(v)
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(mask_secrets(v) for v in value)
    if isinstance(value, str):
        return _SECRET_VALUE.sub(REDACTED, value)
    return value


def scrub(text: str, secrets: dict[str, Any] | None = None) -> str:
    """``text`` (an error message, a log line) without the given secret values or token-like strings."""
    for value in (secrets or {}).values():
        if isinstance(value, str) and len(value) >= 4:
            text = text.replace(value, REDACTED)
    return _SECRET_VALUE.sub(REDACTED, text)


def _secret_values(data: Any) -> dict[str, Any]:
    found: dict[str, Any] = {}
    if isinstance(data, dict):
        for key, value in data.items():
            if isinstance(value, (dict, list, tuple)):
                found.update({f"{key}.{k}": v for k, v in _secret_values(value).items()})
            elif is_secret(key, value):
                found[str(key)] = value
    elif isinstance(data, (list, tuple)):
        for i, value in enumerate(data):
            found.update({f"{i}.{k}": v for k, v in _secret_values(value).items()})
    return found


def masked_validation_error(exc: ValidationError, data: Any) -> ValidationError:
    """The same errors (fields, types, messages) with every secret input masked."""
    from pydantic_core import InitErrorDetails

    secrets = _secret_values(data)

    def clean(value: Any) -> Any:
        value = mask_secrets(value)
        if isinstance(value, str):
            return scrub(value, secrets)
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(clean(v) for v in value)
        return value

    details: list[InitErrorDetails] = []
    for error in exc.errors():
        ctx = dict(error.get("ctx") or {})
        if isinstance(ctx.get("error"), Exception):
            ctx["error"] = ValueError(scrub(str(ctx["error"]), secrets))
        ctx = {k: scrub(v, secrets) if isinstance(v, str) else v for k, v in ctx.items()}
        detail: InitErrorDetails = {"type": error["type"], "loc": error["loc"], "input": clean(error["input"])}
        if ctx:
            detail["ctx"] = ctx
        details.append(detail)
    return ValidationError.from_exception_data(exc.title, details)
