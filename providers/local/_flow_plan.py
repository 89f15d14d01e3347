"""Our vocabulary (A1111 + GenerateRequest) translated for the flow-match families: FLUX.1
[dev]/[schnell]/Kontext, FLUX.2 [klein]/[dev] and SD 3.5, with a warning wherever a knob changes
meaning or has none.

Guidance comes in three kinds, and `cfg_scale` means a different thing in each:
- "embedded": FLUX.1 [dev], Kontext, FLUX.2 [dev] were distilled with the guidance scale as an
  input: `cfg_scale` becomes that number (one transformer pass per step; no negative prompt). The
  FLUX.1 pipelines also offer true CFG on top (`provider_options["local"]["true_cfg_scale"] > 1`,
  two passes per step), which is what makes a negative prompt mean something there.
- "none": FLUX.1 [schnell] and FLUX.2 [klein] are step-distilled: no guidance at all.
- "cfg": SD 3.5 and FLUX.2 [klein] base use classifier-free guidance like SD: `cfg_scale` and the
  negative prompt mean what they mean in A1111.

Pure Python (no torch): `prepare` runs it for every local flow card of a routing decision.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from imagegen.prompt.a1111 import parse_prompt_attention
from imagegen.prompt.translate import split_sd_prompt
from imagegen.request import SEED_MAX

if TYPE_CHECKING:
    from imagegen.request import GenerateRequest


@dataclass(frozen=True)
class FlowSpec:
    family: str
    display: str
    guidance: Literal["embedded", "none", "cfg"]
    default_steps: int
    steps_range: tuple[int, int]  # what the model was made for; outside it we warn, not clamp
    default_cfg: float
    max_sequence_length: int
    true_cfg: bool = False  # the pipeline takes true_cfg_scale + negative_prompt (FLUX.1)
    edit: bool = False  # init_image is a reference to edit by instruction, not an img2img start
    img2img: bool = False
    inpaint: bool = False
    default_size: int = 1024
    multiple: int = 16  # VAE 8x times the transformer's 2x2 patches


SPECS = {s.family: s for s in (
    FlowSpec("flux-dev", "FLUX.1 [dev]", "embedded", 28, (20, 50), 3.5, 512, true_cfg=True, img2img=True,
             inpaint=True),
    FlowSpec("flux-schnell", "FLUX.1 [schnell]", "none", 4, (1, 4), 0.0, 256, true_cfg=True, img2img=True,
             inpaint=True),
    FlowSpec("flux-kontext", "FLUX.1 Kontext [dev]", "embedded", 28, (20, 50), 2.5, 512, true_cfg=True, edit=True,
             inpaint=True),
    FlowSpec("flux2-klein", "FLUX.2 [klein]", "none", 4, (1, 8), 1.0, 512, edit=True, inpaint=True),
    FlowSpec("flux2-klein-base", "FLUX.2 [klein] base", "cfg", 50, (20, 100), 4.0, 512, edit=True, inpaint=True),
    FlowSpec("flux2-dev", "FLUX.2 [dev]", "embedded", 50, (20, 100), 4.0, 512, edit=True),
    FlowSpec("sd3", "Stable Diffusion 3.5", "cfg", 28, (20, 60), 4.5, 256, img2img=True, inpaint=True),
)}

# (family, kind) -> diffusers pipeline class; "edit" is init_image as an instruction-edit reference.
PIPELINES = {
    **{(f, k): c for f in ("flux-dev", "flux-schnell") for k, c in (
        ("txt2img", "FluxPipeline"), ("img2img", "FluxImg2ImgPipeline"), ("inpaint", "FluxInpaintPipeline"))},
    ("flux-kontext", "txt2img"): "FluxKontextPipeline", ("flux-kontext", "edit"): "FluxKontextPipeline",
    ("flux-kontext", "inpaint"): "FluxKontextInpaintPipeline",
    **{(f, k): c for f in ("flux2-klein", "flux2-klein-base") for k, c in (
        ("txt2img", "Flux2KleinPipeline"), ("edit", "Flux2KleinPipeline"), ("inpaint", "Flux2KleinInpaintPipeline"))},
    ("flux2-dev", "txt2img"): "Flux2Pipeline", ("flux2-dev", "edit"): "Flux2Pipeline",
    ("sd3", "txt2img"): "StableDiffusion3Pipeline", ("sd3", "img2img"): "StableDiffusion3Img2ImgPipeline",
    ("sd3", "inpaint"): "StableDiffusion3InpaintPipeline",
}
FLOW_SAMPLER = "Euler"  # FlowMatchEulerDiscreteScheduler: the one sampler these models ship with
_SAMPLER_OK = {None, "", "Euler", "Euler flow", "Flow Match Euler", "FlowMatchEuler"}
_SCHEDULE_OK = {None, "", "Automatic", "Simple", "Normal"}


@dataclass
class FlowPlan:
    """One request, translated once for one flow family (handed to `generate` in Prepared.plan)."""

    family: str
    kind: str  # txt2img | img2img | inpaint | edit
    prompt: str  # extra-network tags and A1111 weights removed
    negative: str | None  # None: the model gets no negative prompt
    width: int | None  # None: from the init image, at generation
    height: int | None
    steps: int
    guidance: float  # what the pipeline's guidance_scale receives
    true_cfg: float | None  # FLUX.1 true_cfg_scale (> 1), or None
    cfg_label: float  # the request's cfg_scale as written to the infotext
    strength: float | None  # img2img / inpaint strength (A1111 step rule); None for edits
    denoise: float | None  # the request's denoising strength, for the infotext
    seeds: list[int]
    batch_size: int
    max_sequence_length: int
    loras: list[Any] = field(default_factory=list)  # LoraRef: tags first, then request.loras
    warnings: list[str] = field(default_factory=list)


def plan_flow(request: GenerateRequest, family: str, opts: dict[str, Any]) -> FlowPlan:
    """Translate ``request`` for a ``family`` model; every change of meaning becomes a warning."""
    from ._run import img2img_schedule

    spec = SPECS[family]
    warnings: list[str] = []
    # Midjourney `::` parts arrive as A1111 weights; LoRA tags and `loras` merge as on SD.
    prompt, loras, notes = split_sd_prompt(request)
    warnings += notes
    prompt = _plain_prompt(prompt, spec, warnings)

    kind = "txt2img"
    if request.mask_image is not None:
        kind = "inpaint"
    elif request.init_image is not None:
        kind = "edit" if spec.edit else "img2img"
    elif request.reference_images and spec.edit:
        kind = "edit"  # FLUX.2: references without an image to edit

    width = height = None
    if request.init_image is None or request.width or request.height or request.aspect_ratio:
        width, height = request.size(spec.default_size)
        width, height = fit_size(width, height, spec, warnings)

    steps = request.steps or spec.default_steps
    low, high = spec.steps_range
    if not low <= steps <= high:
        warnings.append(f"steps {steps} is outside {spec.display}'s usual {low}-{high}")

    true_cfg = opts.get("true_cfg_scale")
    cfg = request.cfg_scale
    if spec.guidance == "embedded":
        guidance = spec.default_cfg if cfg is None else cfg
        if cfg is not None:
            warnings.append(f"cfg_scale {cfg} is {spec.display}'s distilled guidance (a model input, one pass per "
                            "step), not classifier-free guidance; typical values are 2-5")
    elif spec.guidance == "none":
        guidance = spec.default_cfg
        if cfg is not None:
            warnings.append(f"cfg_scale ignored: {spec.display} is guidance-distilled and takes no guidance scale")
    else:
        guidance = spec.default_cfg if cfg is None else cfg
    if true_cfg is not None and not spec.true_cfg:
        warnings.append(f"true_cfg_scale ignored: {spec.display} has no true-CFG option"
                        + (" (cfg_scale is its CFG)" if spec.guidance == "cfg" else ""))
        true_cfg = None
    if true_cfg is not None and true_cfg <= 1:
        true_cfg = None

    negative: str | None = request.negative_prompt or None
    if negative and spec.guidance != "cfg" and true_cfg is None:
        hint = (" unless provider_options['local']['true_cfg_scale'] > 1 (true CFG: two passes per step)"
                if spec.true_cfg else "")
        warnings.append(f"negative_prompt ignored: {spec.display} has no classifier-free guidance{hint}")
        negative = None
    if negative and spec.guidance == "cfg" and guidance <= 1:
        warnings.append("negative_prompt ignored: cfg_scale <= 1 turns classifier-free guidance off")
        negative = None

    _sampler_warnings(request, spec, warnings)
    if request.clip_skip and request.clip_skip > 1:
        warnings.append(f"clip_skip ignored: {spec.display} does not use CLIP skip")
    if request.hires is not None:
        warnings.append(f"hires fix ignored: not supported on {spec.display} (ask for the final size directly)")
    if request.variation_strength > 0:
        warnings.append(f"variation seed ignored: not supported on {spec.display}")
    if request.vae:
        warnings.append(f"vae ignored: {spec.display} keeps its own VAE")
    if request.reference_images and not spec.edit:
        warnings.append(f"reference_images ignored: {spec.display} takes no reference images")

    strength = denoise = None
    if kind in ("img2img", "inpaint"):
        denoise = 0.75 if request.denoising_strength is None else request.denoising_strength
        _, strength, _ = img2img_schedule(steps, denoise)
    elif kind == "edit" and request.denoising_strength is not None:
        warnings.append(f"denoising_strength ignored: {spec.display} edits the init image by the instruction, "
                        "starting from noise")

    # The client resolves a random seed before preparing; a direct call gets one here.
    seed = request.seed if request.seed_fixed else random.randint(0, SEED_MAX)
    return FlowPlan(
        family=family, kind=kind, prompt=prompt, negative=negative, width=width, height=height, steps=steps,
        guidance=guidance, true_cfg=true_cfg, cfg_label=guidance if spec.guidance != "none" else 1.0,
        strength=strength, denoise=denoise, seeds=[seed + i for i in range(request.image_count)],
        batch_size=request.batch_size, max_sequence_length=spec.max_sequence_length,
        loras=loras, warnings=warnings)


def fit_size(width: int, height: int, spec: FlowSpec, warnings: list[str]) -> tuple[int, int]:
    m = spec.multiple
    fitted = max(m, width // m * m), max(m, height // m * m)
    if fitted != (width, height):
        warnings.append(f"size {width}x{height} rounded down to {fitted[0]}x{fitted[1]}: {spec.display} needs "
                        f"multiples of {m}")
    return fitted


def _plain_prompt(prompt: str, spec: FlowSpec, warnings: list[str]) -> str:
    """T5/Qwen encoders read plain text: A1111 weights and BREAK are removed, with a warning."""
    if re.search(r"\bAND\b", prompt):
        warnings.append("AND (composable diffusion) is not supported: the word stays in the prompt text")
    pieces = parse_prompt_attention(prompt)
    if len(pieces) == 1 and pieces[0][1] == 1.0:
        return pieces[0][0]
    if any(weight != 1.0 and weight != -1.0 for _, weight in pieces):
        warnings.append(f"prompt weights like (word:1.2) ignored: {spec.display} reads the prompt as plain text")
    if any(weight == -1.0 for _, weight in pieces):
        warnings.append(f"BREAK ignored: {spec.display} encodes the prompt as one sequence")
    return re.sub(r"\s+", " ", " ".join(text.strip() for text, weight in pieces if weight != -1.0)).strip()


def _sampler_warnings(request: GenerateRequest, spec: FlowSpec, warnings: list[str]) -> None:
    if request.sampler not in _SAMPLER_OK:
        warnings.append(f"sampler {request.sampler!r} has no meaning for {spec.display}: flow-match models run "
                        f"their own flow-match Euler sampler")
    if request.scheduler not in _SCHEDULE_OK:
        warnings.append(f"schedule type {request.scheduler!r} ignored: {spec.display} uses its own flow-match "
                        "(shifted sigma) schedule")


