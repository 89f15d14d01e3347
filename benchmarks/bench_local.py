"""Local provider overhead: our adapter vs. plain diffusers on the same pipeline, seed and scheduler.

Reports (1) the wall-time ratio adapter/raw on a tiny random-weight SD 1.x pipeline (goal <= 1.02),
(2) cold-load vs. warm-cache request time, and (3) with CUDA, SD-size (512 px, fp16) it/s of both.
Run from the repository root: `python benchmarks/bench_local.py [--repeats 15] [--no-cuda]`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _raw_call(pipe, scheduler_choice, seed, steps, size, prompt):
    import torch

    pipe.scheduler = scheduler_choice.build(pipe.original_scheduler_config)
    return pipe(prompt, negative_prompt="", num_inference_steps=steps, guidance_scale=7.0, width=size,
                height=size, generator=[torch.Generator("cpu").manual_seed(seed)]).images


def compare(provider, card, raw, *, steps: int, size: int, repeats: int, sampler: str = "Euler a") -> dict:
    """Median wall time of both paths, interleaved so machine noise hits both alike."""
    import numpy as np
    from imagegen.providers.local._schedulers import choose_scheduler

    from imagegen.request import GenerateRequest

    prompt = "a red cat on a hill"
    request = GenerateRequest(prompt=prompt, seed=7, steps=steps, width=size, height=size, sampler=sampler)
    choice = choose_scheduler(sampler, None)
    ours_times, raw_times = [], []
    ours = provider.run(request, card)  # warm both
    reference = _raw_call(raw, choice, 7, steps, size, prompt)
    identical = bool(np.array_equal(np.asarray(ours.images[0].pil()), np.asarray(reference[0])))
    gpu_seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        result = provider.run(request, card)
        ours_times.append(time.perf_counter() - started)
        gpu_seconds.append(result.gpu_seconds)
        started = time.perf_counter()
        _raw_call(raw, choice, 7, steps, size, prompt)
        raw_times.append(time.perf_counter() - started)
    ours_s, raw_s = statistics.median(ours_times), statistics.median(raw_times)
    # The minimum is the least disturbed by other load on the machine; both are reported.
    return {"ours_s": ours_s, "raw_s": raw_s, "ratio": ours_s / raw_s, "identical_pixels": identical,
            "min_ratio": min(ours_times) / min(raw_times),
            "ours_it_s": steps / statistics.median(gpu_seconds), "raw_it_s": steps / raw_s}


def cold_vs_warm(settings, card_ref: str, *, steps: int, size: int) -> dict:
    from imagegen.providers.local import LocalProvider

    from imagegen.request import GenerateRequest

    provider = LocalProvider(settings)
    card = provider.card_for(card_ref)
    request = GenerateRequest(prompt="a red cat", seed=1, steps=steps, width=size, height=size, sampler="Euler")
    started = time.perf_counter()
    cold = provider.run(request, card)
    cold_s = time.perf_counter() - started
    started = time.perf_counter()
    warm = provider.run(request, card)
    warm_s = time.perf_counter() - started
    return {"cold_s": cold_s, "cold_load_s": cold.load_s, "warm_s": warm_s, "warm_load_s": warm.load_s}


def tiny_benchmark(repeats: int) -> None:
    import torch
    from imagegen.providers.local import LocalProvider

    from imagegen.settings import Settings
    from tests.local_fixtures import build_all, raw_pipeline

    torch.set_num_threads(1)
    root = Path(tempfile.mkdtemp(prefix="bench_local_"))
    models = build_all(root)
    settings = Settings(models_dir=models.models_dir, home=root / "home", device="cpu")
    provider = LocalProvider(settings)
    card = provider.card_for("tiny")
    raw = raw_pipeline(models.pipeline_dir)
    raw.original_scheduler_config = dict(raw.scheduler.config)
    print("tiny SD 1.x pipeline, CPU fp32, 1 thread, 64 px, Euler a, 20 steps")
    stats = compare(provider, card, raw, steps=20, size=64, repeats=repeats)
    print(f"  adapter {stats['ours_s'] * 1000:.1f} ms  raw diffusers {stats['raw_s'] * 1000:.1f} ms  "
          f"ratio {stats['ratio']:.3f} (min/min {stats['min_ratio']:.3f}; goal <= 1.02)  "
          f"identical pixels: {stats['identical_pixels']}")
    warm = cold_vs_warm(settings, "tiny", steps=4, size=64)
    print(f"  cold request {warm['cold_s']:.2f} s (load {warm['cold_load_s']:.2f} s)  "
          f"warm request {warm['warm_s']:.3f} s (load {warm['warm_load_s']:.2f} s)  "
          f"cold/warm {warm['cold_s'] / warm['warm_s']:.1f}x")


def cuda_benchmark(repeats: int) -> None:
    """SD 1.5-size UNet/VAE/CLIP (random weights from the packaged configs), 512 px, fp16."""
    import torch
    from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from imagegen.providers.local import LocalProvider
    from imagegen.providers.local._configs import config_dir_for
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    from imagegen.settings import Settings

    root = Path(tempfile.mkdtemp(prefix="bench_local_sd15_"))
    configs = config_dir_for("sd15", root / "home")
    import json

    def config(name):
        return json.loads((configs / name / "config.json").read_text())

    with torch.device("cuda"):
        unet = UNet2DConditionModel.from_config(config("unet")).half()
        vae = AutoencoderKL.from_config(config("vae")).half()
        text_encoder = CLIPTextModel(CLIPTextConfig(**config("text_encoder"))).half()
    pipe = StableDiffusionPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=CLIPTokenizer.from_pretrained(configs / "tokenizer"),
        unet=unet, scheduler=PNDMScheduler.from_pretrained(configs / "scheduler"), safety_checker=None,
        feature_extractor=None, image_encoder=None, requires_safety_checker=False)
    folder = root / "models" / "Stable-diffusion" / "sd15_random"
    pipe.save_pretrained(folder, safe_serialization=True)
    pipe.set_progress_bar_config(disable=True)
    pipe.original_scheduler_config = dict(pipe.scheduler.config)
    settings = Settings(models_dir=root / "models", home=root / "home", device="cuda")
    provider = LocalProvider(settings)
    card = provider.card_for("sd15_random")
    print(f"SD 1.5-size pipeline (random weights), CUDA fp16, 512 px, Euler a, 20 steps: "
          f"{torch.cuda.get_device_name()}")
    stats = compare(provider, card, pipe, steps=20, size=512, repeats=repeats)
    print(f"  adapter {stats['ours_s']:.3f} s  raw diffusers {stats['raw_s']:.3f} s  ratio {stats['ratio']:.3f}  "
          f"(min/min {stats['min_ratio']:.3f})  "
          f"identical pixels: {stats['identical_pixels']}")
    print(f"  it/s: adapter denoising {stats['ours_it_s']:.2f}  raw diffusers (whole call) {stats['raw_it_s']:.2f}")
    del pipe
    warm = cold_vs_warm(settings, "sd15_random", steps=20, size=512)
    print(f"  cold request {warm['cold_s']:.2f} s (load {warm['cold_load_s']:.2f} s)  "
          f"warm request {warm['warm_s']:.3f} s  cold/warm {warm['cold_s'] / warm['warm_s']:.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--no-cuda", action="store_true")
    parser.add_argument("--cuda-only", action="store_true")
    args = parser.parse_args()
    import torch

    if not args.cuda_only:
        tiny_benchmark(args.repeats)
    if torch.cuda.is_available() and not args.no_cuda:
        cuda_benchmark(max(3, args.repeats // 3))
    elif not args.no_cuda:
        print("no CUDA device: SD-size fp16 it/s skipped")


if __name__ == "__main__":
    main()
