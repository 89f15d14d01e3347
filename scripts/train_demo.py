"""Train the embedded demo text-to-image model on procedural coloured shapes (CPU, fixed seed).

    python scripts/train_demo.py --out imagegen/models/demo
    python scripts/train_demo.py --out NEW --vae-from DIR      # skip stage 1: take DIR's VAE
    python scripts/train_demo.py --out NEW --continue-from DIR --unet-steps N --lr LR --decoder-steps 0

Stage 1 fits the tiny VAE (64 px images <-> 16 px latents). Stage 2 trains the UNet and the text
encoder together with epsilon prediction (loss weighted toward the noisy steps), 10% empty
captions (so classifier-free guidance and negative prompts work), offset noise (so flat
backgrounds of any colour are reachable) and an EMA of the UNet weights. Stage 3 trains the
decoder alone, the encoder frozen, so the latent space stage 2 learnt stays valid: it lifted the
VAE's own colour round trip from 73% to 99% of held-out scenes.

Measured on 2 otherwise idle CPU cores: stage 1 (1500 steps) 6.4 min, stage 2 (8000 steps,
0.25 s each) 34 min, stage 3 (2000 steps, 0.2 s each) 7 min; about 47 minutes with the
defaults. The shipped weights are the defaults followed by 2000 more UNet steps at a lower rate
(0.26 s each, 9 min; about 56 minutes in all):

    python scripts/train_demo.py --out STAGE3
    python scripts/train_demo.py --out imagegen/models/demo --continue-from STAGE3 \
        --unet-steps 2000 --lr 3e-4 --decoder-steps 0

They were made stage by stage (`--vae-from`, then `--continue-from`), with stage 2 sharing the
machine with a second candidate at one thread each. Float results depend on the thread count,
and the tokenizer's BPE merge order is not guaranteed across runs, so a re-run is close to, not
bit-identical with, the shipped files.
"""

from __future__ import annotations

import argparse
import copy
import math
import random
import string
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from imagegen.demo.build import UNET_CHANNELS, build_pipeline  # noqa: E402
from imagegen.demo.shapes import training_batch  # noqa: E402

MAX_LOSS_WEIGHT = 25.0
# Per-channel offset noise. SD's schedule leaves ~7% of the signal at t=999, enough to read a flat
# background's colour straight off the noise; a strong offset hides it so the caption must say it.
OFFSET_NOISE = 0.3


def to_tensor(images) -> torch.Tensor:
    arr = np.stack([np.asarray(im, dtype=np.float32) for im in images]) / 127.5 - 1.0
    return torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()


def add_junk_words(caption: str, rng: random.Random) -> str:
    """Insert words the model has never seen, so unknown prompt text is ignored rather than harmful."""
    words = caption.split()
    for _ in range(rng.randint(1, 3)):
        junk = "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(2, 9)))
        if rng.random() < 0.3:
            junk = rng.choice(["(", ")", ",", ":1.2)", "1", "masterpiece,", "best quality", "::2"])
        words.insert(rng.randint(0, len(words)), junk)
    return " ".join(words)


def warmup_cosine(opt, steps: int, warmup: int):
    """Linear warm-up, then cosine decay to 5% of the peak rate."""
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, steps - warmup)
        return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


def train_vae(vae, rng: random.Random, steps: int, batch: int, log, decoder_only: bool = False) -> None:
    """Fit the autoencoder.

    ``decoder_only`` sharpens the decoder with the encoder frozen: the latent space, and so a
    UNet trained on it, stay valid."""
    vae.requires_grad_(not decoder_only)
    vae.decoder.requires_grad_(True)
    trained = vae.decoder if decoder_only else vae
    opt = torch.optim.AdamW(trained.parameters(), lr=1e-3 if decoder_only else 2e-3, weight_decay=0.0)
    sched = warmup_cosine(opt, steps, warmup=20)
    vae.eval()
    trained.train()
    for step in range(steps):
        x = to_tensor(training_batch(rng, batch)[0])
        with torch.set_grad_enabled(not decoder_only):
            posterior = vae.encode(x).latent_dist
        recon = vae.decode(posterior.mean if decoder_only else posterior.sample()).sample
        loss = F.mse_loss(recon, x) + 0.5 * F.l1_loss(recon, x)
        if not decoder_only:
            loss = loss + 1e-6 * posterior.kl().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % 50 == 0 or step == steps - 1:
            log(f"{'decoder' if decoder_only else 'vae'} step {step} loss {loss.item():.5f}")
    vae.requires_grad_(False).eval()


def latent_scaling(vae, rng: random.Random) -> float:
    """The latent scaling factor: 1 / the std of the encoder's latents over 256 samples."""
    with torch.no_grad():
        latents = torch.cat([vae.encode(to_tensor(training_batch(rng, 64)[0])).latent_dist.mean for _ in range(4)])
    return float(1.0 / latents.std())


def train_unet(pipe, rng: random.Random, steps: int, batch: int, lr: float, log, save_every: int, out: Path):
    from diffusers import DDPMScheduler

    unet, text_encoder, vae, tokenizer = pipe.unet, pipe.text_encoder, pipe.vae, pipe.tokenizer
    noise_sched = DDPMScheduler.from_config(pipe.scheduler.config)
    ema = copy.deepcopy(unet).requires_grad_(False)
    params = list(unet.parameters()) + list(text_encoder.parameters())
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=1e-2)
    sched = warmup_cosine(opt, steps, warmup=50)
    scale = vae.config.scaling_factor
    unet.train()
    text_encoder.train()
    started = time.time()
    for step in range(steps):
        images, captions = training_batch(rng, batch)
        captions = [
            "" if rng.random() < 0.1 else (add_junk_words(c, rng) if rng.random() < 0.1 else c) for c in captions
        ]
        with torch.no_grad():
            latents = vae.encode(to_tensor(images)).latent_dist.mean * scale
        ids = tokenizer(captions, padding="max_length", max_length=tokenizer.model_max_length,
                        truncation=True, return_tensors="pt").input_ids
        context = text_encoder(ids)[0]
        noise = torch.randn_like(latents) + OFFSET_NOISE * torch.randn(latents.shape[0], latents.shape[1], 1, 1)
        t = torch.randint(0, noise_sched.config.num_train_timesteps, (latents.shape[0],))
        noisy = noise_sched.add_noise(latents, noise, t)
        # Epsilon loss weighted like a v-prediction loss (1 + 1/SNR, capped): it stresses the
        # noisy steps where colours and layout are decided.
        alpha_bar = noise_sched.alphas_cumprod[t]
        weight = (1 + (1 - alpha_bar) / alpha_bar).clamp(max=MAX_LOSS_WEIGHT)
        per_sample = (unet(noisy, t, context).sample - noise).pow(2).mean(dim=(1, 2, 3))
        loss = (per_sample * weight).sum() / weight.sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        decay = min(0.999, (1 + step) / (10 + step))
        with torch.no_grad():
            for e, p in zip(ema.parameters(), unet.parameters()):
                e.lerp_(p, 1 - decay)
        if step % 50 == 0 or step == steps - 1:
            log(f"unet step {step} loss {loss.item():.4f} elapsed {time.time() - started:.0f}s")
        if save_every and step and step % save_every == 0:
            save(pipe, ema, out)
    return ema


def save(pipe, ema, out: Path) -> None:
    trained = pipe.unet
    pipe.unet = ema
    pipe.text_encoder.eval()
    pipe.save_pretrained(out, safe_serialization=True)
    pipe.unet = trained
    pipe.text_encoder.train()


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("imagegen/models/demo"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--unet-channels", default=",".join(map(str, UNET_CHANNELS)),
                    help="UNet block widths, comma-separated")
    ap.add_argument("--vae-steps", type=int, default=1500)
    ap.add_argument("--unet-steps", type=int, default=8000)
    ap.add_argument("--decoder-steps", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=24)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--save-every", type=int, default=1000)
    ap.add_argument("--vae-from", type=Path,
                    help="skip stage 1: take the trained VAE from this folder (a stage-1 output of this script)")
    ap.add_argument("--continue-from", type=Path,
                    help="train further from a finished folder of this script (UNet, text encoder and VAE)")
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    started = time.time()

    def log(msg: str) -> None:
        print(f"[{time.time() - started:7.1f}s] {msg}", flush=True)

    pipe = build_pipeline(args.out, seed=args.seed, unet_channels=tuple(int(c) for c in args.unet_channels.split(",")))
    stage_seed = args.seed + 1
    if args.continue_from:
        from diffusers import StableDiffusionPipeline

        pipe = StableDiffusionPipeline.from_pretrained(args.continue_from, local_files_only=True)
        pipe.unet.train()
        pipe.text_encoder.requires_grad_(True)
        stage_seed = args.seed + 2  # fresh data, not a replay of stage 2
        log(f"continuing from {args.continue_from}")
    elif args.vae_from:
        from diffusers import AutoencoderKL

        pipe.vae = AutoencoderKL.from_pretrained(args.vae_from / "vae", local_files_only=True)
        log(f"vae from {args.vae_from}, scaling_factor {pipe.vae.config.scaling_factor:.4f}")
    else:
        train_vae(pipe.vae, rng, args.vae_steps, 16, log)
        scaling = latent_scaling(pipe.vae, rng)
        pipe.vae.register_to_config(scaling_factor=scaling)
        log(f"vae scaling_factor {scaling:.4f}")
    pipe.vae.requires_grad_(False).eval()
    pipe.save_pretrained(args.out, safe_serialization=True)  # a usable VAE on disk early
    # Stage 2 seeds afresh, so starting it from a saved stage 1 (--vae-from) gives the same run.
    torch.manual_seed(stage_seed)
    rng = random.Random(stage_seed)
    ema = train_unet(pipe, rng, args.unet_steps, args.batch, args.lr, log, args.save_every, args.out)
    save(pipe, ema, args.out)
    # Stage 3: the decoder alone, so it draws the latents stage 2 learnt to make more sharply.
    torch.manual_seed(args.seed + 3)
    train_vae(pipe.vae, random.Random(args.seed + 3), args.decoder_steps, 16, log, decoder_only=True)
    save(pipe, ema, args.out)
    log(f"saved to {args.out}")


if __name__ == "__main__":
    main()
