"""The warm cache: the last loaded checkpoint (one at a time: weights are large) and its ControlNets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ._components import load_controlnet
from ._device import free_memory
from ._loading import load_checkpoint
from ._model import LoadedModel


class PipelineCache:
    """Keeps the last checkpoint warm (one at a time: SD weights are large)."""

    def __init__(self) -> None:
        self.model: LoadedModel | None = None
        self._key: tuple | None = None
        self.controlnets: dict[str, Any] = {}
        self.loads = 0  # how many checkpoint loads happened (observable warm-cache behaviour)

    def get(self, path: Path, device: str, dtype: str, *, cpu_offload: bool = False,
            config: Path | None = None) -> tuple[LoadedModel, float]:
        """(model, seconds spent loading now; 0.0 when it was warm)."""
        key = (path.resolve(), device, dtype, cpu_offload, config)
        if self.model is not None and self._key == key:
            return self.model, 0.0
        self.clear()
        self.model = load_checkpoint(path, device, dtype, cpu_offload=cpu_offload, config=config)
        self._key = key
        self.loads += 1
        return self.model, self.model.load_s

    def get_flow(self, path: Path, device: str, dtype: str, *, offload: str = "none", quantize: str | None = None,
                 base: Path | None = None) -> tuple[LoadedModel, float]:
        """A flow-match model (FLUX.1/FLUX.2/SD 3.5) in the same one-model slot."""
        from ._flow_loading import load_flow

        key = ("flow", path.resolve(), device, dtype, offload, quantize, base.resolve() if base else None)
        if self.model is not None and self._key == key:
            return self.model, 0.0
        self.clear()
        self.model = load_flow(path, device, dtype, offload=offload, quantize=quantize, base=base)
        self._key = key
        self.loads += 1
        return self.model, self.model.load_s

    def controlnet(self, source: Path, model: LoadedModel) -> Any:
        key = f"{source.resolve()}|{model.device}|{model.dtype}"
        if key not in self.controlnets:
            self.controlnets[key] = load_controlnet(source, model)
        return self.controlnets[key]

    def clear(self) -> None:
        self.model = None
        self._key = None
        self.controlnets.clear()
        free_memory()


