"""One local generation on a flow-match model (FLUX.1, FLUX.2, SD 3.5): load, LoRAs, memory mode,
the pipeline calls, infotext.

Seeds follow our rule: image i of a request with seed s uses seed s + i from its own CPU
generator, so an image is the same whatever the batch size and can be remade from its infotext.
Each img2img/inpaint image gets its own copy of the init image, so the VAE's sampling draws from
that image's generator too.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imagegen.errors import ModelLoadError

from ._flow_plan import FLOW_SAMPLER, SPECS, FlowPlan, fit_size

if TYPE_CHECKING:
    from imagegen.result import GenerateResult

    from ..base import Prepared
    from ._model import LoadedModel


def generators(seeds: list[int]) -> list[Any]:
    import torch

    return [torch.Generator("cpu").manual_seed(seed) for seed in seeds]


def call_kwargs(pipe: Any, plan: FlowPlan, seeds: list[int], init: Any = None, mask: Any = None,
                references: list | None = None) -> dict[str, Any]:
    """The diffusers call for ``seeds`` (one batch), exactly as a user of raw diffusers would write it."""
    from ._run import img2img_schedule

    n = len(seeds)
    family = plan.family
    kwargs: dict[str, Any] = {
        "prompt": [plan.prompt] * n, "num_inference_steps": plan.steps, "guidance_scale": plan.guidance,
        "generator": generators(seeds), "max_sequence_length": plan.max_sequence_length,
    }
    if not (family == "sd3" and plan.kind == "img2img"):  # SD3 img2img takes the init image's size
        kwargs.update(width=plan.width, height=plan.height)
    if family == "flux-kontext":  # Kontext rescales any size to max_area (default 1 MP) unless told,
        kwargs["max_area"] = plan.width * plan.height  # and its image to a preferred size
        if plan.kind != "txt2img":
            kwargs["_auto_resize"] = False
    if plan.true_cfg is not None:
        kwargs.update(true_cfg_scale=plan.true_cfg, negative_prompt=[plan.negative or ""] * n)
    elif family == "sd3":
        kwargs["negative_prompt"] = [plan.negative or ""] * n
    elif family == "flux2-klein-base" and plan.negative and plan.guidance > 1:
        embeds, _ = pipe.encode_prompt(prompt=[plan.negative] * n, device=pipe._execution_device,
                                       max_sequence_length=plan.max_sequence_length)
        kwargs["negative_prompt_embeds"] = embeds
    if plan.kind in ("img2img", "inpaint"):
        kwargs.update(image=[init] * n, strength=img2img_schedule(plan.steps, plan.denoise)[1])
        if plan.kind == "inpaint":
            kwargs["mask_image"] = [mask] * n
    elif plan.kind == "edit":
        if family == "flux-kontext":
            kwargs["image"] = init
        else:  # FLUX.2: the init image is the first reference
            images = [image for image in (init, *(references or [])) if image is not None]
            kwargs["image"] = images if len(images) > 1 else images[0]
    return kwargs


def run_flow(model: LoadedModel, plan: FlowPlan, init: Any = None, mask: Any = None, references: list | None = None,
             progress: Callable | None = None) -> tuple[list, float]:
    """(PIL images, one per seed; seconds inside the pipeline calls)."""
    from ..base import Progress

    pipe = model.pipeline(plan.kind)
    images: list = []
    spent = 0.0
    for start in range(0, len(plan.seeds), plan.batch_size):
        seeds = plan.seeds[start : start + plan.batch_size]

        def on_step_end(pipeline: Any, index: int, timestep: Any, tensors: dict, offset: int = start) -> dict:
            if progress is not None:
                progress(Progress(stage="step", step=index + 1, total=pipeline.num_timesteps, image_index=offset))
            return {}

        kwargs = call_kwargs(pipe, plan, seeds, init, mask, references)
        if progress is not None:  # without a listener, no per-step hook (diffusers gathers tensors for it)
            kwargs.update(callback_on_step_end=on_step_end, callback_on_step_end_tensor_inputs=["latents"])
        started = time.perf_counter()
        try:
            out = pipe(**kwargs, output_type="pil")
        finally:
            spent += time.perf_counter() - started
        images.extend(out.images)
    return images, spent


def prepare_images(plan: FlowPlan, request: Any, warnings: list[str]) -> tuple[Any, Any, list]:
    """The init image (at the plan's size, which it sets when the request named none), mask, references."""
    from PIL import Image

    references = [ref.to_pil().convert("RGB") for ref in request.reference_images] if SPECS[plan.family].edit else []
    if request.init_image is None:
        return None, None, references
    init = request.init_image.to_pil().convert("RGB")
    if plan.width is None:
        plan.width, plan.height = fit_size(init.width, init.height, SPECS[plan.family], warnings)
    if init.size != (plan.width, plan.height):
        init = init.resize((plan.width, plan.height), Image.LANCZOS)  # A1111 resize mode "Just resize"
    mask = request.mask_image.to_pil().convert("L").resize((plan.width, plan.height)) if request.mask_image else None
    return init, mask, references


def generate_flow(provider: Any, prepared: Prepared, progress: Callable | None = None) -> GenerateResult:
    """The local provider's generate() for a flow-match card (its plan made in prepare)."""
    from imagegen.result import GeneratedImage, GenerateResult

    from ..base import Progress
    from ._device import cpu_threads_for, pick_device
    from ._files import resolve_checkpoint, resolve_lora
    from ._flow_cards import lora_of
    from ._flow_loading import find_base, transformer_bytes, weights_bytes
    from ._memory import choose_memory
    from ._options import options

    request, card, plan = prepared.request, prepared.card, prepared.plan
    started = time.perf_counter()
    opts = options(request)
    warnings = list(prepared.warnings)  # also when called directly, not through ImageGen (which dedupes)
    models_dir = provider.settings.models_dir
    if lora_of(card) is not None:  # local:<LoRA file>: its base folder, the LoRA in the plan
        path = find_base(card.family, opts.get("base"), models_dir)
    else:
        path = resolve_checkpoint(card.model, models_dir)
    if path is None:
        raise ModelLoadError(f"checkpoint {card.model!r} not found in {models_dir}")
    base = find_base(card.family, opts.get("base"), models_dir) if path.is_file() else None
    device, dtype = pick_device(provider.settings.device)
    if device != "cpu" and "dtype" not in opts:
        dtype = "bfloat16"  # Flux and SD 3.5 are trained in bf16; fp16 overflows in their T5 / attention
    dtype = opts.get("dtype", dtype)
    init, mask, references = prepare_images(plan, request, warnings)
    memory = choose_memory(opts, device, weights=weights_bytes(path, base), largest=transformer_bytes(path),
                           width=plan.width, height=plan.height, batch=plan.batch_size, dtype=dtype)
    warnings += memory.warnings
    if opts.get("attention_slicing"):
        warnings.append(f"attention_slicing ignored: {SPECS[card.family].display} uses fused attention")
    if progress is not None:
        progress(Progress(stage="load", message=str(path)))
    model, load_s = provider.cache.get_flow(path, device, dtype, offload=memory.offload, quantize=memory.quantize,
                                            base=base)

    lora_files = [(resolve_lora(lora.name, models_dir), lora.weight) for lora in plan.loras]
    model.set_loras(lora_files)
    model.apply_memory(model.base, memory.switches())
    if plan.kind != "txt2img":
        model.apply_memory(model.pipeline(plan.kind), memory.switches())
    with cpu_threads_for(model.base, device):
        images, gpu_seconds = run_flow(model, plan, init, mask, references, progress)

    texts = infotexts(provider, request, model, plan, lora_files)
    result_images = [GeneratedImage.from_pil(image, format=request.output_format, seed=seed, infotext=text)
                     for image, seed, text in zip(images, plan.seeds, texts, strict=True)]
    return GenerateResult(
        images=result_images, provider=provider.name, model=card.id, cost_usd=0.0,
        latency_s=time.perf_counter() - started, load_s=load_s, gpu_seconds=gpu_seconds, warnings=warnings,
        raw={"device": device, "dtype": dtype, "family": card.family, "pipeline": type(model.pipeline(plan.kind)).__name__,
             "kind": plan.kind, "guidance": plan.guidance, "true_cfg_scale": plan.true_cfg,
             "memory": {"offload": memory.offload, **memory.switches(), "quantize": memory.quantize,
                        "reason": memory.reason},
             "size": (plan.width, plan.height), "base": str(base) if base else None},
    )


def infotexts(provider: Any, request: Any, model: LoadedModel, plan: FlowPlan,
              lora_files: list[tuple[Path, float]]) -> list[str]:
    """A1111/Forge infotext. "CFG scale" is the request's cfg_scale (for distilled models Forge's
    "Distilled CFG Scale" repeats it, so a Forge reader sees the guidance it knows)."""
    from imagegen import __version__
    from imagegen.prompt.a1111 import lora_tag
    from imagegen.prompt.infotext import format_infotext

    from ._files import file_hash

    spec = SPECS[plan.family]
    if model.file_hash is None:
        target = model.path if model.path.is_file() else _transformer_file(model.path)
        model.file_hash = file_hash(target)[:10] if target is not None else None
    extra_tags = " ".join(lora_tag(lora.name, lora.weight) for lora in request.loras)
    prompt = f"{request.prompt} {extra_tags}" if extra_tags else request.prompt
    lora_hashes = ", ".join(f"{lora.name.replace(':', '').replace(',', '')}: {provider._hash(path, 'lora')}"
                            for lora, (path, _) in zip(plan.loras, lora_files, strict=True))
    texts = []
    for seed in plan.seeds:
        params: dict[str, Any] = {
            "Steps": plan.steps, "Sampler": FLOW_SAMPLER, "Schedule type": "Simple", "CFG scale": plan.cfg_label,
            "Distilled CFG Scale": plan.guidance if spec.guidance == "embedded" else None,
            "True CFG scale": plan.true_cfg, "Seed": seed, "Size": f"{plan.width}x{plan.height}",
            "Model hash": model.file_hash, "Model": model.path.stem,
            "Denoising strength": plan.denoise, "RNG": "CPU",
            "Lora hashes": lora_hashes or None, "Version": f"imagegen {__version__}",
        }
        texts.append(format_infotext(params, prompt, plan.negative or ""))
    return texts


def _transformer_file(folder: Path) -> Path | None:
    files = sorted((folder / "transformer").glob("*.safetensors"))
    return files[0] if len(files) == 1 else None
