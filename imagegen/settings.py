"""Settings from the environment (and keyword overrides), with secrets kept out of reprs."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import platformdirs
from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

#: Where Replicate serves prediction outputs and trained weights (research note §3.3: HTTPS URLs
#: on replicate.delivery or its subdomains).
REPLICATE_DELIVERY_HOSTS = ("replicate.delivery", "*.replicate.delivery")
_HOST = re.compile(r"^(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*(:\d{1,5})?$")


class Settings(BaseSettings):
    """`REPLICATE_API_TOKEN`, `REPLICATE_BASE_URL`, `IMAGEGEN_HOME`, `IMAGEGEN_MODELS_DIR`,
    `IMAGEGEN_DEVICE`, `IMAGEGEN_OUTPUT_HOSTS`. The token is a `SecretStr`: it prints as
    ``**********``.

    `REPLICATE_BASE_URL` must be an ``http://`` or ``https://`` URL with a host (the API root,
    without ``/v1``). `IMAGEGEN_OUTPUT_HOSTS` (comma-separated) lists the hosts prediction outputs
    and trained weights may be downloaded from over https; ``*.example.com`` allows subdomains.
    Besides these, only ``data:`` URLs and the API host itself are fetched (never with the token).
    """

    # case_sensitive: otherwise the field name "home" also matches $HOME (any shell sets it).
    # hide_input_in_errors: a rejected value (a URL with credentials, a token) is never echoed.
    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True, case_sensitive=True,
                                      hide_input_in_errors=True)

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
    replicate_output_hosts: Annotated[tuple[str, ...], NoDecode] = Field(
        default=REPLICATE_DELIVERY_HOSTS,
        validation_alias=AliasChoices("replicate_output_hosts", "IMAGEGEN_OUTPUT_HOSTS"))

    @field_validator("replicate_base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        value = value.strip()
        parts = urlsplit(value)
        shown = "a URL with credentials" if "@" in value else repr(value[:200])
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"REPLICATE_BASE_URL must be an http:// or https:// URL with a host, "
                             f"such as https://api.replicate.com (got {shown})")
        if parts.query or parts.fragment or parts.username or parts.password:
            raise ValueError("REPLICATE_BASE_URL must not carry a query, a fragment or "
                             "credentials (the token goes in REPLICATE_API_TOKEN)")
        try:
            parts.port  # noqa: B018 - raises on a port out of range
        except ValueError:
            raise ValueError(f"REPLICATE_BASE_URL has an invalid port (got {shown})") from None
        return value.rstrip("/")

    @field_validator("replicate_output_hosts", mode="before")
    @classmethod
    def _output_hosts(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [part for part in (p.strip() for p in value.split(",")) if part]
        if isinstance(value, (list, tuple)):
            hosts = []
            for host in value:
                text = str(host).strip().lower()
                if not _HOST.match(text):
                    raise ValueError(f"IMAGEGEN_OUTPUT_HOSTS: {str(host)[:100]!r} is not a host "
                                     "name (or *.domain)")
                hosts.append(text)
            return tuple(hosts)
        return value
    # the `ray` provider (imagegen[ray]): "auto" (this node's cluster), "ray://host:10001" (Ray
    # Client) or "local" (start Ray here); unset: no pool. Workers: GPUs in the cluster by default.
    ray_address: str | None = Field(
        default=None, validation_alias=AliasChoices("ray_address", "IMAGEGEN_RAY_ADDRESS"))
    ray_workers: int | None = Field(
        default=None, ge=1, validation_alias=AliasChoices("ray_workers", "IMAGEGEN_RAY_WORKERS"))

    def token(self) -> str | None:
        return self.replicate_api_token.get_secret_value() if self.replicate_api_token else None
