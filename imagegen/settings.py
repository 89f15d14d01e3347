"""Settings from the environment (and keyword overrides), with secrets kept out of reprs."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """`REPLICATE_API_TOKEN`, `REPLICATE_BASE_URL`, `IMAGEGEN_HOME`, `IMAGEGEN_MODELS_DIR`,
    `IMAGEGEN_DEVICE`. The token is a `SecretStr`: it prints as ``**********``."""

    # case_sensitive: otherwise the field name "home" also matches $HOME (any shell sets it).
    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True, case_sensitive=True)

    replicate_api_token: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("replicate_api_token", "REPLICATE_API_TOKEN"))
    replicate_base_url: str = Field(
        default="https://api.replicate.com",
        validation_alias=AliasChoices("replicate_base_url", "REPLICATE_BASE_URL"))
    home: Path = Field(
        default_factory=lambda: Path(platformdirs.user_data_dir("imagegen")),
        validation_alias=AliasChoices("home", "IMAGEGEN_HOME"))
    models_dir: Path | None = Field(
        default=None, validation_alias=AliasChoices("models_dir", "IMAGEGEN_MODELS_DIR"))
    device: Literal["auto", "cuda", "mps", "cpu"] = Field(
        default="auto", validation_alias=AliasChoices("device", "IMAGEGEN_DEVICE"))
    # the `ray` provider (imagegen[ray]): "auto" (this node's cluster), "ray://host:10001" (Ray
    # Client) or "local" (start Ray here); unset: no pool. Workers: GPUs in the cluster by default.
    ray_address: str | None = Field(
        default=None, validation_alias=AliasChoices("ray_address", "IMAGEGEN_RAY_ADDRESS"))
    ray_workers: int | None = Field(
        default=None, ge=1, validation_alias=AliasChoices("ray_workers", "IMAGEGEN_RAY_WORKERS"))

    def token(self) -> str | None:
        return self.replicate_api_token.get_secret_value() if self.replicate_api_token else None
