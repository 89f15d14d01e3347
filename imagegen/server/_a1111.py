"""AUTOMATIC1111's WebUI API (1.10): ``/sdapi/v1/txt2img``, ``/img2img`` and the listings
and controls WebUI clients call (sd-models, samplers, schedulers, loras, options, progress,
interrupt, png-info).

Payload fields, their defaults and the response bodies follow WebUI 1.10's
`modules/api/models.py` and `api.py`: unknown fields are ignored as WebUI ignores them, `info`
is the JSON string of `Processed.js()`. Where this server differs it says so: an unknown
sampler or schedule type is refused (400 "Sampler not found") rather than silently replaced by
the default, since the router would otherwise pick a model for a request nobody made.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..prompt.infotext import infotext_from_request, parse_infotext
from ..request import ControlNetUnit, GenerateRequest, HiresFix, ImageInput
from ..samplers import SAMPLERS, SCHEDULE_TYPES, split_sampler
from ._security import Refusal
from ._state import Job, ServerState, refusal_from

# Router aliases offered as pseudo-checkpoints, so a WebUI client can pick "let the router decide".
ROUTER_CHECKPOINTS = {"auto": None, "cheapest": "cost", "best": "quality", "fastest": "speed",
                      "balanced": "balanced"}
# WebUI 1.10 modules/sd_schedulers.py: (name, label, aliases, default_rho, need_inner_model)
SCHEDULERS = (
    ("automatic", "Automatic", None, None, False),
    ("uniform", "Uniform", None, None, True),
    ("karras", "Karras", None, 7.0, False),
    ("exponential", "Exponential", None, None, False),
    ("polyexponential", "Polyexponential", None, 1.0, False),
    ("sgm_uniform", "SGM Uniform", ["SGMUniform"], None, True),
    ("kl_optimal", "KL Optimal", None, None, False),
    ("align_your_steps", "Align Your Steps", None, None, False),
    ("simple", "Simple", None, None, True),
    ("normal", "Normal", None, None, True),
    ("ddim", "DDIM", None, None, True),
    ("beta", "Beta", None, None, True),
)
UPSCALERS = ("None", "Lanczos", "Nearest")
LATENT_UPSCALE_MODES = ("Latent", "Latent (antialiased)", "Latent (bicubic)", "Latent (bicubic antialiased)",
                        "Latent (nearest)", "Latent (nearest-exact)")
LORA_DIRS = ("Lora", "loras", "LoRA", "lora")
VAE_DIRS = ("VAE", "vae")
WEIGHT_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin")
DEFAULT_OPTIONS: dict[str, Any] = {"sd_model_checkpoint": "auto", "sd_checkpoint_hash": None,
                                   "CLIP_stop_at_last_layers": 1, "sd_vae": "Automatic", "samples_format": "png",
                                   "eta_noise_seed_delta": 0, "sd_checkpoint_cache": 0}
_IGNORED_SETTINGS_NOTE = "setting {name!r} in override_settings is not applied by this server"


class _Processing(BaseModel):
    """Fields every WebUI 1.10 processing payload has (StableDiffusionProcessing + API extras)."""

    model_config = ConfigDict(extra="ignore")  # as WebUI's generated models: unknown keys dropped

    prompt: str | None = ""
    negative_prompt: str | None = ""
    styles: list[str] | None = None
    seed: int | None = -1
    subseed: int | None = -1
    subseed_strength: float | None = 0
    seed_resize_from_h: int | None = -1
    seed_resize_from_w: int | None = -1
    sampler_name: str | None = None
    scheduler: str | None = None
    batch_size: int | None = 1
    n_iter: int | None = 1
    steps: int | None = 50
    cfg_scale: float | None = 7.0
    width: int | None = 512
    height: int | None = 512
    restore_faces: bool | None = None
    tiling: bool | None = None
    do_not_save_samples: bool | None = False
    do_not_save_grid: bool | None = False
    eta: float | None = None
    denoising_strength: float | None = None
    s_min_uncond: float | None = None
    s_churn: float | None = None
    s_tmax: float | None = None
    s_tmin: float | None = None
    s_noise: float | None = None
    override_settings: dict[str, Any] | None = None
    override_settings_restore_afterwards: bool | None = True
    refiner_checkpoint: str | None = None
    refiner_switch_at: float | None = None
    disable_extra_networks: bool | None = False
    firstpass_image: str | None = None
    comments: dict[str, Any] | None = None
    sampler_index: str | None = "Euler"
    script_name: str | None = None
    script_args: list[Any] | None = Field(default_factory=list)
    send_images: bool | None = True
    save_images: bool | None = False
    alwayson_scripts: dict[str, Any] | None = Field(default_factory=dict)
    force_task_id: str | None = None
    infotext: str | None = None


class Txt2ImgPayload(_Processing):
    enable_hr: bool | None = False
    firstphase_width: int | None = 0
    firstphase_height: int | None = 0
    hr_scale: float | None = 2.0
    hr_upscaler: str | None = None
    hr_second_pass_steps: int | None = 0
    hr_resize_x: int | None = 0
    hr_resize_y: int | None = 0
    hr_checkpoint_name: str | None = None
    hr_sampler_name: str | None = None
    hr_scheduler: str | None = None
    hr_prompt: str | None = ""
    hr_negative_prompt: str | None = ""


class Img2ImgPayload(_Processing):
    init_images: list[str] | None = None
    resize_mode: int | None = 0
    image_cfg_scale: float | None = None
    mask: str | None = None
    mask_blur_x: int | None = 4
    mask_blur_y: int | None = 4
    mask_blur: int | None = None
    mask_round: bool | None = True
    inpainting_fill: int | None = 0
    inpaint_full_res: bool | None = True
    inpaint_full_res_padding: int | None = 0
    inpainting_mask_invert: int | None = 0
    initial_noise_multiplier: float | None = None
    latent_mask: str | None = None
    denoising_strength: float | None = 0.75
    include_init_images: bool | None = False


class PngInfoPayload(BaseModel):
    image: str


# GenerateRequest field -> the WebUI payload field a validation error should name
_FIELD_NAMES = {"batch_count": "n_iter", "variation_seed": "subseed", "variation_strength": "subseed_strength",
                "sampler": "sampler_name", "init_image": "init_images", "mask_image": "mask",
                "hires": "hr_scale", "clip_skip": "override_settings", "model": "override_settings"}


def router(state: ServerState) -> APIRouter:
    async def authenticated(request: Request) -> None:  # async: no thread hop per request
        request.state.key_id = state.authenticate(request)

    api = APIRouter(prefix="/sdapi/v1", dependencies=[Depends(authenticated)])

    @api.post("/txt2img")
    async def txt2img(request: Request) -> Response:
        return await _run(state, request, await _payload(request, Txt2ImgPayload), "txt2img")

    @api.post("/img2img")
    async def img2img(request: Request) -> Response:
        return await _run(state, request, await _payload(request, Img2ImgPayload), "img2img")

    @api.get("/sd-models")
    async def sd_models() -> list[dict[str, Any]]:
        rows = [{"title": name, "model_name": name, "hash": None, "sha256": None,
                 "filename": f"router:{strategy or 'policy'}", "config": None}
                for name, strategy in ROUTER_CHECKPOINTS.items()]
        rows += [{"title": card.id, "model_name": card.display_name or card.model, "hash": None, "sha256": None,
                  "filename": card.id, "config": None} for card in state.models()]
        return rows

    @api.get("/samplers")
    async def samplers() -> list[dict[str, Any]]:
        return [{"name": label, "aliases": list(aliases), "options": {"scheduler": default.lower()}
                 if default != "Uniform" else {}} for label, (aliases, default) in SAMPLERS.items()]

    @api.get("/schedulers")
    async def schedulers() -> list[dict[str, Any]]:
        return [{"name": n, "label": label, "aliases": aliases, "default_rho": rho, "need_inner_model": inner}
                for n, label, aliases, rho, inner in SCHEDULERS]

    @api.get("/upscalers")
    async def upscalers() -> list[dict[str, Any]]:
        return [{"name": n, "model_name": None, "model_path": None, "model_url": None, "scale": 4 if n != "None" else 1}
                for n in UPSCALERS]

    @api.get("/latent-upscale-modes")
    async def latent_upscale_modes() -> list[dict[str, str]]:
        return [{"name": n} for n in LATENT_UPSCALE_MODES]

    @api.get("/loras")
    async def loras() -> list[dict[str, Any]]:
        return [{"name": p.stem, "alias": p.stem, "path": rel, "metadata": {}}
                for p, rel in _files(state, LORA_DIRS)]

    @api.get("/sd-vae")
    async def sd_vae() -> list[dict[str, str]]:
        return [{"model_name": p.name, "filename": rel} for p, rel in _files(state, VAE_DIRS)]

    @api.get("/scripts")
    async def scripts() -> dict[str, list[str]]:
        return {"txt2img": ["controlnet"], "img2img": ["controlnet"]}

    @api.get("/script-info")
    async def script_info() -> list[Any]:
        return []

    @api.get("/prompt-styles")
    async def prompt_styles() -> list[Any]:
        return []

    @api.get("/embeddings")
    async def embeddings() -> dict[str, Any]:
        return {"loaded": {}, "skipped": {}}

    @api.post("/refresh-checkpoints")
    async def refresh_checkpoints() -> None:
        state._models_cache = (0.0, [])

    @api.post("/refresh-loras")
    async def refresh_loras() -> None:
        return None

    @api.get("/options")
    async def get_options(request: Request) -> dict[str, Any]:
        return dict(_options(state, request))

    @api.post("/options")
    async def set_options(body: dict[str, Any], request: Request) -> None:
        options = _options(state, request)
        if "sd_model_checkpoint" in body:
            _checkpoint(state, body["sd_model_checkpoint"])  # refuses an unknown one
        if "CLIP_stop_at_last_layers" in body:
            value = body["CLIP_stop_at_last_layers"]
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 12:
                raise RequestValidationError([{"loc": ("body", "CLIP_stop_at_last_layers"),
                                               "msg": "must be an integer from 1 to 12", "type": "value_error"}])
        options.update(body)

    @api.get("/progress")
    async def progress(request: Request) -> dict[str, Any]:
        job = state.current_job(request.state.key_id)
        return _progress(job)

    @api.post("/interrupt")
    async def interrupt(request: Request) -> dict[str, Any]:
        state.interrupt(request.state.key_id)
        return {}

    @api.post("/skip")
    async def skip(request: Request) -> None:
        state.interrupt(request.state.key_id)  # one job per request here: skipping it stops it

    @api.post("/png-info")
    async def png_info(payload: PngInfoPayload) -> dict[str, Any]:
        from PIL import Image

        from ..result import read_infotext

        data = _decode_image(state, payload.image.strip(), "image")
        text = read_infotext(data) or ""
        with Image.open(io.BytesIO(data)) as image:
            items = {k: v for k, v in image.info.items() if isinstance(k, str) and isinstance(v, str)
                     and k != "parameters"}
        return {"info": text, "items": items, "parameters": dict(parse_infotext(text)) if text else {}}

    return api


# -- txt2img / img2img ----------------------------------------------------------------------------

async def _payload(request: Request, model: type[_Processing]) -> Any:
    """The body, validated as FastAPI would (422 naming the field), read by hand so the
    image-sized JSON is parsed once, by pydantic, without FastAPI's generic body machinery."""
    body = await request.body()
    try:
        return model.model_validate_json(body or b"{}")
    except ValidationError as exc:
        raise RequestValidationError([{"loc": ("body", *e["loc"]), "msg": e["msg"], "type": e["type"]}
                                      for e in exc.errors()]) from None


async def _run(state: ServerState, request: Request, payload: _Processing, kind: str) -> Response:
    key_id = request.state.key_id
    try:
        gen_request, strategy, warnings, title = _to_request(state, request, payload, kind)
    except ValidationError as exc:
        raise _invalid(exc) from None
    policy = state.gen.policy.model_copy(update={"strategy": strategy}) if strategy else None
    scale = gen_request.hires.scale if gen_request.hires and not gen_request.hires.resize_width else 1.0
    try:
        result, job = await state.generate(gen_request, key_id=key_id, kind=kind, policy=policy,
                                           task_id=payload.force_task_id, hires_scale=scale)
    except Exception as exc:
        raise refusal_from(exc, model_param="override_settings.sd_model_checkpoint") from None
    parameters = payload.model_dump()
    if isinstance(payload, Img2ImgPayload) and not payload.include_init_images:
        parameters["init_images"] = None
        parameters["mask"] = None
    parameters.pop("include_init_images", None)
    images = [] if result is None or not payload.send_images else \
        [base64.b64encode(image.data).decode() for image in result.images]
    info = _info(gen_request, payload, result, job, warnings, title)
    body = {"images": images, "parameters": parameters, "info": json.dumps(info, default=lambda o: None)}
    return Response(json.dumps(body), media_type="application/json")  # already plain JSON: no re-encoding


def _to_request(state: ServerState, request: Request, p: _Processing,
                kind: str) -> tuple[GenerateRequest, str | None, list[str], str]:
    """A WebUI payload -> (GenerateRequest, router strategy or None, warnings, checkpoint title)."""
    warnings: list[str] = []
    given = p.model_fields_set
    options = _options(state, request)
    overrides = dict(p.override_settings or {})
    fields: dict[str, Any] = {}
    if p.infotext:  # WebUI: infotext fills what the payload leaves unset
        fields = GenerateRequest.from_infotext(p.infotext).model_dump(exclude_unset=True)

    def use(name: str) -> bool:
        return name in given or not p.infotext

    if not (p.prompt or "").strip() and "prompt" not in fields:
        raise RequestValidationError([{"loc": ("body", "prompt"), "msg": "this server needs a non-empty prompt",
                                       "type": "value_error"}])
    if use("prompt") and (p.prompt or "").strip():
        fields["prompt"] = p.prompt
    if use("negative_prompt"):
        fields["negative_prompt"] = p.negative_prompt or ""
    if use("seed"):
        fields["seed"] = None if p.seed in (None, -1) else p.seed
    if use("subseed_strength") and p.subseed_strength:
        fields["variation_strength"] = p.subseed_strength
        fields["variation_seed"] = None if p.subseed in (None, -1) else p.subseed
    if use("sampler_name") or use("sampler_index"):
        name = p.sampler_name or p.sampler_index or "Euler"
        try:
            split_sampler(name)
        except ValueError:
            raise Refusal(400, "Sampler not found", code="sampler_not_found", param="sampler_name") from None
        fields["sampler"] = name
    if use("scheduler"):
        fields["scheduler"] = _schedule_label(p.scheduler)
    for ours, theirs in (("batch_size", "batch_size"), ("batch_count", "n_iter"), ("steps", "steps"),
                         ("cfg_scale", "cfg_scale")):
        value = getattr(p, theirs)
        if use(theirs) and value is not None:
            fields[ours] = value
    for side in ("width", "height"):
        value = getattr(p, side)
        if use(side) and value is not None:
            fields[side] = value - value % 8 if value >= 64 else value  # WebUI's latents are size // 8
            if value % 8:
                warnings.append(f"{side} {value} rounded down to {fields[side]} (a multiple of 8)")

    title, strategy = _checkpoint(state, overrides.get("sd_model_checkpoint", options.get("sd_model_checkpoint")))
    if strategy is None and title not in ROUTER_CHECKPOINTS:
        fields["model"] = title
    elif "model" in fields and "sd_model_checkpoint" not in overrides:
        del fields["model"]  # an infotext's Model names a WebUI checkpoint, not one of ours
    clip = overrides.get("CLIP_stop_at_last_layers", options.get("CLIP_stop_at_last_layers"))
    if clip is not None and ("CLIP_stop_at_last_layers" in overrides or not p.infotext):
        fields["clip_skip"] = None if int(clip) <= 1 else int(clip)
    vae = overrides.get("sd_vae", options.get("sd_vae"))
    fields["vae"] = None if vae in (None, "Automatic", "None", "") else vae
    fmt = str(overrides.get("samples_format", options.get("samples_format", "png"))).lower()
    fields["output_format"] = {"jpg": "jpeg"}.get(fmt, fmt) if fmt in ("png", "jpg", "jpeg", "webp") else "png"
    for name in overrides:
        if name not in ("sd_model_checkpoint", "CLIP_stop_at_last_layers", "sd_vae", "samples_format"):
            warnings.append(_IGNORED_SETTINGS_NOTE.format(name=name))

    if p.styles:
        warnings.append("styles are not applied by this server")
    if p.restore_faces:
        warnings.append("restore_faces is not supported; faces were not restored")
    if p.tiling:
        warnings.append("tiling is not supported; the image does not tile")
    if p.refiner_checkpoint:
        warnings.append("refiner_checkpoint is not supported; no refiner pass was made")
    if p.script_name:
        raise Refusal(422, f"Script '{p.script_name}' not found", code="script_not_found")

    if isinstance(p, Txt2ImgPayload):
        if p.enable_hr:
            fields["hires"] = HiresFix(
                scale=p.hr_scale if p.hr_scale is not None else 2.0, upscaler=p.hr_upscaler or "Latent",
                steps=p.hr_second_pass_steps or 0,
                denoising_strength=p.denoising_strength if p.denoising_strength is not None else 0.7,
                resize_width=p.hr_resize_x or None, resize_height=p.hr_resize_y or None)
            for name in ("hr_checkpoint_name", "hr_sampler_name", "hr_scheduler", "hr_prompt", "hr_negative_prompt"):
                if getattr(p, name) and getattr(p, name) not in ("Use same checkpoint", "Use same sampler",
                                                                  "Use same scheduler"):
                    warnings.append(f"{name} is not supported; the second pass uses the first pass's")
            if p.hr_resize_x or p.hr_resize_y:
                state.guard.check_size(p.hr_resize_x or fields.get("width"), p.hr_resize_y or fields.get("height"),
                                       1, param="hr_resize_x")
    else:
        assert isinstance(p, Img2ImgPayload)
        if not p.init_images:
            raise Refusal(404, "Init image not found", code="init_image_missing", param="init_images")
        fields["init_image"] = _decode_image(state, p.init_images[0], "init_images")
        if len(p.init_images) > 1:
            warnings.append("only the first of init_images is used")
        if p.mask:
            mask = _decode_image(state, p.mask, "mask")
            fields["mask_image"] = _inverted(mask) if p.inpainting_mask_invert else mask
        fields["denoising_strength"] = p.denoising_strength if p.denoising_strength is not None else 0.75
    fields["controlnets"] = _controlnets(state, p, fields.get("init_image"))
    return GenerateRequest.model_validate(fields), strategy, warnings, title


def _controlnets(state: ServerState, p: _Processing, init_image: bytes | None) -> list[ControlNetUnit]:
    units: list[ControlNetUnit] = []
    for name, script in (p.alwayson_scripts or {}).items():
        if name.lower() != "controlnet":
            raise Refusal(422, f"always on script {name} not found", code="script_not_found")
        args = script.get("args", []) if isinstance(script, dict) else []
        for index, unit in enumerate(args):
            if not isinstance(unit, dict) or not unit.get("enabled", True):
                continue
            model = unit.get("model")
            if not model or model == "None":
                continue
            image = unit.get("image") or unit.get("input_image")
            if isinstance(image, dict):
                image = image.get("image")
            data = _decode_image(state, image, f"alwayson_scripts.controlnet.args.{index}.image") if image else init_image
            if data is None:
                raise Refusal(422, f"ControlNet unit {index} has no image", code="controlnet_image_missing")
            units.append(ControlNetUnit(
                model=model, image=ImageInput(data=data), weight=unit.get("weight", 1.0),
                guidance_start=unit.get("guidance_start", 0.0), guidance_end=unit.get("guidance_end", 1.0)))
    return units


def _schedule_label(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    key = value.strip().lower()
    for name, label, aliases, _rho, _inner in SCHEDULERS:
        if key in (name, label.lower(), *(a.lower() for a in aliases or ())):
            return None if label == "Automatic" else label
    if value in SCHEDULE_TYPES:
        return value
    raise Refusal(400, "Scheduler not found", code="scheduler_not_found", param="scheduler")


def _checkpoint(state: ServerState, name: Any) -> tuple[str, str | None]:
    """A checkpoint title -> (card id or router alias, strategy or None); 404 when unknown."""
    if name is None or name == "":
        return "auto", None
    name = str(name).strip()
    bare = name.split(" [", 1)[0]  # WebUI titles may carry " [hash]"
    if bare in ROUTER_CHECKPOINTS:
        return bare, ROUTER_CHECKPOINTS[bare]
    for card in state.models():
        if bare in (card.id, card.model, card.display_name):
            return card.id, None
    try:
        return state.resolve_model(bare, param="override_settings.sd_model_checkpoint"), None
    except Refusal:
        raise Refusal(404, "Model not found", code="model_not_found",
                      param="override_settings.sd_model_checkpoint") from None


def _decode_image(state: ServerState, encoding: Any, param: str) -> bytes:
    """WebUI's `decode_base64_to_image`: raw base64 or a data URL (URLs are not fetched here)."""
    from PIL import Image, UnidentifiedImageError

    if not isinstance(encoding, str):
        raise Refusal(400, "Invalid encoded image", code="invalid_image", param=param)
    if encoding.startswith(("http://", "https://")):
        raise Refusal(400, "Requests not allowed: send images as base64", code="invalid_image", param=param)
    if encoding.startswith("data:image/"):
        encoding = encoding.split(",", 1)[-1]
    try:
        data = base64.b64decode(encoding, validate=False)
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
    except (binascii.Error, ValueError, UnidentifiedImageError, OSError):
        raise Refusal(400, "Invalid encoded image", code="invalid_image", param=param) from None
    state.guard.check_size(width, height, 1, param=param)
    return data


def _inverted(mask: bytes) -> bytes:
    from PIL import Image, ImageOps

    with Image.open(io.BytesIO(mask)) as image:
        buffer = io.BytesIO()
        ImageOps.invert(image.convert("L")).save(buffer, format="PNG")
    return buffer.getvalue()


def _invalid(exc: ValidationError) -> RequestValidationError:
    """A GenerateRequest error, named by the WebUI field, in FastAPI's 422 shape."""
    errors = []
    for e in exc.errors():
        loc = [str(part) for part in e["loc"]]
        if loc:
            loc[0] = _FIELD_NAMES.get(loc[0], loc[0])
        errors.append({"loc": ("body", *loc), "msg": e["msg"].removeprefix("Value error, "), "type": e["type"]})
    return RequestValidationError(errors)


# -- responses --------------------------------------------------------------------------------------

_STANDARD_KEYS = {"Prompt", "Negative prompt", "Steps", "Sampler", "CFG scale", "Seed", "Size-1", "Size-2",
                  "Model hash", "Model", "VAE hash", "VAE", "Denoising strength", "Version", "Clip skip",
                  "Variation seed", "Variation seed strength", "Seed resize from-1", "Seed resize from-2"}


def _info(request: GenerateRequest, p: _Processing, result: Any, job: Job, warnings: list[str],
          title: str) -> dict[str, Any]:
    """`Processed.js()` of WebUI 1.10, from the result (its infotexts come from the images)."""
    from .. import __version__

    images = result.images if result is not None else []
    seeds = [image.seed for image in images] or [request.seed if request.seed is not None else -1]
    variation = request.variation_strength > 0
    subseed = request.variation_seed if variation and request.variation_seed is not None else (
        p.subseed if p.subseed not in (None, -1) else seeds[0])
    width, height = (images[0].width, images[0].height) if images else request.size()
    label, _legacy = split_sampler(request.sampler) if request.sampler else ("Euler", None)
    infotexts = [image.infotext or infotext_from_request(request, seed=image.seed, width=image.width,
                                                        height=image.height, model_name=title)
                 for image in images]
    parsed = parse_infotext(infotexts[0]) if infotexts else {}
    count = len(images) or request.image_count
    return {
        "prompt": request.prompt, "all_prompts": [request.prompt] * count,
        "negative_prompt": request.negative_prompt, "all_negative_prompts": [request.negative_prompt] * count,
        "seed": seeds[0], "all_seeds": seeds,
        "subseed": subseed, "all_subseeds": [subseed + i for i in range(count)],  # WebUI: subseed + i, always
        "subseed_strength": request.variation_strength,
        "width": width, "height": height, "sampler_name": label,
        "cfg_scale": request.cfg_scale, "steps": request.steps, "batch_size": request.batch_size,
        "restore_faces": bool(p.restore_faces), "face_restoration_model": None,
        "sd_model_name": parsed.get("Model") or (result.model if result is not None else title),
        "sd_model_hash": parsed.get("Model hash"), "sd_vae_name": parsed.get("VAE"),
        "sd_vae_hash": parsed.get("VAE hash"),
        "seed_resize_from_w": -1, "seed_resize_from_h": -1,
        "denoising_strength": request.hires.denoising_strength if request.hires else request.denoising_strength,
        "extra_generation_params": {k: v for k, v in parsed.items()
                                    if k not in _STANDARD_KEYS and k not in getattr(parsed, "defaults_added", ())},
        "index_of_first_image": 0, "infotexts": infotexts, "styles": list(p.styles or []),
        "job_timestamp": job.timestamp, "clip_skip": request.clip_skip or 1,
        "is_using_inpainting_conditioning": False,
        "version": parsed.get("Version") or f"imagegen {__version__}",
        # Not in WebUI's object: what the router did. WebUI clients ignore keys they do not know.
        "imagegen": {"model": result.model if result is not None else None,
                     "provider": result.provider if result is not None else None,
                     "cost_usd": result.cost_usd if result is not None else 0.0,
                     "warnings": list(dict.fromkeys(warnings + (list(result.warnings) if result is not None else []))),
                     "interrupted": result is None},
    }


def _progress(job: Job | None) -> dict[str, Any]:
    import time

    if job is None:
        state = {"skipped": False, "interrupted": False, "stopping_generation": False, "job": "",
                 "job_count": 0, "job_timestamp": "0", "job_no": 0, "sampling_step": 0, "sampling_steps": 0}
        return {"progress": 0, "eta_relative": 0, "state": state, "current_image": None, "textinfo": None,
                "current_task": None}
    batches = max(1, -(-job.images // max(1, job.batch_size)))
    fraction = job.fraction()
    elapsed = time.time() - job.started
    state = {"skipped": False, "interrupted": job.interrupted, "stopping_generation": False,
             "job": f"scripts_{job.kind}" if job.kind in ("txt2img", "img2img") else job.kind,
             "job_count": batches, "job_timestamp": job.timestamp, "job_no": job.image_no // max(1, job.batch_size),
             "sampling_step": job.step, "sampling_steps": job.steps}
    return {"progress": fraction, "eta_relative": elapsed / fraction - elapsed, "state": state,
            "current_image": None, "textinfo": None, "current_task": job.task_id}


def _options(state: ServerState, request: Request) -> dict[str, Any]:
    return state.options.setdefault(request.state.key_id, dict(DEFAULT_OPTIONS))


def _files(state: ServerState, folders: tuple[str, ...]) -> list[tuple[Path, str]]:
    root = state.gen.settings.models_dir
    if root is None:
        return []
    found = []
    for folder in folders:
        base = Path(root) / folder
        if base.is_dir():
            found += [(p, str(p.relative_to(root))) for p in sorted(base.rglob("*"))
                      if p.suffix.lower() in WEIGHT_SUFFIXES and p.is_file()]
    return found
