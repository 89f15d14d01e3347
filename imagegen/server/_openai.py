"""The OpenAI Images API: ``POST /v1/images/generations`` and ``/v1/images/edits``.

Request and response bodies follow the official clients. Our own request fields (``seed``,
``negative_prompt``, ``steps``...) ride along as extra body fields. ``model`` is a model id
(``replicate:black-forest-labs/flux-schnell``, ``local:demo``) or a routing alias:
``auto`` (the server's policy), ``cheapest``, ``best``, ``fastest``, ``balanced``; OpenAI's
own model names (``gpt-image-*``, ``dall-e-*``) mean ``auto``.
"""

from __future__ import annotations

import base64
import io
import json
import re
import time
from typing import Any, Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..request import GenerateRequest
from ._security import Refusal
from ._state import ServerState, refusal_from

ALIASES: dict[str, str | None] = {"auto": None, "default": None, "cheapest": "cost", "best": "quality",
                                  "fastest": "speed", "balanced": "balanced"}
OPENAI_MODEL_PREFIXES = ("gpt-image", "dall-e", "chatgpt-image")
# `quality` steers the router when the model is left to it; "auto"/"standard" keep the policy.
QUALITY_STRATEGY = {"low": "speed", "medium": "balanced", "high": "quality", "hd": "quality"}
# Request fields a client may not set as extra body: the API's own parameters stand for them,
# and raw provider options could point a provider at any URL.
NOT_EXTRA = frozenset({"prompt", "model", "batch_size", "batch_count", "init_image", "mask_image",
                       "output_format", "provider_options"})
_SIZE = re.compile(r"^\s*(\d{1,5})\s*[xX]\s*(\d{1,5})\s*$")


class _Params(BaseModel):
    """OpenAI's own parameters (both endpoints). Validated strictly for JSON bodies."""

    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(min_length=1)
    model: str | None = None
    n: int | None = Field(default=None, ge=1)
    size: str | None = None
    quality: Literal["low", "medium", "high", "auto", "standard", "hd"] | None = None
    response_format: Literal["url", "b64_json"] | None = None
    output_format: Literal["png", "jpeg", "webp"] | None = None
    output_compression: int | None = Field(default=None, ge=0, le=100)
    background: Literal["transparent", "opaque", "auto"] | None = None
    moderation: Literal["low", "auto"] | None = None
    style: Literal["vivid", "natural"] | None = None
    user: str | None = None
    safety_identifier: str | None = None
    stream: bool | None = None
    partial_images: int | None = Field(default=None, ge=0, le=3)
    input_fidelity: Literal["high", "low"] | None = None  # edits


def router(state: ServerState) -> APIRouter:
    api = APIRouter()

    @api.post("/v1/images/generations")
    async def generations(request: Request) -> Response:
        key_id = state.authenticate(request)
        try:
            body = await _json_body(request)
            gen_request, policy, params = _build(state, body, strict=True)
            result, _job = await state.generate(gen_request, key_id=key_id, kind="generations", policy=policy)
        except Exception as exc:
            raise _refusal(exc) from None
        return _json(_respond(state, request, result, params, gen_request))

    @api.post("/v1/images/edits")
    async def edits(request: Request) -> Response:
        key_id = state.authenticate(request)
        try:
            fields, images, mask = await _form_body(state, request)
            extra: dict[str, Any] = {"init_image": images[0]}
            if len(images) > 1:
                if "reference_images" not in GenerateRequest.model_fields:
                    raise Refusal(400, "This server edits one image per request.", code="too_many_images",
                                  param="image")
                extra["reference_images"] = images[1:]
            if mask is not None:
                extra["mask_image"] = _mask_for(mask, images[0])
            gen_request, policy, params = _build(state, fields, strict=False, inputs=extra)
            result, _job = await state.generate(gen_request, key_id=key_id, kind="edits", policy=policy)
        except Exception as exc:
            raise _refusal(exc) from None
        return _json(_respond(state, request, result, params, gen_request))

    @api.get("/v1/images/files/{token}")
    async def image_file(token: str) -> Response:
        stored = state.images.get(token.split(".", 1)[0])
        if stored is None:
            raise Refusal(404, "This image URL has expired or never existed.", code="not_found")
        left = max(0, int(stored.expires_at - time.time()))
        return Response(stored.data, media_type=stored.media_type,
                        headers={"Cache-Control": f"private, max-age={left}"})

    @api.get("/v1/models")
    async def list_models(request: Request) -> dict[str, Any]:
        state.authenticate(request)
        ids = list(ALIASES) + [card.id for card in state.models()]
        return {"object": "list", "data": [{"id": i, "object": "model", "created": 0, "owned_by": "imagegen"}
                                           for i in ids]}

    return api


def _json(body: dict[str, Any]) -> Response:
    """Plain JSON already: written once, without FastAPI's re-encoding of the base64 strings."""
    return Response(json.dumps(body), media_type="application/json")


def _refusal(exc: Exception) -> Refusal:
    refusal = refusal_from(exc)
    return refusal


async def _json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise Refusal(400, "We could not parse the JSON body of your request.", code="invalid_json") from None
    if not isinstance(body, dict):
        raise Refusal(400, "The request body must be a JSON object.", code="invalid_json")
    return body


def _build(state: ServerState, body: dict[str, Any], *, strict: bool,
           inputs: dict[str, Any] | None = None) -> tuple[GenerateRequest, Any, _Params]:
    """OpenAI parameters + extra fields -> (GenerateRequest, policy, the parameters)."""
    ours = {k: v for k, v in body.items() if k in _Params.model_fields}
    extra = {k: v for k, v in body.items() if k not in _Params.model_fields}
    try:
        params = _Params.model_validate(ours, strict=strict)
    except ValidationError as exc:
        raise refusal_from(exc) from None
    if len(params.prompt) > state.limits.max_prompt_chars:
        raise Refusal(400, f"The prompt is longer than {state.limits.max_prompt_chars} characters.",
                      code="string_above_max_length", param="prompt")
    if params.stream:
        raise Refusal(400, "Streaming is not supported by this server.", code="unsupported_value", param="stream")
    if params.background == "transparent":
        raise Refusal(400, "Transparent backgrounds are not supported by this server's models.",
                      code="unsupported_value", param="background")
    for name in extra:
        if name in NOT_EXTRA or name not in GenerateRequest.model_fields:
            raise Refusal(400, f"Unrecognized request argument supplied: {name}", code="unknown_parameter",
                          param=name)
    if not strict:  # multipart fields are text: JSON objects and lists arrive as strings
        extra = {k: _form_value(v) for k, v in extra.items()}

    fields: dict[str, Any] = {**extra, **(inputs or {})}
    if params.output_format:
        fields["output_format"] = params.output_format
    n = params.n or 1
    state.guard.check_size(None, None, n)
    if n > 1:
        fields["batch_size" if n <= 8 else "batch_count"] = n
    size_given = False
    if params.size and params.size != "auto":
        match = _SIZE.match(params.size)
        if not match:
            raise Refusal(400, f"Invalid size {params.size!r}: use WIDTHxHEIGHT (e.g. 1024x1024) or auto.",
                          code="invalid_value", param="size")
        fields["width"], fields["height"] = int(match.group(1)), int(match.group(2))
        size_given = True
        state.guard.check_size(fields["width"], fields["height"], n)

    strategy = None
    if params.model is None or params.model in ALIASES or params.model.startswith(OPENAI_MODEL_PREFIXES):
        strategy = ALIASES.get(params.model or "auto") or QUALITY_STRATEGY.get(params.quality or "")
    else:
        fields["model"] = state.resolve_model(params.model)
    try:
        request = GenerateRequest.from_midjourney(params.prompt, **fields)
    except ValidationError as exc:
        refusal = refusal_from(exc)
        if size_given and refusal.param in ("width", "height"):
            refusal.param = "size"
        raise refusal from None
    if request.model and request.model != fields.get("model"):  # set by the prompt's own parameters
        request = request.model_copy(update={"model": state.resolve_model(request.model)})
    policy = state.gen.policy.model_copy(update={"strategy": strategy}) if strategy else None
    return request, policy, params


def _form_value(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


async def _form_body(state: ServerState, request: Request) -> tuple[dict[str, Any], list[bytes], bytes | None]:
    content_type = request.headers.get("content-type", "")
    if "multipart/form-data" not in content_type:
        raise Refusal(400, "Edits take multipart/form-data with an image file.", code="invalid_request",
                      param="image")
    try:
        form = await request.form(max_files=state.limits.max_images + 1,
                                  max_fields=200, max_part_size=state.limits.max_body_bytes)
    except Exception:
        raise Refusal(400, "We could not parse the multipart body of your request.",
                      code="invalid_multipart") from None
    fields: dict[str, Any] = {}
    images: list[bytes] = []
    mask: bytes | None = None
    for name, value in form.multi_items():
        if hasattr(value, "read"):
            data = await value.read()
            if name in ("image", "image[]"):
                images.append(_checked_image(state, data, "image"))
            elif name == "mask":
                mask = _checked_image(state, data, "mask")
            else:
                raise Refusal(400, f"Unexpected file field {name!r}.", code="unknown_parameter", param=name)
        else:
            fields[name] = value
    if not images:
        raise Refusal(400, "An image to edit is required.", code="missing_required_parameter", param="image")
    if len(images) > state.limits.max_images:
        raise Refusal(400, f"At most {state.limits.max_images} images per request.", code="too_many_images",
                      param="image")
    return fields, images, mask


def _checked_image(state: ServerState, data: bytes, param: str) -> bytes:
    """The bytes, once they are known to be an image within the pixel limit (read headers only)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
    except (UnidentifiedImageError, OSError, ValueError):
        raise Refusal(400, f"The {param} is not an image this server can read (PNG, JPEG or WebP).",
                      code="invalid_image", param=param) from None
    state.guard.check_size(width, height, 1, param=param)
    return data


def _mask_for(mask: bytes, image: bytes) -> bytes:
    """OpenAI masks mark the area to edit as transparent; A1111 and diffusers paint where the
    mask is white. A mask without alpha is taken as already white-means-edit."""
    from PIL import Image

    with Image.open(io.BytesIO(mask)) as m, Image.open(io.BytesIO(image)) as source:
        if m.size != source.size:
            raise Refusal(400, f"The mask is {m.size[0]}x{m.size[1]} but the image is "
                          f"{source.size[0]}x{source.size[1]}; they must match.", code="invalid_value",
                          param="mask")
        if "A" in m.getbands() or "transparency" in m.info:
            alpha = m.convert("RGBA").getchannel("A")
            converted = alpha.point(lambda a: 255 if a == 0 else 0)
        else:
            converted = m.convert("L")
        buffer = io.BytesIO()
        converted.save(buffer, format="PNG")
    return buffer.getvalue()


def _respond(state: ServerState, request: Request, result: Any, params: _Params,
             gen_request: GenerateRequest) -> dict[str, Any]:
    if result is None:
        raise Refusal(499, "The generation was interrupted.", code="interrupted")
    as_url = params.response_format == "url"
    data = []
    base = state.base_url(request)
    for image in result.images:
        item: dict[str, Any] = {"revised_prompt": None}
        if as_url:
            token, _expires = state.images.put(image.data, image.format)
            item["url"] = f"{base}/v1/images/files/{token}.{image.format}"
        else:
            item["b64_json"] = base64.b64encode(image.data).decode()
        data.append(item)
    first = result.images[0] if result.images else None
    body: dict[str, Any] = {"created": int(time.time()), "data": data,
                            "output_format": first.format if first else gen_request.output_format}
    if first is not None:
        body["size"] = f"{first.width}x{first.height}"
    # Our additions, which OpenAI clients keep as extra fields: what ran, for how much, and why.
    body["imagegen"] = {"model": result.model, "provider": result.provider, "cost_usd": result.cost_usd,
                        "seeds": [image.seed for image in result.images], "warnings": result.warnings}
    return body
