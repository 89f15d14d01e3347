"""Local FLUX.2 [klein] (Qwen3 text encoder) against plain diffusers on a tiny random-weight
pipeline: txt2img, reference editing, inpaint, LoRA, and klein base's true CFG."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from PIL import Image  # noqa: E402

from imagegen.request import GenerateRequest, LoraRef  # noqa: E402
from tests.local_flow_fixtures import flow_provider, gens, pixels, raw  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

SIZE = 64
STEPS = 3


@pytest.fixture(scope="session")
def provider(flow, tmp_path_factory):
    return flow_provider(flow, tmp_path_factory.mktemp("home"))


@pytest.fixture(scope="module")
def klein(flow):
    return raw(flow.klein)


def request(**fields) -> GenerateRequest:
    base = {"prompt": "a red cat", "seed": 99, "steps": STEPS, "width": SIZE, "height": SIZE}
    return GenerateRequest(**{**base, **fields})


def picture() -> Image.Image:
    image = Image.new("RGB", (SIZE, SIZE), (30, 160, 40))
    image.paste((240, 240, 20), (10, 10, 40, 50))
    return image


def test_family_and_card(provider):
    card = provider.card_for("tiny_klein")
    assert card.family == "flux2-klein" and card.weights == "flux.2-klein-4b"
    assert card.capabilities.edit and not card.capabilities.cfg
    assert provider.card_for("tiny_klein_base").family == "flux2-klein-base"


def test_txt2img_equals_raw_and_says_what_distillation_ignores(provider, klein):
    result = provider.run(request(cfg_scale=5.0, negative_prompt="blurry"), provider.card_for("tiny_klein"))
    reference = klein(prompt="a red cat", num_inference_steps=STEPS, guidance_scale=1.0, width=SIZE, height=SIZE,
                      generator=gens(99)).images[0]
    assert np.array_equal(pixels(result.images[0]), pixels(reference))
    assert result.raw["pipeline"] == "Flux2KleinPipeline"
    assert any("cfg_scale ignored" in w for w in result.warnings)
    assert any("negative_prompt ignored" in w for w in result.warnings)


def test_init_image_is_a_reference_to_edit(provider, klein):
    result = provider.run(request(prompt="make it blue", init_image=picture()), provider.card_for("tiny_klein"))
    reference = klein(prompt="make it blue", image=picture(), num_inference_steps=STEPS, guidance_scale=1.0,
                      width=SIZE, height=SIZE, generator=gens(99)).images[0]
    without = provider.run(request(prompt="make it blue"), provider.card_for("tiny_klein"))
    assert result.raw["kind"] == "edit"
    assert np.array_equal(pixels(result.images[0]), pixels(reference))
    assert not np.array_equal(pixels(result.images[0]), pixels(without.images[0]))


def test_inpaint_equals_raw_klein_inpaint(provider, klein):
    from diffusers import Flux2KleinInpaintPipeline

    mask = Image.new("L", (SIZE, SIZE), 0)
    mask.paste(255, (0, 0, SIZE, SIZE // 2))
    result = provider.run(request(init_image=picture(), mask_image=mask, denoising_strength=0.7, steps=4),
                          provider.card_for("tiny_klein"))
    pipe = Flux2KleinInpaintPipeline.from_pipe(klein)
    reference = pipe(prompt=["a red cat"], image=[picture()], mask_image=[mask], strength=3 / 4, num_inference_steps=4,
                     guidance_scale=1.0, width=SIZE, height=SIZE, generator=gens(99)).images[0]
    assert result.raw["pipeline"] == "Flux2KleinInpaintPipeline"
    assert np.array_equal(pixels(result.images[0]), pixels(reference))


def test_lora_equals_raw_load_lora_weights(provider, klein, flow):
    card = provider.card_for("tiny_klein")
    base = provider.run(request(), card)
    ours = provider.run(request(loras=[LoraRef(name="klein_style", weight=0.9)]), card)
    klein.load_lora_weights(str(flow.lora_dir / "klein_style.safetensors"), adapter_name="ref")
    klein.set_adapters(["ref"], adapter_weights=[0.9])
    try:
        reference = klein(prompt="a red cat", num_inference_steps=STEPS, guidance_scale=1.0, width=SIZE, height=SIZE,
                          generator=gens(99)).images[0]
    finally:
        klein.unload_lora_weights()
    assert not np.array_equal(pixels(ours.images[0]), pixels(base.images[0]))
    assert np.array_equal(pixels(ours.images[0]), pixels(reference))


def test_klein_base_uses_true_cfg_and_the_negative_prompt(provider, flow):
    pipe = raw(flow.klein_base)
    result = provider.run(request(cfg_scale=3.0, negative_prompt="blue sky"), provider.card_for("tiny_klein_base"))
    negative, _ = pipe.encode_prompt(prompt=["blue sky"], device="cpu", max_sequence_length=512)
    reference = pipe(prompt="a red cat", negative_prompt_embeds=negative, num_inference_steps=STEPS,
                     guidance_scale=3.0, width=SIZE, height=SIZE, generator=gens(99)).images[0]
    empty = provider.run(request(cfg_scale=3.0), provider.card_for("tiny_klein_base"))
    assert np.array_equal(pixels(result.images[0]), pixels(reference))
    assert not np.array_equal(pixels(result.images[0]), pixels(empty.images[0]))
    assert not any("negative_prompt ignored" in w for w in result.warnings)


def test_reference_images_without_an_init_image_condition_the_picture(provider, klein):
    other = Image.new("RGB", (SIZE, SIZE), (200, 30, 200))
    result = provider.run(request(prompt="the cat from image 1", reference_images=[picture(), other]),
                          provider.card_for("tiny_klein"))
    reference = klein(prompt="the cat from image 1", image=[picture(), other], num_inference_steps=STEPS,
                      guidance_scale=1.0, width=SIZE, height=SIZE, generator=gens(99)).images[0]
    assert result.raw["kind"] == "edit"
    assert np.array_equal(pixels(result.images[0]), pixels(reference))
