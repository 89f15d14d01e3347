"""Replicate's Flux models through the offline emulator: the same code runs against the real
API once REPLICATE_API_TOKEN is set and REPLICATE_BASE_URL is left alone.

    python examples/replicate_flux_emulator.py
"""

from pathlib import Path

from imagegen import GenerateRequest, ImageGen
from imagegen.testing import FakeReplicate

OUT = Path("out/replicate")

with FakeReplicate(processing_time_s=0.2) as fake:
    gen = ImageGen(replicate_api_token=fake.api_token, replicate_base_url=fake.base_url)

    # An explicit model; the negative prompt is reported in warnings (Flux takes none).
    request = GenerateRequest(prompt="a lighthouse at dusk, oil painting", negative_prompt="text",
                              aspect_ratio="16:9", seed=7, batch_size=2,
                              model="replicate:black-forest-labs/flux-schnell")
    result = gen.generate(request)
    for path, image in zip(result.save(OUT), result.images):
        print(f"saved {path} (seed {image.seed}, {image.width}x{image.height})")
    print(f"cost ${result.cost_usd:.4f}; predictions: {result.raw}")
    for warning in result.warnings:
        print("warning:", warning)

    # Midjourney-style text works too: --ar, --seed and --no become request fields.
    result = gen.generate("a paper boat on a pond --ar 3:2 --seed 3",
                          model="replicate:black-forest-labs/flux-dev")
    print(f"flux-dev: {len(result.images)} image(s), ${result.cost_usd:.4f}")
    print(f"the emulator received {fake.create_count} prediction(s)")
