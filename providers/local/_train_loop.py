"""The local LoRA training loop: diffusers components + PEFT adapters, kohya settings.

One step: encode the batch (or take cached latents), add noise at random timesteps, predict it
with the UNet (SDXL: with its pooled text embeddings and size conditioning), MSE against the
noise (or the velocity), step the optimizer and the lr schedule. Checkpoints hold the LoRA
weights, the optimizer and schedule state, the step and the RNG states; every random draw of a
step comes from a generator seeded by (seed, step), so a resumed run takes the same steps.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ._train_data import Item, bucket_for, caption_for, epoch_batches, fit, make_buckets, to_tensor

UNET_TARGETS = ["to_k", "to_q", "to_v", "to_out.0", "proj_in", "proj_out", "ff.net.0.proj", "ff.net.2"]  # kohya: every Linear / 1x1 conv of the transformer blocks
TE_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj"]
CHECKPOINT_DIR = "checkpoints"


@dataclass
class TrainConfig:
    """Everything a run needs, resolved and checked before any compute (see `_train.resolve`)."""

    base: str  # checkpoint path
    family: str  # sd15 | sdxl
    device: str
    weight_dtype: str  # the frozen weights: float32 / float16 / bfloat16
    mixed_precision: str
    network_dim: int
    network_alpha: float
    unet_lr: float
    text_encoder_lr: float
    optimizer: str
    lr_scheduler: str
    lr_warmup_steps: int
    max_train_steps: int | None
    max_train_epochs: int | None
    batch_size: int
    resolution: int | None
    enable_bucket: bool
    min_bucket_reso: int
    max_bucket_reso: int
    bucket_reso_steps: int
    shuffle_caption: bool
    keep_tokens: int
    caption_dropout_rate: float
    flip_aug: bool
    gradient_checkpointing: bool
    cache_latents: bool
    seed: int
    save_every_n_steps: int | None
    sample_every_n_steps: int | None
    sample_prompts: list[str] = field(default_factory=list)
    sample_steps: int = 20
    trigger_word: str = "TOK"
    output_name: str = "lora"
    threads: int | None = None  # CPU threads (None: torch's default)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> TrainConfig:
        return cls(**json.loads(text))


@dataclass
class Outcome:
    step: int
    total: int
    canceled: bool
    losses: list[float]
    seconds: float
    lora: dict[str, Any] | None  # kohya tensors, once finished
    resolution: tuple[int, int]
    buckets: dict[str, int]
    started_from: int = 0  # the checkpoint's step (0: a fresh run)


class Trainer:
    """One run on loaded components; `run` trains from the last checkpoint to the end."""

    def __init__(self, config: TrainConfig, items: list[Item], pipe: Any, folder: Path):
        import torch

        self.config, self.items, self.pipe, self.folder = config, items, pipe, folder
        self.device = torch.device(config.device)
        if config.threads:
            torch.set_num_threads(config.threads)
        self.unet, self.vae = pipe.unet, pipe.vae
        # diffusers' `.dtype` walks every module (~5 ms on each call): read once
        self.unet_dtype, self.vae_dtype = pipe.unet.dtype, pipe.vae.dtype
        self.encoders = [pipe.text_encoder] + ([pipe.text_encoder_2] if config.family == "sdxl" else [])
        self.tokenizers = [pipe.tokenizer] + ([pipe.tokenizer_2] if config.family == "sdxl" else [])
        from diffusers import DDPMScheduler

        self.noise_scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
        native = pipe.unet.config.sample_size * pipe.vae_scale_factor
        self.resolution = config.resolution or native
        if config.enable_bucket:
            buckets = make_buckets(self.resolution, config.min_bucket_reso, config.max_bucket_reso,
                                   config.bucket_reso_steps)
            self.bucket_of = [bucket_for(item.image.size, buckets) for item in items]
        else:
            self.bucket_of = [(self.resolution, self.resolution)] * len(items)
        self.pixels = [fit(item.image, size) for item, size in zip(items, self.bucket_of, strict=True)]
        self._epoch: tuple[int, list[list[int]]] = (0, epoch_batches(items, self.bucket_of, config.batch_size,
                                                                      config.seed, 0))
        self.steps_per_epoch = len(self._epoch[1])
        self.total = (config.max_train_epochs * self.steps_per_epoch if config.max_train_epochs
                      else config.max_train_steps or 1)
        self._add_adapters()
        self.optimizer = self._optimizer()
        from diffusers.optimization import get_scheduler

        self.schedule = get_scheduler(config.lr_scheduler, self.optimizer,
                                      num_warmup_steps=config.lr_warmup_steps, num_training_steps=self.total)
        self.latent_cache: dict[tuple[int, bool], Any] = {}
        self.autocast_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(config.mixed_precision)
        self.scaler = torch.amp.GradScaler("cuda") if config.mixed_precision == "fp16" else None

    # -- setup ------------------------------------------------------------------------------

    def _add_adapters(self) -> None:
        import torch
        from peft import LoraConfig, inject_adapter_in_model

        config = self.config
        for module in (self.unet, self.vae, *self.encoders):
            module.requires_grad_(False)
        torch.manual_seed(config.seed)  # PEFT's gaussian init draws from the global generator
        lora: dict[str, Any] = {"r": config.network_dim, "lora_alpha": config.network_alpha,
                                "init_lora_weights": "gaussian"}
        self.trained: dict[str, Any] = {"unet": inject_adapter_in_model(
            LoraConfig(target_modules=UNET_TARGETS, **lora), self.unet)}
        if config.text_encoder_lr > 0:
            names = ["text_encoder", "text_encoder_2"][:len(self.encoders)]
            for name, encoder in zip(names, self.encoders, strict=True):
                self.trained[name] = inject_adapter_in_model(LoraConfig(target_modules=TE_TARGETS, **lora), encoder)
        for module in self.trained.values():
            for param in module.parameters():
                if param.requires_grad:
                    param.data = param.data.float()
        if config.gradient_checkpointing:
            self.unet.enable_gradient_checkpointing()
            if config.text_encoder_lr > 0:
                for encoder in self.encoders:
                    encoder.gradient_checkpointing_enable()
        self.unet.train()

    def params(self, component: str) -> list[Any]:
        return [p for p in self.trained[component].parameters() if p.requires_grad]

    def named_lora(self) -> dict[str, Any]:
        return {f"{component}.{name}": p for component, module in self.trained.items()
                for name, p in module.named_parameters() if p.requires_grad}

    def _optimizer(self) -> Any:
        import torch

        config = self.config
        groups = [{"params": self.params("unet"), "lr": config.unet_lr}]
        groups += [{"params": self.params(name), "lr": config.text_encoder_lr}
                   for name in self.trained if name != "unet"]
        if config.optimizer == "AdamW8bit":
            import bitsandbytes  # type: ignore[import-not-found]

            return bitsandbytes.optim.AdamW8bit(groups)
        if config.optimizer == "Prodigy":
            import prodigyopt  # type: ignore[import-not-found]

            return prodigyopt.Prodigy(groups)
        return torch.optim.AdamW(groups)

    # -- one step ---------------------------------------------------------------------------

    def batch_for(self, step: int) -> list[int]:
        epoch, index = divmod(step, self.steps_per_epoch)
        if self._epoch[0] != epoch:
            self._epoch = (epoch, epoch_batches(self.items, self.bucket_of, self.config.batch_size,
                                                self.config.seed, epoch))
        return self._epoch[1][index]

    def _latents(self, indices: list[int], flips: list[bool], generator: Any) -> Any:
        import torch

        scale = self.vae.config.scaling_factor
        if self.config.cache_latents:
            for index, flip in zip(indices, flips, strict=True):
                if (index, flip) not in self.latent_cache:
                    pixels = to_tensor(self.pixels[index], flip)[None]
                    cache_gen = torch.Generator().manual_seed(self.config.seed + 7 * index + flip)
                    with torch.no_grad():
                        dist = self.vae.encode(pixels.to(self.device, self.vae_dtype)).latent_dist
                        noise = torch.randn(dist.mean.shape, generator=cache_gen).to(dist.mean)
                        self.latent_cache[(index, flip)] = (dist.mean + dist.std * noise) * scale
            return torch.cat([self.latent_cache[(i, f)] for i, f in zip(indices, flips, strict=True)])
        pixels = torch.stack([to_tensor(self.pixels[i], f) for i, f in zip(indices, flips, strict=True)])
        with torch.no_grad():
            dist = self.vae.encode(pixels.to(self.device, self.vae_dtype)).latent_dist
            noise = torch.randn(dist.mean.shape, generator=generator).to(dist.mean)
            return (dist.mean + dist.std * noise) * scale

    def _encode_text(self, captions: list[str]) -> tuple[Any, Any]:
        import torch

        states, pooled = [], None
        for tokenizer, encoder in zip(self.tokenizers, self.encoders, strict=True):
            ids = tokenizer(captions, padding="max_length", max_length=tokenizer.model_max_length,
                            truncation=True, return_tensors="pt").input_ids.to(self.device)
            with torch.set_grad_enabled(self.config.text_encoder_lr > 0):
                if self.config.family == "sdxl":
                    out = encoder(ids, output_hidden_states=True)
                    states.append(out.hidden_states[-2])
                    if hasattr(out, "text_embeds"):
                        pooled = out.text_embeds
                else:
                    states.append(encoder(ids)[0])
        return torch.cat(states, dim=-1), pooled

    def step(self, step: int) -> float:
        import torch
        import torch.nn.functional as F

        config = self.config
        rng = random.Random(config.seed * 1_000_003 + step)
        generator = torch.Generator().manual_seed(config.seed * 1_000_003 + step)
        indices = self.batch_for(step)
        flips = [config.flip_aug and rng.random() < 0.5 for _ in indices]
        captions = [caption_for(self.items[i].caption, rng, shuffle=config.shuffle_caption,
                                keep_tokens=config.keep_tokens, dropout=config.caption_dropout_rate)
                    for i in indices]
        latents = self._latents(indices, flips, generator).float()
        noise = torch.randn(latents.shape, generator=generator).to(latents)
        timesteps = torch.randint(0, self.noise_scheduler.config.num_train_timesteps, (len(indices),),
                                  generator=generator).to(self.device)
        noisy = self.noise_scheduler.add_noise(latents, noise, timesteps)
        with torch.autocast(self.device.type, dtype=self.autocast_dtype or torch.float32,
                            enabled=self.autocast_dtype is not None):
            states, pooled = self._encode_text(captions)
            extra = {}
            if config.family == "sdxl":
                width, height = self.bucket_of[indices[0]]
                ids = torch.tensor([[height, width, 0, 0, height, width]] * len(indices), device=self.device)
                extra["added_cond_kwargs"] = {"text_embeds": pooled, "time_ids": ids.to(states.dtype)}
            pred = self.unet(noisy.to(self.unet_dtype), timesteps, states.to(self.unet_dtype), **extra).sample
        if self.noise_scheduler.config.prediction_type == "v_prediction":
            target = self.noise_scheduler.get_velocity(latents, noise, timesteps)
        else:
            target = noise
        loss = F.mse_loss(pred.float(), target.float())
        params = [p for group in self.optimizer.param_groups for p in group["params"]]
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            self.optimizer.step()
        self.schedule.step()
        self.optimizer.zero_grad(set_to_none=True)
        return float(loss.detach())

    # -- checkpoints ------------------------------------------------------------------------

    def save_checkpoint(self, step: int, losses: list[float]) -> Path:
        import numpy as np
        import torch

        folder = self.folder / CHECKPOINT_DIR
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"step-{step:07d}.pt"
        state = {
            "step": step, "losses": losses,
            "lora": {name: p.detach().cpu().clone() for name, p in self.named_lora().items()},
            "optimizer": self.optimizer.state_dict(), "schedule": self.schedule.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "rng": {"torch": torch.get_rng_state(), "python": random.getstate(),
                    "numpy": np.random.get_state(),
                    "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None},
        }
        partial = path.with_name(path.name + ".partial")
        torch.save(state, partial)
        partial.replace(path)  # a kill during the write leaves the previous checkpoint intact
        for older in folder.glob("step-*.pt"):
            if older != path:
                older.unlink(missing_ok=True)
        return path

    def load_checkpoint(self) -> tuple[int, list[float]]:
        """The step to carry on from (0: none) and the losses so far."""
        import numpy as np
        import torch

        found = sorted((self.folder / CHECKPOINT_DIR).glob("step-*.pt"))
        if not found:
            return 0, []
        state = torch.load(found[-1], map_location="cpu", weights_only=False)
        with torch.no_grad():
            for name, param in self.named_lora().items():
                param.copy_(state["lora"][name])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        if self.scaler is not None and state["scaler"] is not None:
            self.scaler.load_state_dict(state["scaler"])
        rng = state["rng"]
        torch.set_rng_state(rng["torch"])
        random.setstate(rng["python"])
        np.random.set_state(rng["numpy"])
        if rng["cuda"] is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        return int(state["step"]), list(state["losses"])

    # -- samples ----------------------------------------------------------------------------

    def sample(self, step: int) -> list[Path]:
        """Sample images with the LoRA as it is now, saved as PNG with A1111 infotext."""
        import torch
        from PIL.PngImagePlugin import PngInfo

        from imagegen.prompt.infotext import format_infotext

        out = []
        folder = self.folder / "samples"
        folder.mkdir(parents=True, exist_ok=True)
        self.unet.eval()
        try:
            for index, prompt in enumerate(self.config.sample_prompts):
                seed = self.config.seed + index
                image = self.pipe(prompt, num_inference_steps=self.config.sample_steps, width=self.resolution,
                                  height=self.resolution, generator=torch.Generator().manual_seed(seed)).images[0]
                text = format_infotext({"Steps": self.config.sample_steps, "Seed": seed,
                                        "Size": f"{self.resolution}x{self.resolution}",
                                        "Model": Path(self.config.base).stem,
                                        "Lora": f"{self.config.output_name} (step {step})"}, prompt, "")
                info = PngInfo()
                info.add_text("parameters", text)
                path = folder / f"step{step:07d}_{index:02d}.png"
                image.save(path, pnginfo=info)
                out.append(path)
        finally:
            self.unet.train()
        return out

    # -- the run ------------------------------------------------------------------------------

    def run(self, *, report: Callable[[int, int, float, float], None] | None = None,
            should_stop: Callable[[], bool] = lambda: False, log: Callable[[str], None] = lambda _: None) -> Outcome:
        config = self.config
        start, losses = self.load_checkpoint()
        if start:
            log(f"resumed from the checkpoint at step {start}")
        started = time.perf_counter()
        step = start
        canceled = False
        while step < self.total:
            if should_stop():
                canceled = True
                break
            loss = self.step(step)
            step += 1
            losses.append(loss)
            if report is not None:
                elapsed = time.perf_counter() - started
                report(step, self.total, loss, elapsed / (step - start) * (self.total - step))
            if config.save_every_n_steps and step % config.save_every_n_steps == 0 and step < self.total:
                self.save_checkpoint(step, losses)
                log(f"step {step}: checkpoint saved")
            if config.sample_every_n_steps and step % config.sample_every_n_steps == 0:
                log(f"step {step}: samples {', '.join(p.name for p in self.sample(step))}")
        lora = None
        if not canceled:
            from peft.utils import get_peft_model_state_dict

            from ._kohya import to_kohya

            layers = {name: get_peft_model_state_dict(module) for name, module in self.trained.items()}
            lora = to_kohya(layers, config.family, config.network_alpha)
        buckets: dict[str, int] = {}
        for size in self.bucket_of:
            buckets[f"{size[0]}x{size[1]}"] = buckets.get(f"{size[0]}x{size[1]}", 0) + 1
        return Outcome(step=step, total=self.total, canceled=canceled, losses=losses,
                       seconds=time.perf_counter() - started, lora=lora,
                       resolution=(self.resolution, self.resolution), buckets=buckets, started_from=start)


def load_pipeline(config: TrainConfig) -> Any:
    """The base checkpoint's pipeline on the training device, frozen weights in ``weight_dtype``."""
    from ._loading import load_checkpoint

    model = load_checkpoint(Path(config.base), config.device, config.weight_dtype)
    pipe = model.base
    pipe.set_progress_bar_config(disable=True)
    return pipe
