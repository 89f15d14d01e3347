"""Prompt adherence of the embedded demo model on held-out prompts.

    python benchmarks/eval_demo.py                      # plain diffusers pipeline, 120 prompts
    python benchmarks/eval_demo.py --via adapter        # through ImageGen with model "local:demo"

Every prompt names a (colour, shape, background) triple that never appeared in training.
Prints foreground-colour, background-colour and shape accuracy, and seconds per image.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from imagegen.demo.score import read_image  # noqa: E402
from imagegen.demo.shapes import held_out_prompts  # noqa: E402

DEFAULT_MODEL = Path(__file__).resolve().parents[1] / "imagegen" / "models" / "demo"


def diffusers_generator(model: Path, sampler: str, steps: int, cfg: float):
    import torch
    from diffusers import (
        DPMSolverMultistepScheduler,
        EulerAncestralDiscreteScheduler,
        StableDiffusionPipeline,
    )

    pipe = StableDiffusionPipeline.from_pretrained(model, local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    if sampler == "euler_a":
        pipe.scheduler = EulerAncestralDiscreteScheduler.from_config(pipe.scheduler.config)
    elif sampler == "dpmpp_2m":
        pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config)
    elif sampler == "dpmpp_2m_karras":
        pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config, use_karras_sigmas=True)

    def generate(prompt: str, seed: int):
        g = torch.Generator().manual_seed(seed)
        return pipe(prompt, num_inference_steps=steps, guidance_scale=cfg, generator=g).images[0]

    return generate


def adapter_generator(model: Path, sampler: str, steps: int, cfg: float):
    from imagegen import GenerateRequest, ImageGen

    names = {"default": None, "euler_a": "Euler a", "dpmpp_2m": "DPM++ 2M", "dpmpp_2m_karras": "DPM++ 2M Karras"}
    gen = ImageGen()

    def generate(prompt: str, seed: int):
        ref = "local:demo" if model == DEFAULT_MODEL else f"local:{model.resolve()}"
        req = GenerateRequest(prompt=prompt, model=ref, seed=seed, steps=steps, cfg_scale=cfg,
                              width=64, height=64, **({"sampler": names[sampler]} if names[sampler] else {}))
        return gen.generate(req).images[0].pil()

    return generate


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    ap.add_argument("--via", choices=["diffusers", "adapter"], default="diffusers")
    ap.add_argument("--prompts", type=int, default=120)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--cfg", type=float, default=7.0)
    ap.add_argument("--sampler", choices=["default", "euler_a", "dpmpp_2m", "dpmpp_2m_karras"], default="default",
                    help="default: the shipped scheduler config (diffusers) or the adapter's default sampler")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--save", type=Path, help="folder to write the generated images into")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    if args.via == "adapter":
        generate = adapter_generator(args.model, args.sampler, args.steps, args.cfg)
    else:
        generate = diffusers_generator(args.model, args.sampler, args.steps, args.cfg)
    scenes = held_out_prompts(args.prompts)
    generate(scenes[0].caption, 0)  # warm-up, not timed

    hits, misses, elapsed = Counter(), Counter(), 0.0
    for i, scene in enumerate(scenes):
        started = time.perf_counter()
        image = generate(scene.caption, 1000 + i)
        elapsed += time.perf_counter() - started
        seen = read_image(image)
        hits["colour"] += seen.colour == scene.colour
        hits["background"] += seen.background == scene.background
        hits["shape"] += seen.shape == scene.shape
        hits["all three"] += (seen.colour, seen.background, seen.shape) == (scene.colour, scene.background, scene.shape)
        if seen.shape != scene.shape:
            misses[f"{scene.shape}->{seen.shape}"] += 1
        if args.save:
            args.save.mkdir(parents=True, exist_ok=True)
            image.save(args.save / f"{i:03d}_{scene.caption.replace(' ', '_')}.png")

    n = len(scenes)
    print(f"via={args.via} sampler={args.sampler} steps={args.steps} cfg={args.cfg} prompts={n} (held-out)")
    for key in ("colour", "background", "shape", "all three"):
        print(f"  {key:<11} accuracy {hits[key] / n:6.1%}  ({hits[key]}/{n})")
    print(f"  seconds per image {elapsed / n:.3f}")
    print(f"  shape confusions {dict(misses.most_common(6))}")


if __name__ == "__main__":
    main()
