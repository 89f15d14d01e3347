"""Local LoRA training speed: our trainer (`_train_loop.Trainer`) vs a plain diffusers + PEFT loop.

Both train the same LoRA (the same target layers, rank, AdamW, gradient clipping) on the same
tiny random-weight SD 1.x pipeline and the same images at the same size and batch size, in
this process, one CPU thread each (as the worker runs tiny models). Reports steps/s of both
and the ratio ours/plain (goal >= 0.95), interleaving rounds so machine noise hits both alike.
Run from the repository root: `python benchmarks/bench_train.py [--steps 40] [--rounds 3]`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def make_photos(folder: Path, count: int = 4) -> Path:
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        pixels = np.zeros((256, 256, 3), np.uint8)
        pixels[..., 0] = 220
        pixels[i * 20:i * 20 + 60, 40:120] = (20, 20, 230)
        Image.fromarray(pixels).save(folder / f"p{i}.png")
        (folder / f"p{i}.txt").write_text("a photo of TOK, red")
    return folder


def ours(models_dir: Path, photos: Path, work: Path, steps: int, rank: int) -> float:
    """Steps/s of our trainer (setup excluded: the loop only)."""
    from imagegen.providers.local._train import resolve
    from imagegen.providers.local._train_data import load_items
    from imagegen.providers.local._train_loop import Trainer, load_pipeline

    from imagegen.finetune import FineTuneRequest, load_dataset
    from imagegen.settings import Settings

    request = FineTuneRequest(images=photos, base="local:tiny", caption_dropout_rate=0.0,
                              local={"max_train_steps": steps, "network_dim": rank, "unet_lr": 1e-3})
    config, _, _ = resolve(request, Settings(home=work / "home", models_dir=models_dir, device="cpu"))
    zipped = load_dataset(photos).write_zip(work / "data.zip")
    items, _ = load_items(zipped, str(photos), "TOK")
    run = work / f"run-{time.monotonic_ns()}"
    run.mkdir()
    trainer = Trainer(config, items, load_pipeline(config), run)
    outcome = trainer.run()
    return outcome.step / outcome.seconds


def plain(pipeline_dir: Path, photos: Path, steps: int, rank: int) -> float:
    """The textbook loop (diffusers' train_text_to_image_lora.py, reduced): steps/s of the loop."""
    import numpy as np
    import torch
    import torch.nn.functional as F
    from diffusers import DDPMScheduler, StableDiffusionPipeline
    from imagegen.providers.local._train_loop import UNET_TARGETS
    from peft import LoraConfig
    from PIL import Image

    pipe = StableDiffusionPipeline.from_pretrained(pipeline_dir, safety_checker=None, requires_safety_checker=False)
    unet, vae, text_encoder, tokenizer = pipe.unet, pipe.vae, pipe.text_encoder, pipe.tokenizer
    for module in (unet, vae, text_encoder):
        module.requires_grad_(False)
    torch.manual_seed(0)
    unet.add_adapter(LoraConfig(r=rank, lora_alpha=rank, init_lora_weights="gaussian", target_modules=UNET_TARGETS))
    params = [p for p in unet.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-3)
    noise_scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
    size = unet.config.sample_size * pipe.vae_scale_factor
    images = []
    for path in sorted(photos.glob("*.png")):
        image = Image.open(path).convert("RGB").resize((size, size), Image.BICUBIC)
        images.append(torch.from_numpy(np.asarray(image, dtype=np.float32) / 127.5 - 1).permute(2, 0, 1))
    captions = [(photos / f"{p.stem}.txt").read_text() for p in sorted(photos.glob("*.png"))]
    unet.train()
    started = time.perf_counter()
    for step in range(steps):
        index = step % len(images)
        with torch.no_grad():
            latents = vae.encode(images[index][None]).latent_dist.sample() * vae.config.scaling_factor
            ids = tokenizer([captions[index]], padding="max_length", max_length=tokenizer.model_max_length,
                            truncation=True, return_tensors="pt").input_ids
            states = text_encoder(ids)[0]
        noise = torch.randn_like(latents)
        timesteps = torch.randint(0, noise_scheduler.config.num_train_timesteps, (1,))
        pred = unet(noise_scheduler.add_noise(latents, noise, timesteps), timesteps, states).sample
        loss = F.mse_loss(pred.float(), noise.float())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return steps / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rank", type=int, default=8)
    args = parser.parse_args()
    import torch
    from imagegen.providers.local._loading import quiet_libraries

    from tests.local_fixtures import build_all

    torch.set_num_threads(1)
    quiet_libraries()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        models = build_all(root / "tiny")
        photos = make_photos(root / "photos")
        plain(models.pipeline_dir, photos, 5, args.rank)  # warm-up: first-call costs out of both
        ours(models.models_dir, photos, root, 5, args.rank)
        ours_rates, plain_rates = [], []
        for _ in range(args.rounds):
            plain_rates.append(plain(models.pipeline_dir, photos, args.steps, args.rank))
            ours_rates.append(ours(models.models_dir, photos, root, args.steps, args.rank))
        mine, theirs = statistics.median(ours_rates), statistics.median(plain_rates)
        print(f"tiny SD 1.x, 64 px, batch 1, rank {args.rank}, {args.steps} steps x {args.rounds} rounds, 1 CPU thread")
        print(f"  plain diffusers + peft loop: {theirs:7.2f} steps/s  (rounds: {', '.join(f'{r:.2f}' for r in plain_rates)})")
        print(f"  imagegen local trainer     : {mine:7.2f} steps/s  (rounds: {', '.join(f'{r:.2f}' for r in ours_rates)})")
        print(f"  ratio ours/plain: {mine / theirs:.3f}  (goal >= 0.95)")


if __name__ == "__main__":
    main()
