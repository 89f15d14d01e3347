"""Local Stable Diffusion 3.5 (MMDiT, two CLIPs + T5, flow matching) against plain diffusers on a
tiny random-weight pipeline: classifier-free guidance with the negative prompt, img2img, inpaint,
LoRA, and the family read from a single transformer file."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from imagegen.providers.local._families import checkpoint_family  # noqa: E402
from PIL import Image  # noqa: E402

from imagegen.request import GenerateRequest  # noqa: E402
from tests.local_flow_fixtures import flow_provider, gens, pixels, raw  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

SIZE = 64
STEPS = 4


@pytest.fixture(scope="session")
def provider(flow, tmp_path_factory):
    return flow_provider(flow, tmp_path_factory.mktemp("home"))


@pytest.fixture(scope="module")
def sd3(flow):
    return raw(flow.sd3)


def request(**fields) -> GenerateRequest:
    base = {"prompt": "a red cat", "seed": 7, "steps": STEPS, "width": SIZE, "height": SIZE, "cfg_scale": 5.0,
            "negative_prompt": "blue"}
    return GenerateRequest(**{**base, **fields})


def picture() -> Image.Image:
    image = Image.new("RGB", (SIZE, SIZE), (200, 60, 60))
    image.paste((20, 20, 200), (16, 16, 48, 48))
    return image


def test_family_from_the_weights(flow):
    assert checkpoint_family(flow.sd3) == "sd3"
    assert checkpoint_family(next((flow.sd3 / "transformer").glob("*.safetensors"))) == "sd3"


def test_cfg_and_negative_prompt_equal_raw_diffusers(provider, sd3):
    result = provider.run(request(sampler="DPM++ 2M Karras"), provider.card_for("tiny_sd3"))
    reference = sd3(prompt="a red cat", negative_prompt="blue", guidance_scale=5.0, num_inference_steps=STEPS,
                    width=SIZE, height=SIZE, generator=gens(7), max_sequence_length=256).images[0]
    assert np.array_equal(pixels(result.images[0]), pixels(reference))
    assert not any("negative_prompt ignored" in w for w in result.warnings)
    assert any("has no meaning" in w for w in result.warnings)


def test_img2img_and_inpaint_equal_raw(provider, sd3):
    from diffusers import StableDiffusion3Img2ImgPipeline, StableDiffusion3InpaintPipeline

    card = provider.card_for("tiny_sd3")
    ours = provider.run(request(init_image=picture(), denoising_strength=0.5), card)
    reference = StableDiffusion3Img2ImgPipeline.from_pipe(sd3)(
        prompt=["a red cat"], negative_prompt=["blue"], image=[picture()], strength=3 / 4, guidance_scale=5.0,
        num_inference_steps=STEPS, generator=gens(7), max_sequence_length=256).images[0]
    assert np.array_equal(pixels(ours.images[0]), pixels(reference))
    mask = Image.new("L", (SIZE, SIZE), 0)
    mask.paste(255, (0, 0, SIZE // 2, SIZE))
    ours = provider.run(request(init_image=picture(), mask_image=mask, denoising_strength=0.75), card)
    reference = StableDiffusion3InpaintPipeline.from_pipe(sd3)(
        prompt=["a red cat"], negative_prompt=["blue"], image=[picture()], mask_image=[mask], strength=4 / 4,
        guidance_scale=5.0, num_inference_steps=STEPS, width=SIZE, height=SIZE, generator=gens(7),
        max_sequence_length=256).images[0]
    assert ours.raw["pipeline"] == "StableDiffusion3InpaintPipeline"
    assert np.array_equal(pixels(ours.images[0]), pixels(reference))


def test_lora_equals_raw_load_lora_weights(provider, sd3, flow):
    card = provider.card_for("tiny_sd3")
    base = provider.run(request(), card)
    ours = provider.run(request(prompt="a red cat <lora:sd3_style:1.1>"), card)
    sd3.load_lora_weights(str(flow.lora_dir / "sd3_style.safetensors"), adapter_name="ref")
    sd3.set_adapters(["ref"], adapter_weights=[1.1])
    try:
        reference = sd3(prompt="a red cat", negative_prompt="blue", guidance_scale=5.0, num_inference_steps=STEPS,
                        width=SIZE, height=SIZE, generator=gens(7), max_sequence_length=256).images[0]
    finally:
        sd3.unload_lora_weights()
    assert not np.array_equal(pixels(ours.images[0]), pixels(base.images[0]))
    assert np.array_equal(pixels(ours.images[0]), pixels(reference))
