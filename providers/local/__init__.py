"""The local adapter: diffusers pipelines on this machine's GPU (or CPU), in WebUI's vocabulary.

Modules: `_provider` (the Provider: cards, checks, one request to a run), `_files` (finding
checkpoints, LoRAs, VAEs and embeddings by name), `_families` (a checkpoint's family, read from
its weights), `_loading` (offline loading), `_components` (VAE overrides and ControlNets),
`_model` (a loaded checkpoint: its pipelines, LoRAs, VAE and memory switches), `_cache` (the
warm cache), `_device` (device, dtype, CPU threads), `_options` (provider_options), `_run` (one
pipeline call: seeds, hires fix, progress), `_prompt` (A1111 prompt weighting on our own
embedding path), `_schedulers` (A1111 sampler names to diffusers), `_embeddings`, `_upscale`,
`_openpose`, `_configs` (the component configs shipped for offline loading).

LoRA training (`LocalProvider.trainer()`): `_train` (the `Trainer` protocol: settings checked
before any compute, the background worker started, watched, restarted, cancelled),
`_train_worker` (the worker process), `_train_loop` (diffusers + PEFT steps, checkpoints),
`_train_data` (images, captions, repeats, buckets, the step order), `_kohya` (the kohya/A1111 file).

Flow-match models (FLUX.1 [dev]/[schnell]/Kontext, FLUX.2 [klein]/[dev], SD 3.5) take their own
path: `_flow_plan` (our vocabulary translated per family, with warnings), `_flow_cards` (their
cards and prepare), `_flow_loading` (folders, single-file transformers with a base folder),
`_flow_run` (the pipeline calls, seeds, infotext) and `_memory` (offload, VAE tiling, fp8/NF4).
"""

from ._provider import LocalProvider

__all__ = ["LocalProvider"]
