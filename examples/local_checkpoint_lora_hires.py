"""A local checkpoint with a LoRA and hires fix, the way A1111 users write it.

Put your files in the A1111 layout and point IMAGEGEN_MODELS_DIR at it:

    $IMAGEGEN_MODELS_DIR/Stable-diffusion/<checkpoint>.safetensors   (or a diffusers folder)
    $IMAGEGEN_MODELS_DIR/Lora/<lora>.safetensors

    CHECKPOINT=v1-5-pruned-emaonly LORA=my_style python examples/local_checkpoint_lora_hires.py
"""

import os
import sys
from pathlib import Path

from imagegen import GenerateRequest, HiresFix, ImageGen

if not os.environ.get("IMAGEGEN_MODELS_DIR"):
    sys.exit("set IMAGEGEN_MODELS_DIR to a folder with Stable-diffusion/ and Lora/ (see the docstring)")
checkpoint = os.environ.get("CHECKPOINT", "v1-5-pruned-emaonly")
lora = os.environ.get("LORA", "my_style")
size = int(os.environ.get("SIZE", "512"))

request = GenerateRequest(
    prompt=f"a cozy cabin in the woods, (warm light:1.2), <lora:{lora}:0.8>",
    negative_prompt="blurry, lowres",
    width=size, height=size,
    sampler="DPM++ 2M Karras", steps=int(os.environ.get("STEPS", "20")), cfg_scale=7, seed=1234,
    clip_skip=2,
    hires=HiresFix(scale=2, upscaler="Latent", steps=10, denoising_strength=0.5),
    model=f"local:{checkpoint}",
)

with ImageGen() as gen:
    def show(event):
        if event.stage == "step" and event.step == event.total:
            print(f"  {event.stage} done: {event.total} steps")

    result = gen.generate(request, progress=show)
    path = result.images[0].save(Path("out/local") / f"cabin-{result.images[0].seed}.png")
    print(f"saved {path} ({result.images[0].width}x{result.images[0].height}, loaded in {result.load_s:.2f}s)")
    print(result.infotext)
    for warning in result.warnings:
        print("warning:", warning)
