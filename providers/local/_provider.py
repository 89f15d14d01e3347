"""`LocalProvider`: Stable Diffusion 1.x / SDXL, and FLUX.1 / FLUX.2 / SD 3.5 (see `_flow_*`), on
the user's own machine, with diffusers.

It speaks the AUTOMATIC1111 vocabulary (samplers, seeds, weights, LoRA tags, hires fix, clip
skip, infotext). Model references: `local:demo`, `local:<path>` or a name in IMAGEGEN_MODELS_DIR.
"""

from __future__ import annotations

import functools
import random
import re
import threading
import time
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imagegen.catalog import Capabilities, Elo, ModelCard
from imagegen.errors import ModelLoadError
from imagegen.prompt.translate import sd_prompt_text, split_sd_prompt, unsupported_midjourney_options
from imagegen.request import SEED_MAX

from ..base import BaseProvider, Prepared, ProgressCallback, runnable
from ._device import cpu_threads_for
from ._embeddings import find_embeddings, mentioned
from ._families import is_flow
from ._files import (
    addnet_hash,
    file_hash,
    find_checkpoints,
    resolve_checkpoint,
    resolve_controlnet,
    resolve_lora,
    resolve_vae,
)
from ._flow_cards import flow_card, prepare_flow
from ._gpu_price import cost_note, gpu_hour_price, local_price
from ._options import options
from ._schedulers import choose_scheduler

if TYPE_CHECKING:
    from imagegen.request import GenerateRequest, RequestNeeds
    from imagegen.result import GenerateResult

DEMO_DIR = Path(str(resources.files("imagegen"))) / "models" / "demo"  # shipped as package data
DEFAULT_SAMPLER = "DPM++ 2M"  # A1111 1.10's default "Sampling method"
DEFAULT_STEPS = 20
DEFAULT_CFG = 7.0
_FAMILY_NAMES = {"sd15": "Stable Diffusion 1.x", "sdxl": "Stable Diffusion XL", "demo": "imagegen demo model"}


def _card(ref: str, family: str, kind: str, display: str) -> ModelCard:
    """The card of one local model: the same object on every call while the GPU-hour price (read
    from the environment each time) stays the same, so what is worked out per card is kept. The
    demo model runs on the CPU: it costs nothing."""
    return _shared_card(ref, family, kind, display, 0.0 if family == "demo" else gpu_hour_price())


@functools.lru_cache(maxsize=1024)
def _shared_card(ref: str, family: str, kind: str, display: str, hour: float) -> ModelCard:
    if is_flow(family):
        return flow_card(ref, family, kind, display, hour)
    caps = Capabilities(
        negative_prompt=True, seed=True, lora=family != "demo", img2img=True, inpaint=True,
        controlnet=family != "demo", hires_fix=True, clip_skip=family != "sdxl", variation_seed=True,
        sampler=True, cfg=True,
        max_images_per_call=8, custom_size=True, min_side=64, max_side=4096,
    )
    return ModelCard(
        id=f"local:{ref}", provider="local", family=family, display_name=display, price=local_price(hour),
        elo=Elo(value=None, source="no arena rating for local checkpoints", date="2026-11-24"),
        latency_s=2.0 if family == "demo" else 20.0, default_steps=DEFAULT_STEPS, capabilities=caps,
        kind=kind, notes=f"{_FAMILY_NAMES[family]}; cost {cost_note(hour)}",
    )


class LocalProvider(BaseProvider):
    name = "local"

    def __init__(self, settings: Any = None):
        super().__init__(settings)
        from ._cache import PipelineCache

        self.cache = PipelineCache()
        self._upscalers: dict[str, Any] = {}
        self._hashes: dict[str, str] = {}
        self._lock = threading.Lock()

    # -- cards --------------------------------------------------------------------------

    def models(self) -> list[ModelCard]:
        cards = []
        if (DEMO_DIR / "model_index.json").is_file():
            cards.append(_card("demo", "demo", "builtin", "imagegen demo (tiny, trained on shapes)"))
        for name, family in find_checkpoints(self.settings.models_dir):
            cards.append(_card(name, family, "user", name))
        return cards

    def card_for(self, model: str) -> ModelCard | None:
        if model == "demo":
            if not (DEMO_DIR / "model_index.json").is_file():
                raise ModelLoadError(f"the demo model is not installed (expected {DEMO_DIR})")
            return _card("demo", "demo", "builtin", "imagegen demo (tiny, trained on shapes)")
        path = resolve_checkpoint(model, self.settings.models_dir)
        if path is None:
            return None
        from ._families import checkpoint_family, is_lora_file

        if is_lora_file(path):  # a trained LoRA as the model: its base with the LoRA on
            from ._kohya import trained_base

            base = trained_base(path)  # one this adapter trained (SD 1.x / SDXL) names its base
            if base is not None:
                return _card(model, checkpoint_family(base), "finetune", f"{path.stem} (LoRA on {base.name})")
            from ._flow_cards import lora_card

            return lora_card(model, path, self.settings.models_dir)
        return _card(model, checkpoint_family(path), "user", path.name)

    def trainer(self) -> Any:
        """The local LoRA trainer (`_train.LocalTrainer`): SD 1.x / SDXL, kohya settings."""
        from ._train import LocalTrainer

        return LocalTrainer(self.settings, card_for=self.card_for)

    # -- checks ---------------------------------------------------------------------------

    def prepare(self, request: GenerateRequest, cards: list[ModelCard],
                needs: RequestNeeds | None = None) -> list[Prepared]:
        """The generic check per card, plus what depends on the request alone (its options,
        sampler, prompt), worked out once for all cards; raises on bad provider options."""
        needs = request.needs() if needs is None else needs
        extra = _request_warnings(request)
        opts = options(request)
        prepared = []
        for card in cards:
            if is_flow(card.family):  # FLUX / SD 3.5: their own knobs, warnings and plan
                prepared.append(prepare_flow(self, request, card, needs, opts))
                continue
            one = self.prepare_one(request, card, needs)
            one.warnings += extra
            prepared.append(one)
        return prepared

    # -- generation -----------------------------------------------------------------------

    def generate(self, prepared: Prepared, *, progress: ProgressCallback | None = None) -> GenerateResult:
        runnable(prepared)
        with self._lock:
            if is_flow(prepared.card.family):
                from ._flow_run import generate_flow

                return generate_flow(self, prepared, progress)
            return self._generate(prepared.request, prepared.card, progress)

    def _generate(self, request: GenerateRequest, card: ModelCard,
                  progress: ProgressCallback | None) -> GenerateResult:
        from imagegen.result import GeneratedImage, GenerateResult

        from ..base import Progress
        from ._device import pick_device
        from ._run import Run

        started = time.perf_counter()
        opts = options(request)
        warnings: list[str] = []
        path = DEMO_DIR if card.model == "demo" else resolve_checkpoint(card.model, self.settings.models_dir)
        if path is None:
            raise ModelLoadError(f"checkpoint {card.model!r} not found in {self.settings.models_dir}")
        own_lora = None
        if card.kind == "finetune" and path.suffix == ".safetensors":  # a LoRA we trained, on its base
            from ._kohya import trained_base

            own_lora, path = path, trained_base(path) or path
        device, dtype = pick_device(self.settings.device)
        dtype = opts.get("dtype", dtype)
        offload = bool(opts.get("cpu_offload", False))
        if offload and device == "cpu":
            warnings.append("cpu_offload ignored: the model already runs on the CPU")
            offload = False
        if progress is not None:
            progress(Progress(stage="load", message=str(path)))
        model, load_s = self.cache.get(path, device, dtype, cpu_offload=offload,
                                       config=Path(opts["config"]) if "config" in opts else None)

        # Midjourney `::` weights reach the model as A1111 weights (the infotext shows them too);
        # a LoRA both tagged and in `loras` is applied once, at the `loras` weight
        prompt, loras, notes = split_sd_prompt(request)
        warnings += notes
        lora_files = [(resolve_lora(lora.name, self.settings.models_dir), lora.weight) for lora in loras]
        model.set_loras(([(own_lora, 1.0)] if own_lora is not None else []) + lora_files)
        vae_path = resolve_vae(request.vae, self.settings.models_dir)
        model.set_vae(vae_path)
        wanted = mentioned(find_embeddings(self.settings.models_dir), prompt, request.negative_prompt)
        model.embeddings.load(model.base, wanted, warnings)
        embeddings = {name: path for name, path in wanted.items() if name in model.embeddings.vectors}

        spec, size = self._spec(request, model, prompt, warnings)
        model.apply_memory(model.base, opts)
        run = Run(model, spec, progress, self._upscalers)
        with cpu_threads_for(model.base, device):
            output = run.execute()
        warnings += output.warnings

        infotexts = self._infotexts(request, card, model, spec, loras, lora_files, vae_path, embeddings, output)
        images = [GeneratedImage.from_pil(image, format=request.output_format, seed=seed, infotext=text)
                  for image, seed, text in zip(output.images, spec.seeds, infotexts, strict=True)]
        return GenerateResult(
            images=images, provider=self.name, model=card.id, cost_usd=0.0,
            latency_s=time.perf_counter() - started, load_s=load_s, gpu_seconds=output.gpu_seconds,
            warnings=warnings,
            raw={"device": device, "dtype": dtype, "scheduler": spec.scheduler.class_name,
                 "scheduler_flags": spec.scheduler.flags, "first_pass_steps": output.first_pass_steps,
                 "hires_steps": output.hires_steps, "size": size},
        )

    def _spec(self, request: GenerateRequest, model: Any, prompt: str, warnings: list[str]) -> tuple[Any, tuple]:
        from PIL import Image

        from ._run import RunSpec

        base = model.base
        init = request.init_image.to_pil().convert("RGB") if request.init_image is not None else None
        if init is not None and not (request.width or request.height or request.aspect_ratio):
            width, height = init.width // 8 * 8, init.height // 8 * 8
        else:
            width, height = request.size(base.unet.config.sample_size * base.vae_scale_factor)
        if init is not None and init.size != (width, height):
            init = init.resize((width, height), Image.LANCZOS)  # A1111 resize mode "Just resize"
        mask = request.mask_image.to_pil().convert("L").resize((width, height)) if request.mask_image else None
        # The client resolves a random seed before calling; a direct call gets one here.
        seed = request.seed if request.seed_fixed else random.randint(0, SEED_MAX)
        count = request.image_count
        seeds, subseeds = [seed + i for i in range(count)], []
        if request.variation_strength > 0 and init is not None:
            warnings.append("variation seed ignored: it applies to txt2img only")
        elif request.variation_strength > 0:
            # The client resolves a random variation seed, as it does the seed; a direct call here.
            variation = request.variation_seed
            if variation is None or variation == -1:
                variation = random.randint(0, SEED_MAX)
            seeds, subseeds = [seed] * count, [variation + i for i in range(count)]  # as A1111 does
        spec = RunSpec(
            prompt=prompt, negative=request.negative_prompt, width=width, height=height,
            steps=request.steps or DEFAULT_STEPS, cfg=DEFAULT_CFG if request.cfg_scale is None else request.cfg_scale,
            seeds=seeds, subseeds=subseeds, subseed_strength=request.variation_strength,
            batch_size=request.batch_size,
            scheduler=choose_scheduler(request.sampler, request.scheduler, DEFAULT_SAMPLER),
            clip_skip=request.clip_skip if model.family != "sdxl" else None,
            init_image=init, mask_image=mask,
            denoising_strength=0.75 if request.denoising_strength is None else request.denoising_strength,
            hires=request.hires if init is None else None, models_dir=self.settings.models_dir,
        )
        for unit in request.controlnets:
            spec.control_nets.append(self.cache.controlnet(resolve_controlnet(unit.model, self.settings.models_dir),
                                                           model))
            if unit.pose is not None:
                from ._openpose import render_pose

                spec.control_images.append(render_pose(unit.pose, width, height))
            else:
                spec.control_images.append(unit.image.to_pil())
            spec.control_weights.append(unit.weight)
            spec.control_starts.append(unit.guidance_start)
            spec.control_ends.append(unit.guidance_end)
        return spec, (width, height)

    def _infotexts(self, request, card, model, spec, loras, lora_files, vae_path, embeddings, output) -> list[str]:
        from imagegen import __version__
        from imagegen.prompt.a1111 import lora_tag
        from imagegen.prompt.infotext import format_infotext

        if model.path.is_file() and model.file_hash is None:
            model.file_hash = file_hash(model.path)[:10]
        extra_tags = " ".join(lora_tag(lora.name, lora.weight) for lora in request.loras)
        written = sd_prompt_text(request)
        prompt = f"{written} {extra_tags}" if extra_tags else written
        hires = request.hires
        denoise = hires.denoising_strength if hires else (
            spec.denoising_strength if spec.init_image is not None else None)
        lora_hashes = ", ".join(f"{lora.name.replace(':', '').replace(',', '')}: {self._hash(path, 'lora')}"
                                for lora, (path, _) in zip(loras, lora_files, strict=True))
        ti_hashes = ", ".join(f"{path.stem}: {self._hash(path, 'ti')}" for path in embeddings.values())
        texts = []
        for index, seed in enumerate(spec.seeds):
            params: dict[str, Any] = {
                "Steps": spec.steps, "Sampler": spec.scheduler.label, "Schedule type": spec.scheduler.schedule,
                "CFG scale": spec.cfg, "Seed": seed, "Size": f"{spec.width}x{spec.height}",
                "Model hash": model.file_hash, "Model": "demo" if card.model == "demo" else model.path.stem,
                "VAE hash": file_hash(vae_path)[:10] if vae_path and vae_path.is_file() else None,
                "VAE": vae_path.name if vae_path else None,
                "Variation seed": spec.subseeds[index] if spec.subseeds else None,
                "Variation seed strength": spec.subseed_strength if spec.subseeds else None,
                "Denoising strength": denoise,
                "Clip skip": spec.clip_skip if spec.clip_skip and spec.clip_skip > 1 else None,
                "RNG": "CPU",  # one CPU generator per image (A1111's "CPU" noise source)
            }
            if hires:
                if hires.resize_width or hires.resize_height:
                    params["Hires resize"] = "x".join(map(str, output.hires_size))
                else:
                    params["Hires upscale"] = hires.scale
                params["Hires steps"] = hires.steps or None
                params["Hires upscaler"] = hires.upscaler
            params["Lora hashes"] = lora_hashes or None
            params["TI hashes"] = ti_hashes or None
            params["Version"] = f"imagegen {__version__}"
            texts.append(format_infotext(params, prompt, request.negative_prompt))
        return texts

    def _hash(self, path: Path, kind: str) -> str:
        """A1111's 12-digit short hashes: kohya's "addnet" hash for LoRAs, the file's sha256 for
        embeddings; computed once per file."""
        key = f"{kind}:{path}"
        if key not in self._hashes:
            self._hashes[key] = (addnet_hash(path) if kind == "lora" else file_hash(path))[:12]
        return self._hashes[key]

    def close(self) -> None:
        self.cache.clear()


def _request_warnings(request: GenerateRequest) -> list[str]:
    """What local models cannot honour whatever the card; raises on bad provider options."""
    options(request)
    warnings = list(choose_scheduler(request.sampler, request.scheduler, DEFAULT_SAMPLER).warnings)
    if re.search(r"\bAND\b", request.prompt):
        warnings.append("AND (composable diffusion) is not supported: the word stays in the prompt text")
    if request.hires is not None and request.init_image is not None:
        warnings.append("hires fix ignored: it applies to txt2img only, as in A1111")
    warnings += unsupported_midjourney_options(request)
    return warnings
