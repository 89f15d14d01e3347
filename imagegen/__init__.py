"""imagegen: one typed API over local Stable Diffusion, Replicate's Flux models and a router.

Only light modules are imported here; torch and diffusers load when a local model runs.
"""

from .catalog import Capabilities, Elo, ModelCard, Price
from .client import ImageGen
from .errors import (
    BudgetExceededError,
    ConfigError,
    FineTuneError,
    ImageGenError,
    ModelLoadError,
    NoRouteError,
    PromptSyntaxError,
    ProviderError,
    UnknownOutcomeError,
    UserCancelledError,
)
from .request import ControlNetUnit, GenerateRequest, HiresFix, ImageInput, LoraRef, MidjourneyOptions
from .result import GeneratedImage, GenerateResult, read_infotext
from .router import RouteDecision, RoutePolicy
from .settings import Settings

__version__ = "0.1.0"


def __getattr__(name: str):  # names whose modules are loaded on first use
    if name in ("parse_infotext", "format_infotext"):
        from .prompt import infotext

        return getattr(infotext, name)
    if name in ("FineTuneRequest", "FineTuneJob"):
        from . import finetune

        return getattr(finetune, name)
    raise AttributeError(f"module 'imagegen' has no attribute {name!r}")


__all__ = [
    "BudgetExceededError", "UserCancelledError", "Capabilities", "ConfigError", "ControlNetUnit",
    "Elo", "FineTuneError", "FineTuneJob", "FineTuneRequest", "GenerateRequest", "GenerateResult",
    "GeneratedImage", "HiresFix", "ImageGen", "ImageGenError", "ImageInput", "LoraRef",
    "MidjourneyOptions", "ModelCard", "ModelLoadError", "NoRouteError", "Price", "PromptSyntaxError",
    "ProviderError", "RouteDecision", "RoutePolicy", "Settings", "UnknownOutcomeError",
    "format_infotext", "parse_infotext", "read_infotext",
]
