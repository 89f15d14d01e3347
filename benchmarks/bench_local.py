"""Local provider overhead: our adapter vs. plain diffusers on the same pipeline, seed and scheduler.

Reports (1) the wall-time ratio adapter/raw on a tiny random-weight SD 1.x pipeline (goal <= 1.02),
(2) cold-load vs. warm-cache request time, (3) the same ratio on a tiny FLUX.1 [dev] pipeline
(goal <= 1.02), and with CUDA (4) SD-size (512 px, fp16) it/s of both and (5) a FLUX-width
transformer (random weights, fewer blocks) in bf16 and fp16: identical pixels, it/s vs raw, and
the model / sequential offload and fp8 modes.
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


def flux_compare(provider, card, raw, *, steps: int, size: int, repeats: int, options: dict | None = None,
                 guidance: float = 3.5) -> dict:
    """Adapter vs. raw FluxPipeline, interleaved; the raw call is what a diffusers user writes."""
    import numpy as np
    import torch

    from imagegen.request import GenerateRequest

    prompt = "a red cat on a hill"
    request = GenerateRequest(prompt=prompt, seed=7, steps=steps, width=size, height=size, cfg_scale=guidance,
                              provider_options={"local": options or {}})

    def raw_call():
        return raw(prompt, num_inference_steps=steps, guidance_scale=guidance, width=size, height=size,
                   generator=[torch.Generator("cpu").manual_seed(7)]).images

    ours = provider.run(request, card)  # warm both
    identical = bool(np.array_equal(np.asarray(ours.images[0].pil()), np.asarray(raw_call()[0])))
    ours_times, raw_times, gpu_seconds = [], [], []
    for _ in range(repeats):
        started = time.perf_counter()
        result = provider.run(request, card)
        ours_times.append(time.perf_counter() - started)
        gpu_seconds.append(result.gpu_seconds)
        started = time.perf_counter()
        raw_call()
        raw_times.append(time.perf_counter() - started)
    ours_s, raw_s = statistics.median(ours_times), statistics.median(raw_times)
    return {"ours_s": ours_s, "raw_s": raw_s, "ratio": ours_s / raw_s, "min_ratio": min(ours_times) / min(raw_times),
            "identical_pixels": identical, "ours_it_s": steps / statistics.median(gpu_seconds),
            "raw_it_s": steps / raw_s, "memory": result.raw["memory"]}


def flux_tiny_benchmark(repeats: int) -> None:
    import torch
    from imagegen.providers.local import LocalProvider

    from imagegen.settings import Settings
    from tests.local_flow_fixtures import build_flow_models, raw

    torch.set_num_threads(1)
    models = build_flow_models()
    root = Path(tempfile.mkdtemp(prefix="bench_local_flux_"))
    provider = LocalProvider(Settings(models_dir=models.models_dir, home=root / "home", device="cpu"))
    card = provider.card_for("tiny_flux_dev")
    pipe = raw(models.flux_dev)
    print("tiny FLUX.1 [dev] pipeline (CLIP + T5 + MMDiT), CPU fp32, 1 thread, 64 px, guidance 3.5, 20 steps")
    stats = flux_compare(provider, card, pipe, steps=20, size=64, repeats=repeats)
    print(f"  adapter {stats['ours_s'] * 1000:.1f} ms  raw diffusers {stats['raw_s'] * 1000:.1f} ms  "
          f"ratio {stats['ratio']:.3f} (min/min {stats['min_ratio']:.3f}; goal <= 1.02)  "
          f"identical pixels: {stats['identical_pixels']}")


def flux_cuda_benchmark(repeats: int) -> None:
    """A FLUX.1 [dev]-width transformer (3072 wide, 24 heads, rope 16/56/56; 2 double + 4 single
    blocks instead of 19 + 38), a 2-layer T5 at 4096 and the FLUX VAE, random weights: the per-step
    kernels of the real model at a twelfth of its depth. bf16 and fp16; offload and fp8 modes."""
    import json

    import torch
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
    from imagegen.providers.local import LocalProvider
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer, T5Config, T5EncoderModel

    from imagegen.settings import Settings
    from tests.local_fixtures import write_tokenizer
    from tests.local_flow_fixtures import write_t5_tokenizer

    root = Path(tempfile.mkdtemp(prefix="bench_local_flux_cuda_"))
    folder = root / "models" / "Stable-diffusion" / "flux_width"
    write_tokenizer(folder / "tokenizer")
    tokenizer = CLIPTokenizer.from_pretrained(folder / "tokenizer")
    tokenizer_2 = write_t5_tokenizer(folder / "tokenizer_2")
    with torch.device("cuda"):
        transformer = FluxTransformer2DModel(num_layers=2, num_single_layers=4, guidance_embeds=True).to(torch.bfloat16)
        text_encoder = CLIPTextModel(CLIPTextConfig(vocab_size=len(tokenizer), hidden_size=768, projection_dim=768,
                                                    num_hidden_layers=2)).to(torch.bfloat16)
        text_encoder_2 = T5EncoderModel(T5Config(vocab_size=len(tokenizer_2), d_model=4096, d_ff=10240, d_kv=64,
                                                 num_layers=2, num_heads=64, feed_forward_proj="gated-gelu"))
        text_encoder_2 = text_encoder_2.to(torch.bfloat16)
        vae = AutoencoderKL(block_out_channels=(128, 256, 512, 512), latent_channels=16, layers_per_block=2,
                            down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                            use_quant_conv=False, use_post_quant_conv=False, shift_factor=0.1159,
                            scaling_factor=0.3611).to(torch.bfloat16)
    scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15,
                                                base_image_seq_len=256, max_image_seq_len=4096)
    pipe = FluxPipeline(scheduler=scheduler, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
                        text_encoder_2=text_encoder_2, tokenizer_2=tokenizer_2, transformer=transformer)
    pipe.save_pretrained(folder, safe_serialization=True)
    pipe.set_progress_bar_config(disable=True)
    print(f"FLUX-width pipeline (random weights, 2+4 blocks), CUDA, 1024 px, 20 steps: {torch.cuda.get_device_name()}")
    settings = Settings(models_dir=root / "models", home=root / "home", device="cuda")
    for dtype in ("bfloat16", "float16"):
        pipe.to(getattr(torch, dtype))
        provider = LocalProvider(settings)
        stats = flux_compare(provider, provider.card_for("flux_width"), pipe, steps=20, size=1024, repeats=repeats,
                             options={"dtype": dtype, "offload": "none"})
        print(f"  {dtype}: adapter {stats['ours_s']:.3f} s  raw {stats['raw_s']:.3f} s  ratio {stats['ratio']:.3f} "
              f"(min/min {stats['min_ratio']:.3f})  identical pixels: {stats['identical_pixels']}  "
              f"it/s adapter {stats['ours_it_s']:.2f} raw {stats['raw_it_s']:.2f}")
        provider.close()
    pipe.to("cpu")
    torch.cuda.empty_cache()
    from imagegen.request import GenerateRequest

    for options in ({"offload": "auto"}, {"offload": "model"}, {"offload": "sequential"}, {"quantize": "fp8"},
                    {"offload": "model", "vae_tiling": True}):
        provider = LocalProvider(settings)
        request = GenerateRequest(prompt="a red cat", seed=7, steps=8, width=1024, height=1024,
                                  provider_options={"local": {"dtype": "bfloat16", **options}})
        torch.cuda.reset_peak_memory_stats()
        started = time.perf_counter()
        result = provider.run(request, provider.card_for("flux_width"))
        wall = time.perf_counter() - started
        print(f"  {json.dumps(options)}: {8 / result.gpu_seconds:.2f} it/s, first request {wall:.1f} s, "
              f"peak {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB, memory {result.raw['memory']}")
        provider.close()
        torch.cuda.empty_cache()


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
        flux_tiny_benchmark(args.repeats)
    if torch.cuda.is_available() and not args.no_cuda:
        cuda_benchmark(max(3, args.repeats // 3))
        flux_cuda_benchmark(max(3, args.repeats // 5))
    elif not args.no_cuda:
        print("no CUDA device: SD-size fp16 and FLUX-width bf16/fp16, offload and fp8 checks skipped")


if __name__ == "__main__":
    main()
