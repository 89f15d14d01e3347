"""Model cards and `prepare` for local flow-match models (FLUX.1, FLUX.2, SD 3.5).

A local card names the open weights it runs (`ModelCard.weights`, e.g. "flux.1-dev"): the cloud
card of the same weights has the same quality, so the router gives both one Elo and chooses
between them by cost and (learned) latency. Local cost is 0, or the GPU-hour price set in
`IMAGEGEN_LOCAL_GPU_HOUR_USD` (electricity, or what the machine costs), charged for the
expected seconds.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from imagegen.catalog import Capabilities, Elo, ModelCard

from ._flow_plan import SPECS, plan_flow
from ._gpu_price import cost_note, gpu_hour_price, local_price

if TYPE_CHECKING:
    from imagegen.request import GenerateRequest, RequestNeeds

    from ..base import Prepared

# The open weights each family runs (shared with the cloud cards of the same weights).
WEIGHTS = {"flux-dev": "flux.1-dev", "flux-schnell": "flux.1-schnell", "flux-kontext": "flux.1-kontext-dev",
           "flux2-klein": "flux.2-klein-4b", "flux2-klein-base": "flux.2-klein-base-4b", "flux2-dev": "flux.2-dev",
           "sd3": "sd3.5-large"}
# Expected seconds for one 1 MP image on a current 24 GB+ GPU at the family's default steps
# (assumptions until observed latencies replace them).
LATENCY_S = {"flux-dev": 12.0, "flux-schnell": 2.0, "flux-kontext": 14.0, "flux2-klein": 1.5,
             "flux2-klein-base": 10.0, "flux2-dev": 30.0, "sd3": 12.0}
# Generic capability warnings that the flow plan replaces with family-specific ones.
_REPLACED = ("negative_prompt ignored", "clip_skip ignored", "variation seed ignored", "sampler ",
             "cfg_scale ignored", "steps ")


def flow_card(ref: str, family: str, kind: str, display: str, hour: float | None = None) -> ModelCard:
    """``hour``: USD per GPU hour (default: `gpu_hour_price`)."""
    spec = SPECS[family]
    hour = gpu_hour_price() if hour is None else hour
    price = local_price(hour)
    caps = Capabilities(
        txt2img=True, edit=spec.edit, max_reference_images=8 if spec.edit and family != "flux-kontext" else 0,
        negative_prompt=spec.guidance == "cfg", seed=True, lora=True, img2img=spec.img2img or spec.edit,
        inpaint=spec.inpaint, controlnet=False, hires_fix=False, clip_skip=False, variation_seed=False,
        sampler=False, cfg=spec.guidance != "none", max_images_per_call=4, custom_size=True, min_side=64,
        max_side=2048, steps_range=(1, 150),
    )
    return ModelCard(
        id=f"local:{ref}", provider="local", family=family, display_name=display, price=price,
        elo=Elo(value=None, source=f"shared with the cloud cards of the same weights ({WEIGHTS[family]})",
                date="2026-12-01"),
        latency_s=LATENCY_S[family], latency_source="assumed for a 24 GB+ GPU; replaced by observed latency",
        default_steps=spec.default_steps, capabilities=caps, kind=kind, weights=WEIGHTS[family],
        notes=f"{spec.display} on this machine (diffusers); cost {cost_note(hour)}",
    )


# A trained LoRA's architecture -> the family of the base folder it runs on
_LORA_BASES = {"flux1": "flux-dev", "flux": "flux-dev", "flux2": "flux2-klein", "sd3": "sd3"}


def lora_card(ref: str, path: Path, models_dir: Path | None) -> ModelCard:
    """``local:<LoRA file>`` as a model (a fine-tune trained in the cloud, run here): the base
    folder of its architecture in the models dir, with the LoRA applied at weight 1."""
    from imagegen.errors import ModelLoadError

    from ._families import ARCH, ARCH_NAMES, checkpoint_family, lora_family
    from ._flow_loading import find_base

    arch = lora_family(path)
    if arch not in _LORA_BASES:
        raise ModelLoadError(f"LoRA {path.name} ({ARCH_NAMES.get(arch or '', 'unknown architecture')}) cannot be "
                             "run as a model here: give its base as model= and the LoRA in loras=")
    base = find_base(_LORA_BASES[arch], None, models_dir)
    family = checkpoint_family(base)
    card = flow_card(ref, family, "finetune", f"{path.stem} (LoRA on {base.name})")
    return card.model_copy(update={"notes": f"LoRA {path} on the base {base} ({ARCH_NAMES[ARCH[family]]})",
                                   "weights": ""})  # a fine-tune: not the base's quality


def lora_of(card: ModelCard) -> Path | None:
    """The LoRA file a ``local:<LoRA file>`` card applies, else None."""
    return Path(card.model) if card.kind == "finetune" and card.model.endswith(".safetensors") else None


def prepare_flow(provider: Any, request: GenerateRequest, card: ModelCard, needs: RequestNeeds,
                 opts: dict[str, Any]) -> Prepared:
    """The generic check, with the family's own warnings in place of the generic ones, and the plan."""
    prepared = provider.prepare_one(request, card, needs)
    plan = plan_flow(request, card.family, opts)
    own = lora_of(card)
    if own is not None and all(Path(lora.name) != own for lora in plan.loras):
        from imagegen.request import LoraRef

        plan.loras.insert(0, LoraRef(name=str(own), weight=1.0))
    prepared.warnings = [w for w in prepared.warnings if not w.startswith(_REPLACED)] + plan.warnings
    prepared.plan = plan
    return prepared
